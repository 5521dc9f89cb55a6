"""`newsletter init` creates a database from nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.db import dispose_engines
from newsletter.settings import reset_settings

runner = CliRunner()


def _init(monkeypatch: pytest.MonkeyPatch, url: str) -> dict[str, str | None]:
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    result = runner.invoke(app, ["init", "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_init_on_an_empty_sqlite_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = _init(monkeypatch, url)
    assert first["from"] is None and first["to"]
    assert "matchups" in inspect(create_engine(url)).get_table_names()
    again = _init(monkeypatch, url)
    assert again["from"] == again["to"] == first["to"]
    with create_engine(url).connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_init_on_an_empty_postgres_database(monkeypatch: pytest.MonkeyPatch) -> None:
    base = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("NEWSLETTER_TEST_POSTGRES_URL is not set (make test sets it)")
    base_url = make_url(base).set(drivername="postgresql+psycopg")
    name = f"nl_init_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = base_url.set(database=name).render_as_string(hide_password=False)
        result = _init(monkeypatch, url)
        assert result["from"] is None
        engine = create_engine(url)
        assert "deliveries" in inspect(engine).get_table_names()
        engine.dispose()
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

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
from newsletter.migrate import HEAD_REVISION
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


def test_a_command_run_where_there_is_no_database_says_to_init_and_creates_nothing(
    tmp_path: Path,
) -> None:
    """Run in the wrong directory, as a new user does: a clear line and exit 2, no traceback,
    no empty newsletter.db left behind; `--help` still works there."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    cli = [str(Path(sys.executable).parent / "newsletter")]  # the installed command
    for args in (["stats", "2", "--json"], ["issue", "list"], ["subscribers", "list"]):
        done = subprocess.run(
            [*cli, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("error: no database at newsletter.db"), done.stderr
        assert "`newsletter init`" in done.stderr
        assert list(tmp_path.iterdir()) == []
    helped = subprocess.run(
        [*cli, "stats", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "Usage" in helped.stdout


def test_a_database_without_this_versions_schema_is_named_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, postgres_url: str
) -> None:
    from alembic import command

    from newsletter.migrate import alembic_config

    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    create_engine(empty).connect().close()  # the file exists, with no tables
    old = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(old), "0006_journeys")
    server = make_url(postgres_url).set(database="no_such_database_here")
    cases = [
        (empty, "has no schema yet: run `newsletter init`"),
        (old, f"is at schema 0006_journeys; this version needs {HEAD_REVISION}"),
        (server.render_as_string(hide_password=False), 'database "no_such_database_here"'),
    ]
    for url, said in cases:
        monkeypatch.setenv("DATABASE_URL", url)
        reset_settings()
        dispose_engines()
        result = runner.invoke(app, ["issue", "list"])
        assert result.exit_code == 2, (url, result.output)
        assert said in result.stderr, result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)

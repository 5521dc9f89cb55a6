"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

SQLite: each test gets a copy of a file migrated once per session.
PostgreSQL: each test session creates its own database on the server named by
NEWSLETTER_TEST_POSTGRES_URL (so parallel runs never meet), migrates it once, and empties every
table after each test. If the variable is set and the server cannot be reached, the tests error
out rather than skip: `make test` sets it, so CI fails when PostgreSQL is missing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from newsletter.db import dispose_engines, session_factory
from newsletter.migrate import upgrade
from newsletter.orm import Base
from newsletter.settings import reset_settings

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SEEDS = SHARED / "seeds"
ARTIFACTS = REPO / "tests" / "artifacts"

# Variables the service reads; each test starts from none of them (a developer's .env or shell
# must not leak into the suite).
SERVICE_ENV = [
    "DATABASE_URL",
    "SENDGRID_API_KEY",
    "SENDGRID_API_HOST",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "NEWSLETTER_TRANSPORT",
    "NEWSLETTER_OUTBOX_DIR",
    "NEWSLETTER_BASE_URL",
    "NEWSLETTER_POSTAL_ADDRESS",
    "NEWSLETTER_LOGO",
    "NEWSLETTER_LOGO_ALT",
    "NEWSLETTER_SECRET_KEY",
    "NEWSLETTER_TRACKING",
    "NEWSLETTER_INBOX_DIR",
]

BACKENDS = ["sqlite", "postgresql"]


def _pg_base_url() -> str | None:
    raw = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
    if not raw:
        return None
    url = make_url(raw)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in SERVICE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env, outbox or SQLite file in the repository
    monkeypatch.setenv("NEWSLETTER_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789")
    reset_settings()
    yield tmp_path
    reset_settings()
    dispose_engines()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    dispose_engines()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    base = _pg_base_url()
    if base is None:
        pytest.skip("NEWSLETTER_TEST_POSTGRES_URL is not set (make test sets it)")
    name = f"nl_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at NEWSLETTER_TEST_POSTGRES_URL is unreachable: {exc}")
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    dispose_engines()
    yield url
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_postgres(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_template: Path,
) -> Iterator[str]:
    """A migrated, empty database; DATABASE_URL points at it for the code under test."""
    if request.param == "sqlite":
        path = tmp_path / "newsletter.db"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    yield url
    dispose_engines()
    if request.param == "postgresql":
        _truncate_postgres(url)


@pytest.fixture
def db(db_url: str) -> Iterator[Session]:
    """A session on the test database, for arranging data and asserting on it."""
    session = session_factory(db_url)()
    yield session
    session.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's package")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()

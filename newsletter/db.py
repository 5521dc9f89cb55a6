"""Engines and transactions.

The caller that starts the work owns the transaction: a CLI command, a web request or a job
opens `transaction()`; services and repositories only flush.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from newsletter.settings import get_settings

_engines: dict[str, Engine] = {}


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def shown_url(url: str) -> str:
    """DATABASE_URL as it may be printed: its password hidden (not at all when it does not
    even parse as a URL: it may be anything, a password included)."""
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(DATABASE_URL, not a URL)"


def cannot_open(url: str, exc: Exception) -> str:
    """The sentence for a database that cannot be opened (the CLI's and the scheduler's): the
    URL with its password hidden and the driver's first line, never a traceback."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return f"cannot open the database {shown_url(url)}: {reason}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web app read while a send writes; foreign keys are off by default in SQLite;
    # busy_timeout makes a second writer wait instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 16 MiB of page cache (the default is 2 MiB): a send to readers who chose topics reads
    # each batch's subscribers from all over the table (a variant's readers are not
    # neighbours), and missed pages cost it a third of its speed (bench/topics_send.py).
    cursor.execute("PRAGMA cache_size=-16384")
    cursor.close()


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # psycopg prepares a statement after its fifth run, and PostgreSQL then may plan it once
    # for any parameters: a generic plan cannot see that `LIKE '%term%'` is rare, so the
    # subscriber search scanned a million rows (500 ms) where the trigram index takes 10 ms.
    # Custom plans for every run keep the parse savings and plan for the values at hand.
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"options": "-c plan_cache_mode=force_custom_plan"},
    )


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

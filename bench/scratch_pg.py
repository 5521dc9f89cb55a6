"""A scratch PostgreSQL database for a benchmark: emptied before a run, analysed after a fill."""

from __future__ import annotations

from sqlalchemy import create_engine, text


def _run(url: str, statement: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
            connection.commit()
    finally:
        engine.dispose()


def wipe(url: str) -> None:
    """Every table of schema public gone: give a scratch database, never one you keep."""
    _run(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def analyze(url: str) -> None:
    """Fresh planner statistics after a bulk fill (autovacuum would get there later)."""
    if url.startswith("postgresql"):
        _run(url, "ANALYZE")

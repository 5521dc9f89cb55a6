"""Alembic environment: runs against the URL the caller configured (`newsletter init`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import newsletter.models  # noqa: F401  (registers every table on the metadata)
from newsletter.db import get_engine
from newsletter.orm import Base
from subscribers.search import include_object

config = context.config
url = config.get_main_option("sqlalchemy.url")
connection = config.attributes.get("connection")


def _run(conn: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table.
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()
        if conn.dialect.name == "sqlite":
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows that break foreign keys: {broken[:5]}")


def _run_without_foreign_keys(conn: Connection) -> None:
    """SQLite: foreign keys off while a migration copies tables (batch mode, 0002), or dropping
    the old copy would fire ON DELETE actions (SET NULL, CASCADE) on every row that points at it.
    The pragma only takes effect outside a transaction, and is checked before it is turned on."""
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        if conn.in_transaction():
            conn.commit()
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        _run(conn)
        conn.commit()
    finally:
        if sqlite:
            conn.rollback()
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")


if connection is not None:
    _run_without_foreign_keys(connection)
else:
    with get_engine(url).connect() as conn:
        _run_without_foreign_keys(conn)

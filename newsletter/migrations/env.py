"""Alembic environment: runs against the URL the caller configured (`newsletter init`)."""

from __future__ import annotations

from alembic import context

import newsletter.models  # noqa: F401  (registers every table on the metadata)
from newsletter.db import get_engine
from newsletter.orm import Base
from subscribers.search import include_object

config = context.config
url = config.get_main_option("sqlalchemy.url")
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table.
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    with get_engine(url).connect() as conn:
        _run(conn)
        conn.commit()

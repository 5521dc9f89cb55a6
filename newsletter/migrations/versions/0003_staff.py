"""subscriber search and sort indexes

Substring search (subscribers/search.py): a trigram index on each engine. Sorting the admin
list by name or status pages with (key, id) keysets, so each gets a composite index; the
(status, id) index replaces the status index (the audience query still uses its prefix).

Revision ID: 0003_staff
Revises: 0002_integrity
"""

import warnings
from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0003_staff"
down_revision: str | None = "0002_integrity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kept here, not imported: a migration must not change when the application code does.
FTS = "subscriber_search"
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER {FTS}_insert AFTER INSERT ON subscribers BEGIN
        INSERT INTO {FTS}(rowid, email, name) VALUES (new.id, new.email, new.name);
    END""",
    f"""CREATE TRIGGER {FTS}_delete AFTER DELETE ON subscribers BEGIN
        INSERT INTO {FTS}({FTS}, rowid, email, name)
        VALUES ('delete', old.id, old.email, old.name);
    END""",
    f"""CREATE TRIGGER {FTS}_update AFTER UPDATE OF email, name ON subscribers BEGIN
        INSERT INTO {FTS}({FTS}, rowid, email, name)
        VALUES ('delete', old.id, old.email, old.name);
        INSERT INTO {FTS}(rowid, email, name) VALUES (new.id, new.email, new.name);
    END""",
]


def _sqlite_has_trigram() -> bool:
    import sqlite3

    return sqlite3.sqlite_version_info >= (3, 34, 0)


def _postgres_trigram() -> bool:
    bind = op.get_bind()
    if bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").first():
        return True
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError as exc:
        warnings.warn(
            "pg_trgm could not be created (ask a superuser to run CREATE EXTENSION pg_trgm in "
            f"this database, then `newsletter init` again): {exc.orig}; subscriber search will "
            "scan the table",
            stacklevel=1,
        )
        return False
    return True


def upgrade() -> None:
    op.drop_index("ix_subscribers_status", table_name="subscribers")
    op.create_index("ix_subscribers_status_id", "subscribers", ["status", "id"])
    op.create_index("ix_subscribers_name_id", "subscribers", ["name", "id"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite" and _sqlite_has_trigram():
        op.execute(
            f"CREATE VIRTUAL TABLE {FTS} USING fts5(email, name, content='subscribers', "
            "content_rowid='id', tokenize='trigram')"
        )
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)
        op.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")
    elif dialect == "postgresql" and _postgres_trigram():
        op.execute(
            "CREATE INDEX ix_subscribers_email_trgm ON subscribers USING gin (email gin_trgm_ops)"
        )
        op.execute(
            "CREATE INDEX ix_subscribers_name_trgm ON subscribers USING gin (name gin_trgm_ops)"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for suffix in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {FTS}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_subscribers_email_trgm")
        op.execute("DROP INDEX IF EXISTS ix_subscribers_name_trgm")
    op.drop_index("ix_subscribers_name_id", table_name="subscribers")
    op.drop_index("ix_subscribers_status_id", table_name="subscribers")
    op.create_index("ix_subscribers_status", "subscribers", ["status"])

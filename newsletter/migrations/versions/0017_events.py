"""tracking events and firsts without foreign keys, and two of the events' indexes gone

- tracking_events.delivery_id, .issue_id and .matchup_id, and tracking_firsts.issue_id, lose
  their foreign keys. PostgreSQL checks each with a trigger per row: storing 128,000 events
  took 2.7 s with them and 1.35 s without them and the two indexes below (2026-12-04, by
  hand on bench.week's database), and the webhook stores 6,000,000 a week at a million
  subscribers. What they guarded holds without them: issues, matchups and deliveries are never
  deleted (erasure keeps deliveries, anonymous), so their ON DELETE clauses never ran; every
  event is stored with ids read from the ledger in the same request.
- ix_tracking_events_type goes: a dozen values, no query filters on the type alone (each
  starts from an issue or a delivery). ix_tracking_events_issue_id goes: the
  (issue_id, type, delivery_id) index finds the same rows by its first column.
- SQLite: both tables are copied into ones of the same definition without the constraints,
  keeping every row and id, and their other indexes.

Revision ID: 0017_events
Revises: 0016_reengage_indexes
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_events"
down_revision: str | None = "0016_reengage_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = {
    "tracking_events": {
        "fk_tracking_events_delivery_id_deliveries": ("delivery_id", "deliveries", "SET NULL"),
        "fk_tracking_events_issue_id_issues": ("issue_id", "issues", "SET NULL"),
        "fk_tracking_events_matchup_id_matchups": ("matchup_id", "matchups", "SET NULL"),
    },
    "tracking_firsts": {
        "fk_tracking_firsts_issue_id_issues": ("issue_id", "issues", "CASCADE"),
    },
}
INDEXES = {"ix_tracking_events_type": ["type"], "ix_tracking_events_issue_id": ["issue_id"]}


def _definition(conn: sa.Connection, table: str) -> str:
    create: str = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    ).scalar_one()
    return re.sub(
        rf'CREATE TABLE "?{table}"? \(', f'CREATE TABLE "_new_{table}" (', create, count=1
    )


def _sqlite_copy(conn: sa.Connection, table: str, definition: str) -> None:
    """`table` copied into one made by `definition`, with its indexes and every row's id."""
    indexes = list(
        conn.execute(
            sa.text(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
                "AND sql IS NOT NULL"
            ),
            {"t": table},
        ).scalars()
    )
    names = ", ".join(row[1] for row in conn.execute(sa.text(f'PRAGMA table_info("{table}")')))
    conn.execute(sa.text(definition))
    conn.execute(sa.text(f"INSERT INTO _new_{table} ({names}) SELECT {names} FROM {table}"))
    conn.execute(sa.text(f"DROP TABLE {table}"))
    conn.execute(sa.text(f"ALTER TABLE _new_{table} RENAME TO {table}"))
    for index in indexes:
        conn.execute(sa.text(index))


def upgrade() -> None:
    conn = op.get_bind()
    for name in INDEXES:
        op.drop_index(name, table_name="tracking_events")
    for table, keys in FOREIGN_KEYS.items():
        if conn.dialect.name == "sqlite":
            definition = _definition(conn, table)
            for name in keys:
                definition, found = re.subn(
                    rf",\s*CONSTRAINT {name} FOREIGN KEY\([^)]*\) REFERENCES [^,)]*\([^)]*\)"
                    r"(?: ON DELETE [A-Z ]+?)?(?=,|\s*\))",
                    "",
                    definition,
                )
                assert found == 1, (name, definition)
            _sqlite_copy(conn, table, definition)
        else:
            for name in keys:
                op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    conn = op.get_bind()
    for table, keys in FOREIGN_KEYS.items():
        if conn.dialect.name == "sqlite":
            definition = _definition(conn, table)
            added = "".join(
                f", \n\tCONSTRAINT {name} FOREIGN KEY({column}) REFERENCES {parent} (id) "
                f"ON DELETE {action}"
                for name, (column, parent, action) in keys.items()
            )
            definition = re.sub(r"\s*\)\s*$", added + "\n)", definition, count=1)
            _sqlite_copy(conn, table, definition)
        else:
            for name, (column, parent, action) in keys.items():
                op.create_foreign_key(name, table, parent, [column], ["id"], ondelete=action)
    for name, columns in INDEXES.items():
        op.create_index(name, "tracking_events", columns)

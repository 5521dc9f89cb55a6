"""the ledger's deliveries without foreign keys, and room on each page for their updates

- deliveries.issue_id, .subscriber_id and .batch_id lose their foreign keys. PostgreSQL checks
  a foreign key with a trigger per row: the snapshot of 100,000 deliveries spent 4.9 of its
  6 s in the three (bench.send_ceiling, 2026-12-03). What they guarded is kept by the code
  that writes and deletes: deliveries are made in one INSERT ... SELECT from the issue, its
  batches and the subscribers, in the same transaction; issues are never deleted, batches only
  while no delivery names them; erasing a person sets their deliveries' subscriber_id to NULL
  first (newsletter/sending/person.py), under a lock the snapshot also takes (PostgreSQL).
- ix_deliveries_issue_id goes: the unique (issue_id, subscriber_id) index finds the same rows
  (its first column), and every delivery written paid for both.
- PostgreSQL: fillfactor 50, so a delivery's two updates in a send (in flight, then sent) stay
  on its page (HOT updates: no index is rewritten). Pages already written keep their layout.
- SQLite: the table is copied into one of the same definition without the three constraints,
  keeping every id, its AUTOINCREMENT and the sequence's position.

Revision ID: 0015_ledger
Revises: 0014_topics
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_ledger"
down_revision: str | None = "0014_topics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = {
    "fk_deliveries_batch_id_send_batches": ("batch_id", "send_batches", "SET NULL"),
    "fk_deliveries_issue_id_issues": ("issue_id", "issues", "CASCADE"),
    "fk_deliveries_subscriber_id_subscribers": ("subscriber_id", "subscribers", "SET NULL"),
}
FILLFACTOR = 50


def _sqlite_copy(conn: sa.Connection, definition: str) -> None:
    """deliveries copied into a table made by `definition` (CREATE TABLE "_new_deliveries"),
    with its indexes, ids and AUTOINCREMENT sequence."""
    indexes = list(
        conn.execute(
            sa.text(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries' "
                "AND sql IS NOT NULL"
            )
        ).scalars()
    )
    sequence = conn.execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'")
    ).scalar_one_or_none()
    names = ", ".join(row[1] for row in conn.execute(sa.text('PRAGMA table_info("deliveries")')))
    conn.execute(sa.text(definition))
    conn.execute(sa.text(f"INSERT INTO _new_deliveries ({names}) SELECT {names} FROM deliveries"))
    conn.execute(sa.text("DROP TABLE deliveries"))
    conn.execute(sa.text("ALTER TABLE _new_deliveries RENAME TO deliveries"))
    if sequence is not None:
        # A copy would restart the sequence at the highest id left; a deleted row's id is
        # never given again.
        conn.execute(
            sa.text("UPDATE sqlite_sequence SET seq = max(seq, :s) WHERE name = 'deliveries'"),
            {"s": sequence},
        )
    for index in indexes:
        conn.execute(sa.text(index))


def _definition(conn: sa.Connection) -> str:
    create: str = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'")
    ).scalar_one()
    return re.sub(
        r'CREATE TABLE "?deliveries"? \(', 'CREATE TABLE "_new_deliveries" (', create, count=1
    )


def upgrade() -> None:
    conn = op.get_bind()
    op.drop_index("ix_deliveries_issue_id", table_name="deliveries")
    if conn.dialect.name == "sqlite":
        definition = _definition(conn)
        for name in FOREIGN_KEYS:
            definition, found = re.subn(
                rf"\s*CONSTRAINT {name} FOREIGN KEY\([^)]*\) REFERENCES [^,]*,", "", definition
            )
            assert found == 1, (name, definition)
        _sqlite_copy(conn, definition)
        return
    for name in FOREIGN_KEYS:
        op.drop_constraint(name, "deliveries", type_="foreignkey")
    op.execute(f"ALTER TABLE deliveries SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        definition = _definition(conn)
        keys = "".join(
            f"\n\tCONSTRAINT {name} FOREIGN KEY({column}) REFERENCES {table} (id) "
            f"ON DELETE {action}, "
            for name, (column, table, action) in FOREIGN_KEYS.items()
        )
        definition = definition.replace("\n\tCONSTRAINT ", keys + "\n\tCONSTRAINT ", 1)
        _sqlite_copy(conn, definition)
    else:
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
        for name, (column, table, action) in FOREIGN_KEYS.items():
            op.create_foreign_key(name, "deliveries", table, [column], ["id"], ondelete=action)
    op.create_index("ix_deliveries_issue_id", "deliveries", ["issue_id"])

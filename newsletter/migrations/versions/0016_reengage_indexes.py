"""partial indexes for the people asked whether they still read, and those paused for silence

The editor's numbers count both (subscribers.repository.reengagement_counts); without an index
each count read the whole subscribers table: 137 ms and 79 ms at 1,000,000 subscribers on
PostgreSQL (bench.week, 2026-12-04), on every stats page. Only the few asked or paused are in
these indexes, so they cost the rest of the list nothing.

Revision ID: 0016_reengage_indexes
Revises: 0015_ledger
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_reengage_indexes"
down_revision: str | None = "0015_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_subscribers_reengage_asked": "reengage_asked_at",
    "ix_subscribers_reengage_paused": "reengage_paused_at",
}


def upgrade() -> None:
    for name, column in INDEXES.items():
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "subscribers", [column], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="subscribers")

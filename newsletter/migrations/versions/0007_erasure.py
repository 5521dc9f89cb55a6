"""suppressions remember an erasure beside the reason, instead of in place of it

An erased address that had bounced or complained stays "complained": a sign-up form must
still never mail it. Rows erased before this revision said only "erased"; they keep that
reason and get their erasure time from when the row was made.

Revision ID: 0007_erasure
Revises: 0006_journeys
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_erasure"
down_revision: str | None = "0006_journeys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, as in 0005 and 0006: no batch rebuild of a table on SQLite.
    op.add_column("suppressions", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE suppressions SET erased_at = created_at WHERE reason = 'erased'")


def downgrade() -> None:
    op.execute("UPDATE suppressions SET reason = 'erased' WHERE erased_at IS NOT NULL")
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.drop_column("erased_at")

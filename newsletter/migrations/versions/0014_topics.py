"""the topics a subscriber chose (matchup categories); none chosen means every topic

Revision ID: 0014_topics
Revises: 0008_healing
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_topics"
down_revision: str | None = "0008_healing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new table only: subscribers (FTS5 triggers, AUTOINCREMENT) is not touched.
    op.create_table(
        "subscriber_topics",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscriber_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("subscriber_topics")

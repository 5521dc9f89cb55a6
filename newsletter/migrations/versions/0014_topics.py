"""the topics a subscriber chose (matchup categories; none chosen means every topic), the
issue's variants for them, and which variant each delivery carries

Revision ID: 0014_topics
Revises: 0010_limits
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_topics"
down_revision: str | None = "0010_limits"
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
    op.create_table(
        "issue_variants",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("mask", sa.BigInteger(), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("matchup_ids", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("preheader", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("untracked_html", sa.Text(), nullable=False),
        sa.Column("untracked_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("issue_id", "mask"),
    )
    # A plain ADD COLUMN: deliveries keeps its AUTOINCREMENT and indexes on SQLite.
    op.add_column("deliveries", sa.Column("variant", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("deliveries", "variant")
    op.drop_table("issue_variants")
    op.drop_table("subscriber_topics")

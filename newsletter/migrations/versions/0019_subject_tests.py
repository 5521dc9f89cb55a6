"""subject tests: several subjects tried on a share of the audience, the winner to the rest

- subject_tests: an issue's subjects (JSON, 2 to 4), the test share (percent), the wait before
  the winner is chosen, when the test started, and the decision (the winner, who or what chose
  it, when, and the figures it read).
- deliveries.subject: which of the test's subjects a delivery carries (1 for the first), fixed
  when the delivery is made; NULL for an issue without a test.

Revision ID: 0019_subject_tests
Revises: 0018_segments
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from newsletter.orm import UTCDateTime

revision: str = "0019_subject_tests"
down_revision: str | None = "0018_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subject_tests",
        sa.Column("issue_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("share", sa.Integer(), nullable=False),
        sa.Column("wait_minutes", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("winner", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_subject_tests_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issue_id", name=op.f("pk_subject_tests")),
    )
    op.add_column("deliveries", sa.Column("subject", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on both engines (SQLite 3.35+): a batch copy of deliveries
    # would lose its AUTOINCREMENT, and ids could then be given again.
    op.execute("ALTER TABLE deliveries DROP COLUMN subject")
    op.drop_table("subject_tests")

"""limits shared by every process: attempt counters (logins, sign-ups) and the send's rate
bucket (newsletter/limits.py)

Revision ID: 0010_limits
Revises: 0009_rollups
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_limits"
down_revision: str | None = "0009_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limit_attempts",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("times", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_limit_attempts")),
    )
    op.create_index(
        op.f("ix_limit_attempts_expires_at"), "limit_attempts", ["expires_at"], unique=False
    )
    op.create_table(
        "rate_buckets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("free_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rate_buckets")),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_index(op.f("ix_limit_attempts_expires_at"), table_name="limit_attempts")
    op.drop_table("limit_attempts")

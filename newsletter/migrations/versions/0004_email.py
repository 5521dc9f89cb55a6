"""subscribers.welcome_sent_at: the welcome mail after confirming, sent once and recorded

Revision ID: 0004_email
Revises: 0003_staff
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import newsletter.orm

revision: str = "0004_email"
down_revision: str | None = "0003_staff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(
            sa.Column("welcome_sent_at", newsletter.orm.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("welcome_sent_at")

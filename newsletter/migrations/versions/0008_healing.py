"""the ledger remembers how an uncertain delivery was settled, and when SendGrid's webhook
first showed it had taken each request; a send that paused itself says why; subscribers count
soft bounces in a row and remember asking the silent ones whether they still want the mail

Revision ID: 0008_healing
Revises: 0007_erasure
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_healing"
down_revision: str | None = "0007_erasure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs, as in 0005 to 0007: no batch rebuild of a table on SQLite (deliveries
    # keeps its AUTOINCREMENT and every index as they are).
    op.add_column("deliveries", sa.Column("settled_by", sa.String(length=32), nullable=True))
    op.add_column(
        "send_batches", sa.Column("evidence_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("issues", sa.Column("pause_reason", sa.Text(), nullable=True))
    op.add_column("issues", sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "issues", sa.Column("pause_noticed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "subscribers",
        sa.Column("soft_bounces", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("subscribers", sa.Column("soft_bounce_issue_id", sa.Integer(), nullable=True))
    for column in ("reengage_asked_at", "reengage_paused_at", "reengage_answered_at"):
        op.add_column("subscribers", sa.Column(column, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN too (SQLite 3.35+): a batch rebuild would lose deliveries' AUTOINCREMENT.
    op.drop_column("subscribers", "reengage_answered_at")
    op.drop_column("subscribers", "reengage_paused_at")
    op.drop_column("subscribers", "reengage_asked_at")
    op.drop_column("subscribers", "soft_bounce_issue_id")
    op.drop_column("subscribers", "soft_bounces")
    op.drop_column("issues", "pause_noticed_at")
    op.drop_column("issues", "resumed_at")
    op.drop_column("issues", "pause_reason")
    op.drop_column("send_batches", "evidence_at")
    op.drop_column("deliveries", "settled_by")

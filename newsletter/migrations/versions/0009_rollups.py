"""tracking keeps each issue's figures as its events arrive (tracking_rollups), with the first
time each delivery did each countable thing (tracking_firsts) so unique figures stay unique

The tables start empty; `newsletter stats check --repair` (or the upgrade below, for every
issue that already has events) fills them from the events.

Revision ID: 0009_rollups
Revises: 0008_healing
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_rollups"
down_revision: str | None = "0008_healing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracking_firsts",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=128), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_tracking_firsts_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issue_id", "kind", "delivery_id", name=op.f("pk_tracking_firsts")),
    )
    op.create_table(
        "tracking_rollups",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=128), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_tracking_rollups_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issue_id", "kind", name=op.f("pk_tracking_rollups")),
    )
    # Issues that already have events: counted once here, from the events, by the same code
    # as `newsletter stats check --repair`.
    bind = op.get_bind()
    issue_ids = [
        row[0]
        for row in bind.execute(
            sa.text("SELECT DISTINCT issue_id FROM tracking_events WHERE issue_id IS NOT NULL")
        )
    ]
    if issue_ids:
        from sqlalchemy.orm import Session

        from newsletter.tracking import rollups

        session = Session(bind=bind)
        for issue_id in issue_ids:
            resumed = session.execute(
                sa.text("SELECT resumed_at FROM issues WHERE id = :id"), {"id": issue_id}
            ).scalar()
            # Deliveries have no variant before 0014_topics.
            rollups.repair(session, issue_id, _aware(resumed), variants=False)
        session.flush()


def _aware(value: object) -> object:
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def downgrade() -> None:
    op.drop_table("tracking_rollups")
    op.drop_table("tracking_firsts")

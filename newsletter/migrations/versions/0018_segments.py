"""segments (saved filters over the list) and the audience an issue goes to

- segments: a name and a rule (JSON, newsletter/audience/rules.py), counted live.
- issues.segment_id: the segment the issue goes to (NULL: everyone mailable). No foreign key:
  adding one to issues on SQLite means copying the table, and the audience's service guards
  it (a segment an unsent issue names cannot be deleted; a send whose segment is gone is
  refused).
- issues.audience: what a started send went to (the segment's name and rule then, and how
  many), so editing or deleting the segment later does not rewrite what an issue says.

Revision ID: 0018_segments
Revises: 0017_events
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from newsletter.orm import UTCDateTime

revision: str = "0018_segments"
down_revision: str | None = "0017_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
        sqlite_autoincrement=True,
    )
    op.add_column("issues", sa.Column("segment_id", sa.Integer(), nullable=True))
    op.add_column("issues", sa.Column("audience", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("audience")
        batch.drop_column("segment_id")
    op.drop_table("segments")

"""the public web version of an issue, frozen beside the subscriber's copies

Revision ID: 0006_journeys
Revises: 0005_waysin
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_journeys"
down_revision: str | None = "0005_waysin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Issues frozen before this revision have none; the web version renders it on demand.
    # A plain ADD COLUMN, never a batch rebuild: on SQLite a rebuild would drop the
    # AUTOINCREMENT that 0002_integrity gave `issues`.
    op.add_column("issues", sa.Column("rendered_public_html", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("rendered_public_html")

"""the public web version of an issue, frozen beside the subscriber's copies

Revision ID: 0002_journeys
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_journeys"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Issues frozen before this revision have none; the web version renders it on demand.
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rendered_public_html", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("rendered_public_html")

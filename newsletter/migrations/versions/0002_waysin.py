"""users.session_key: a copied session cookie stops working at logout and account changes

Revision ID: 0002_waysin
Revises: 0001
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_waysin"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_key", sa.String(length=64), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer()), sa.column("session_key", sa.String()))
    connection = op.get_bind()
    # Each existing account a key of its own; sessions issued before this revision carry none
    # and so end: everyone signs in once more after the upgrade.
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        connection.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(session_key=secrets.token_urlsafe(32))
        )
    with op.batch_alter_table("users") as batch:
        batch.alter_column("session_key", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_key")

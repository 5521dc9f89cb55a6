"""users.session_key: a copied session cookie stops working at logout and account changes

Revision ID: 0005_waysin
Revises: 0004_email
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_waysin"
down_revision: str | None = "0004_email"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added NOT NULL with a placeholder default rather than altered afterwards: on SQLite an
    # ALTER means a batch rebuild of `users`, and a reflected rebuild would drop the
    # AUTOINCREMENT that 0002_integrity gave it (ids of removed staff must never come back).
    op.add_column(
        "users",
        sa.Column("session_key", sa.String(length=64), nullable=False, server_default=""),
    )
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
    if connection.dialect.name != "sqlite":
        op.alter_column("users", "session_key", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_key")

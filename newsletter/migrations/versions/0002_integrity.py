"""Ids never reused, links bound to a public id, matchups keyed on their two tool names.

- SQLite: subscribers, deliveries, issues and users become AUTOINCREMENT tables. Without it
  SQLite hands the highest id of a deleted row to the next row, so a link or a session made for
  an erased subscriber (or a removed user) named the next one. Each table is copied into a new
  one with the same columns, constraints and indexes (foreign keys are off while the migration
  runs, see env.py, so dropping the old table fires no ON DELETE action); the copy keeps every
  id, and SQLite's sequence starts above the highest. PostgreSQL's sequences never reuse ids.
- subscribers.public_id: a random value per person, never given again, that every link is now
  signed with. Existing rows get one here.
- matchups.pair_key: a digest of the two exact tool names, the matchup's identity (the slug is
  only its name in URLs; two pairs could reduce to one slug).
- tracking_events.email_hash: the keyed hash of the address of a provider event that matched
  no delivery, so erasing the person finds (and scrubs) it.
- instance_state: facts about this installation: the fingerprint of the suppression key, and
  the highest subscriber and delivery ids whose links were signed the old way (still honoured,
  for those rows only).
"""

from __future__ import annotations

import hashlib
import json
import re

import sqlalchemy as sa
from alembic import op

revision = "0002_integrity"
down_revision = "0002_import"
branch_labels = None
depends_on = None

AUTOINCREMENT_TABLES = ("subscribers", "deliveries", "issues", "users")


def pair_key(tool_a: str, tool_b: str) -> str:
    # The same digest as newsletter.matchups.slug.pair_key (a migration must not import the
    # code it migrates for: that code changes later).
    import unicodedata

    names = [unicodedata.normalize("NFC", tool_a), unicodedata.normalize("NFC", tool_b)]
    return hashlib.sha256(json.dumps(names, ensure_ascii=False).encode()).hexdigest()


def _sqlite_rebuild(table: str, *, column: str = "", constraint: str = "", fill: str = "") -> None:
    """Copy `table` into an AUTOINCREMENT table of the same definition, plus `column` (with
    `constraint`) filled by the SQL expression `fill`."""
    conn = op.get_bind()
    create = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    ).scalar_one()
    indexes = list(
        conn.execute(
            sa.text(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
                "AND sql IS NOT NULL"
            ),
            {"t": table},
        ).scalars()
    )
    names = ", ".join(row[1] for row in conn.execute(sa.text(f'PRAGMA table_info("{table}")')))
    new = create.replace(f"CREATE TABLE {table} (", f"CREATE TABLE _new_{table} (", 1)
    new, found = re.subn(
        r"\bid INTEGER NOT NULL,", "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,", new, count=1
    )
    assert found == 1, create
    new, found = re.subn(rf"\s*CONSTRAINT pk_{table} PRIMARY KEY \(id\),", "", new, count=1)
    assert found == 1, create
    into, values = names, names
    if column:
        new = new.replace("\n\tCONSTRAINT ", f"\n\t{column}, \n\t{constraint}, \n\tCONSTRAINT ", 1)
        into, values = f"{names}, {column.split()[0]}", f"{names}, {fill}"
    conn.execute(sa.text(new))
    conn.execute(sa.text(f"INSERT INTO _new_{table} ({into}) SELECT {values} FROM {table}"))
    conn.execute(sa.text(f"DROP TABLE {table}"))
    conn.execute(sa.text(f"ALTER TABLE _new_{table} RENAME TO {table}"))
    for index in indexes:
        conn.execute(sa.text(index))


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"

    op.create_table(
        "instance_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_state")),
    )
    # Links signed before this revision name bare ids; they stay valid for the rows that
    # existed then (ids that can no longer be given to anyone else), never for later rows.
    for name, table in (
        ("legacy_links_max_subscriber_id", "subscribers"),
        ("legacy_links_max_delivery_id", "deliveries"),
    ):
        top = conn.execute(sa.text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one()
        conn.execute(
            sa.text("INSERT INTO instance_state (name, value) VALUES (:n, :v)"),
            {"n": name, "v": str(top)},
        )

    if sqlite:
        _sqlite_rebuild(
            "subscribers",
            column="public_id VARCHAR(32) NOT NULL",
            constraint="CONSTRAINT uq_subscribers_public_id UNIQUE (public_id)",
            fill="lower(hex(randomblob(16)))",
        )
        for table in AUTOINCREMENT_TABLES[1:]:
            _sqlite_rebuild(table)
    else:
        op.add_column("subscribers", sa.Column("public_id", sa.String(length=32), nullable=True))
        conn.execute(
            sa.text(
                "UPDATE subscribers SET public_id = "
                "md5(random()::text || id::text || clock_timestamp()::text)"
            )
        )
        op.alter_column("subscribers", "public_id", nullable=False)
        op.create_unique_constraint(op.f("uq_subscribers_public_id"), "subscribers", ["public_id"])

    op.add_column("matchups", sa.Column("pair_key", sa.String(length=64), nullable=True))
    rows = conn.execute(
        sa.text(
            "SELECT m.id, m.slug, a.name, b.name FROM matchups m "
            "LEFT JOIN matchup_tools a ON a.matchup_id = m.id AND a.position = 0 "
            "LEFT JOIN matchup_tools b ON b.matchup_id = m.id AND b.position = 1"
        )
    ).all()
    for matchup_id, slug, tool_a, tool_b in rows:
        # A matchup stored without its tools has no names to key on; its slug stands in.
        key = pair_key(tool_a, tool_b) if tool_a is not None and tool_b is not None else None
        conn.execute(
            sa.text("UPDATE matchups SET pair_key = :k WHERE id = :i"),
            {"k": key or hashlib.sha256(f"slug:{slug}".encode()).hexdigest(), "i": matchup_id},
        )
    with op.batch_alter_table("matchups") as batch:
        batch.alter_column("pair_key", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint(batch.f("uq_matchups_pair_key"), ["pair_key"])

    op.add_column("tracking_events", sa.Column("email_hash", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_tracking_events_email_hash"), "tracking_events", ["email_hash"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tracking_events_email_hash"), table_name="tracking_events")
    with op.batch_alter_table("tracking_events") as batch:
        batch.drop_column("email_hash")
    with op.batch_alter_table("matchups") as batch:
        batch.drop_constraint(batch.f("uq_matchups_pair_key"), type_="unique")
        batch.drop_column("pair_key")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("public_id")
    op.drop_table("instance_state")

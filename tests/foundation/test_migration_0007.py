"""0007 on a database with erasures: each one stays an erasure, and links stay dead."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from newsletter.db import dispose_engines
from newsletter.migrate import alembic_config


def test_rows_erased_before_keep_their_reason_and_get_an_erasure_time(db_url: str) -> None:
    command.downgrade(alembic_config(db_url), "0006_journeys")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        for n, reason in enumerate(("erased", "complained", "unsubscribed")):
            conn.execute(
                text(
                    "INSERT INTO suppressions (email_hash, reason, detail, created_at) "
                    "VALUES (:h, :r, '', :t)"
                ),
                {"h": f"h{n}", "r": reason, "t": f"2026-0{n + 1}-02 09:00:00"},
            )
    engine.dispose()
    dispose_engines()

    command.upgrade(alembic_config(db_url), "head")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT email_hash, reason, erased_at FROM suppressions ORDER BY email_hash")
        ).all()
    engine.dispose()
    assert [(h, r) for h, r, _ in rows] == [
        ("h0", "erased"),
        ("h1", "complained"),
        ("h2", "unsubscribed"),
    ]
    assert str(rows[0][2]).startswith("2026-01-02 09:00:00")
    assert rows[1][2] is None and rows[2][2] is None

"""0002 on a database with data: nothing lost, links keep working, ids never reused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from newsletter.db import dispose_engines, get_engine
from newsletter.migrate import alembic_config


@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_upgrading_keeps_every_row_and_link_and_stops_id_reuse(
    engine_name: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    now = "2026-03-02 09:00:00"
    with engine.begin() as conn:
        for n in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO subscribers (id, email, email_hash, name, status, source, "
                    "consent_method, paused, tracking_opt_out, created_at, updated_at) VALUES "
                    "(:n, :e, 'h' || :n, '', 'active', '', '', 0, 0, :t, :t)"
                ),
                {"n": n, "e": f"p{n}@example.com", "t": now},
            )
        conn.execute(
            text(
                "INSERT INTO issues (id, week, status, cutoff_at, created_at, updated_at) "
                "VALUES (1, '2026-W10', 'sent', :t, :t, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO deliveries (id, issue_id, subscriber_id, status, attempts, "
                "created_at, updated_at) VALUES (7, 1, 3, 'sent', 1, :t, :t)"
            ),
            {"t": now},
        )
    engine.dispose()

    command.upgrade(alembic_config(url), "head")
    dispose_engines()
    engine = get_engine(url)  # foreign keys on, as the service runs
    with engine.begin() as conn:
        # The delivery still points at its subscriber: no ON DELETE fired during the copy.
        assert conn.execute(text("SELECT subscriber_id FROM deliveries")).scalar_one() == 3
        public = conn.execute(text("SELECT public_id FROM subscribers")).scalars().all()
        assert len(set(public)) == 3 and all(public)
        state = dict(conn.execute(text("SELECT name, value FROM instance_state")).all())
        assert state["legacy_links_max_subscriber_id"] == "3"
        assert state["legacy_links_max_delivery_id"] == "7"
        conn.execute(text("DELETE FROM subscribers WHERE id = 3"))
        conn.execute(
            text(
                "INSERT INTO subscribers (email, email_hash, public_id, name, status, source, "
                "consent_method, paused, tracking_opt_out, created_at, updated_at) VALUES "
                "('new@example.com', 'hn', 'pn', '', 'active', '', '', 0, 0, :t, :t)"
            ),
            {"t": now},
        )
        new_id = conn.execute(
            text("SELECT id FROM subscribers WHERE email = 'new@example.com'")
        ).scalar_one()
        assert new_id == 4  # never the erased person's 3
        # A row deleted by hand leaves its delivery's id behind (deliveries have no foreign
        # keys since 0015; an erasure detaches them itself): it can never name the new person.
        assert conn.execute(text("SELECT subscriber_id FROM deliveries")).scalar_one() == 3
    dispose_engines()

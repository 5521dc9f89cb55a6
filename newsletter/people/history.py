"""The admin's page about one person: their mail, newest first, from each owner."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from newsletter.sending import person as ledger
from newsletter.tracking import person as tracking
from newsletter.votes import person as votes

HISTORY_ROWS = 200  # per kind, newest first: a page, not an export (that is export.py's)


def history(session: Session, subscriber_id: int) -> dict[str, list[dict[str, Any]]]:
    """Deliveries with their issue's week, opens and clicks (with the link's label), and votes
    with the matchup."""
    return {
        "deliveries": ledger.recent_deliveries(session, subscriber_id, HISTORY_ROWS),
        "events": tracking.recent_events(session, subscriber_id, HISTORY_ROWS),
        "votes": votes.recent_votes(session, subscriber_id, HISTORY_ROWS),
    }

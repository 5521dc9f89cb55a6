"""A person's own data export: what each owner holds about them, as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from newsletter.sending import person as ledger
from newsletter.tracking import person as tracking
from newsletter.votes import person as votes
from subscribers import service as subscribers
from subscribers.models import Subscriber


def personal_data(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything the service holds about one person (their own export)."""
    data = subscribers.own_data(session, subscriber)
    activity = {
        "deliveries": ledger.deliveries(session, subscriber.id),
        "events": tracking.events(session, subscriber.id),
        "votes": votes.votes(session, subscriber.id),
    }
    for kind, rows in activity.items():
        # The export is JSON: a datetime left in it was a 500 for every reader who had been
        # sent an issue.
        data[kind] = [
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
            for row in rows
        ]
    return data

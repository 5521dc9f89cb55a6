"""Rows other areas own, made minimally, so subscriber paths can be tested through them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from newsletter.issues.models import Issue
from newsletter.sending.models import Delivery
from subscribers import service


def active_subscriber(session: Session, email: str, name: str = "") -> int:
    subscriber, _ = service.add_by_admin(session, email, name)
    return subscriber.id


def delivery_for(session: Session, subscriber_id: int, week: str = "2026-W10") -> Delivery:
    issue = session.query(Issue).filter_by(week=week).one_or_none()
    if issue is None:
        issue = Issue(week=week, cutoff_at=datetime(2026, 3, 2, tzinfo=UTC))
        session.add(issue)
        session.flush()
    delivery = Delivery(issue_id=issue.id, subscriber_id=subscriber_id)
    session.add(delivery)
    session.flush()
    return delivery

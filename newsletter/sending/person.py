"""What the ledger holds about one person: their deliveries (for their export and the admin's
history page), and forgetting what names them (erasure: newsletter/people/erasure.py).

Deliveries stay when a person is erased, their subscriber_id set to NULL here (deliveries have
no foreign key to do it: 0015_ledger): the issue's numbers keep counting them, with no link to
anyone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue
from newsletter.sending.models import Delivery, SendBatch
from newsletter.sending.repository import lock_audience
from subscribers.addresses import scrub


def deliveries(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    """Oldest first, for the person's own data export."""
    rows = session.execute(
        select(Delivery.id, Delivery.issue_id, Delivery.status, Delivery.sent_at)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id)
    ).all()
    return [{"issue_id": d.issue_id, "status": str(d.status), "sent_at": d.sent_at} for d in rows]


def recent_deliveries(session: Session, subscriber_id: int, limit: int) -> list[dict[str, Any]]:
    """Newest first, with the issue's week, for the admin's page about the person."""
    rows = session.execute(
        select(Delivery.id, Issue.week, Delivery.issue_id, Delivery.status, Delivery.sent_at)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    ).all()
    return [dict(row._mapping) for row in rows]


def forget(session: Session, subscriber_id: int, email: str) -> None:
    """Errors of the person's deliveries and of their batches lose the address, in any letter
    case (a provider's refusal often quotes it); then the deliveries lose the person.

    A snapshot running meanwhile is waited for (PostgreSQL), so none of its deliveries can
    name the person once they are gone.
    """
    lock_audience(session, shared=True)
    mine = select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)
    their_batches = select(Delivery.batch_id).where(Delivery.subscriber_id == subscriber_id)
    for model, ids in ((Delivery, mine), (SendBatch, their_batches)):
        for row_id, error in session.execute(
            select(model.id, model.error).where(model.id.in_(ids), model.error.is_not(None))
        ):
            cleaned = scrub(error or "", email)
            if cleaned != error:
                session.execute(
                    update(model)
                    .where(model.id == row_id)
                    .values(error=cleaned)
                    .execution_options(synchronize_session=False)
                )
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber_id)
        .values(subscriber_id=None)
        .execution_options(synchronize_session=False)
    )

"""SendGrid's Event Webhook: store each event once (by sg_event_id), and hand what it says
about a person to subscribers (what a bounce or complaint does is theirs to decide)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from newsletter.issues import service as issues
from newsletter.sending import service as sending
from newsletter.sending.models import DROPPED, Evidence
from newsletter.tracking import repository, rollups
from newsletter.tracking.events import NormalisedEvent, SendGridEvents
from newsletter.tracking.models import EventType
from newsletter.tracking.repository import DeliveryInfo
from newsletter.tracking.service import SENDGRID, tracking_allowed
from subscribers import service as subscribers_service


@dataclass(frozen=True, slots=True)
class IngestReport:
    received: int
    stored: int
    duplicates: int
    unmatched: int


_FOR_SUBSCRIBERS = {
    EventType.BOUNCED,
    EventType.COMPLAINED,
    EventType.UNSUBSCRIBED,
    EventType.DROPPED,
}
_READER_ACTIVITY = {EventType.OPENED, EventType.CLICKED}
# The events that say SendGrid took a request for a delivery (or dropped it), as the ledger
# names them.
_EVIDENCE = {
    EventType.PROCESSED: "processed",
    EventType.DELIVERED: "delivered",
    EventType.DEFERRED: "deferred",
    EventType.BOUNCED: "bounce",
    EventType.DROPPED: DROPPED,
}


def ingest_sendgrid(
    session: Session, raw_events: Sequence[dict[str, Any]], *, now: datetime | None = None
) -> IngestReport:
    """Store a webhook batch, once per sg_event_id, and apply what it means for subscribers."""
    received_at = now if now is not None else datetime.now(UTC)
    events = [SendGridEvents.normalise(raw, received_at=received_at) for raw in raw_events]
    deliveries = repository.delivery_infos(
        session, (e.delivery_id for e in events if e.delivery_id is not None)
    )
    rows: list[dict[str, Any]] = []
    kept: dict[str, tuple[NormalisedEvent, DeliveryInfo | None]] = {}
    unmatched = 0
    # Mail outside the ledger (confirmations, test copies) is found by its address hash when
    # the person is erased; an erased person's events are kept as counts only, never again
    # with the address that came with them.
    hashes = {
        event.provider_event_id: subscribers_service.hash_of(event.raw.get("email"))
        for event in events
        if event.delivery_id is None or event.delivery_id not in deliveries
    }
    erased = subscribers_service.erased_among(session, {h for h in hashes.values() if h})
    for event in events:
        if event.provider_event_id in kept:
            continue
        info = deliveries.get(event.delivery_id) if event.delivery_id is not None else None
        if info is None:
            unmatched += 1
        elif event.type in _READER_ACTIVITY and not tracking_allowed(info):
            continue
        kept[event.provider_event_id] = (event, info)
        email_hash = hashes.get(event.provider_event_id)
        row = _event_row(event, info, received_at)
        if (info is not None and info.subscriber_id is None) or email_hash in erased:
            row.update(raw=None, user_agent=None, detail=None)
        elif info is None:
            row["email_hash"] = email_hash
        rows.append(row)
    inserted = repository.insert_new_provider_events(session, rows)
    evidence: list[Evidence] = []
    delivered: list[int] = []
    hurting: set[int] = set()  # issues whose send got a hard bounce or a complaint now
    for event_id in inserted:
        event, info = kept[event_id]
        if info is None:
            continue
        if info.subscriber_id is not None and event.type in _FOR_SUBSCRIBERS:
            _hand_to_subscribers(session, event, info.subscriber_id, info.issue_id)
        if info.subscriber_id is not None and event.type is EventType.DELIVERED:
            delivered.append(info.subscriber_id)
        if event.hard_bounce or event.type is EventType.COMPLAINED:
            hurting.add(info.issue_id)
        kind = _EVIDENCE.get(event.type)
        if kind is not None:
            evidence.append(Evidence(info.id, kind, event.occurred_at, event.detail))
    subscribers_service.mail_delivered(session, delivered)
    # What the events say of the requests is the ledger's: it settles uncertain deliveries.
    sending.record_evidence(session, evidence, now=received_at)
    # Last before the reputation check that reads them: on PostgreSQL an issue's figures are
    # a few hot rows, locked from this upsert to the COMMIT, so concurrent batches of the same
    # issue wait on each other only for the end of their transactions. The reputation check
    # counts only what arrived after an editor resumed the send.
    resumed_at = {
        issue_id: issues.resumed_at(session, issue_id)
        for issue_id in {info.issue_id for info in deliveries.values()}
    }
    repository.roll_up(
        session, [row for row in rows if row["provider_event_id"] in inserted], resumed_at
    )
    for issue_id in sorted(hurting):
        _guard_reputation(session, issue_id, received_at)
    return IngestReport(len(events), len(inserted), len(events) - len(inserted), unmatched)


def _event_row(
    event: NormalisedEvent, info: DeliveryInfo | None, received_at: datetime
) -> dict[str, Any]:
    return {
        "type": event.type,
        "source": SENDGRID,
        "provider_event_id": event.provider_event_id,
        "provider_type": event.provider_type,
        # An id SendGrid echoes back for a delivery we do not have would break the foreign key.
        "delivery_id": info.id if info else None,
        "issue_id": info.issue_id if info else None,
        "matchup_id": None,
        "link_key": None,
        "machine": event.machine,
        "occurred_at": event.occurred_at,
        "received_at": received_at,
        "user_agent": event.user_agent,
        "detail": event.detail,
        "raw": event.raw,
        "email_hash": None,
    }


_FACTS = {
    EventType.COMPLAINED: subscribers_service.MailFact.COMPLAINT,
    EventType.UNSUBSCRIBED: subscribers_service.MailFact.UNSUBSCRIBE,
    EventType.DROPPED: subscribers_service.MailFact.DROPPED,
}


def _guard_reputation(session: Session, issue_id: int, now: datetime) -> None:
    """The send's hard bounces and complaints so far (each delivery once, read from the issue's
    figures), to the ledger, which pauses the send past the thresholds."""
    # After an editor resumed the send, only what arrived since counts: they saw the rest.
    counts = rollups.reputation(session, issue_id, issues.resumed_at(session, issue_id))
    sending.guard_reputation(
        session,
        issue_id,
        hard_bounces=counts.hard_bounces,
        complaints=counts.complaints,
        now=now,
    )


def _hand_to_subscribers(
    session: Session, event: NormalisedEvent, subscriber_id: int, issue_id: int
) -> None:
    """Tell subscribers what the provider reported; what it means for the person is theirs to
    decide (subscribers.service.on_mail_fact)."""
    if event.type is EventType.BOUNCED:
        fact = (
            subscribers_service.MailFact.HARD_BOUNCE
            if event.hard_bounce
            else subscribers_service.MailFact.SOFT_BOUNCE
        )
    else:
        fact = _FACTS[event.type]
    if fact is subscribers_service.MailFact.DROPPED:
        # SendGrid's reason alone: whether the drop is for ever is read from it.
        detail = str(event.raw.get("reason") or "")[:500]
    else:
        detail = event.detail or event.provider_type
    subscribers_service.on_mail_fact(session, subscriber_id, fact, detail, issue_id=issue_id)

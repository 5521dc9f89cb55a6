"""GDPR erasure: each owner forgets the person, in one transaction (the caller's).

The ledger and tracking keep their rows as counts with nothing that names the person (their
`person.forget`); votes stay counted, anonymous (ON DELETE SET NULL); subscribers deletes the
row and keeps the keyed hash on the suppression list, so an import or an admin cannot put the
address back. A failure anywhere rolls back every part.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.sending import person as ledger
from newsletter.tracking import person as tracking
from subscribers import service as subscribers
from subscribers.service import BulkAction


def erase(session: Session, subscriber_id: int, *, compact: bool = True) -> bool:
    """Erase one person; False if there is nobody with that id. `compact`: the search index
    forgets the address now (a bulk erasure does it once at the end)."""
    subscriber = subscribers.get(session, subscriber_id)
    if subscriber is None:
        return False
    tracking.forget(session, subscriber.id, subscriber.email, subscriber.email_hash)
    ledger.forget(session, subscriber.id, subscriber.email)
    subscribers.forget(session, subscriber, compact=compact)
    return True


def apply_bulk(session: Session, action: BulkAction, subscriber_ids: list[int]) -> int:
    """The admin's bulk actions: erasure here, the others in subscribers' service. All of them
    or, on an error, none; returns how many changed."""
    if action is not BulkAction.ERASE:
        return subscribers.apply_bulk(session, action, subscriber_ids)
    changed = sum(erase(session, subscriber_id, compact=False) for subscriber_id in subscriber_ids)
    if changed:
        subscribers.compact_search_index(session)
    return changed

"""Who an unsubscribe or preferences link is for.

A link from an issue carries a delivery token (the ledger knows whose delivery it is); a link
from a confirmation or welcome mail carries a subscriber token (subscribers knows it).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.instance import legacy_max_id
from newsletter.security.delivery_tokens import LEGACY_MAX_DELIVERY_ID, read_delivery_token
from newsletter.sending import service as ledger
from subscribers import service as subscribers
from subscribers.models import Subscriber


def resolve_token(session: Session, token: str) -> Subscriber | None:
    """The subscriber a link is for. None for a bad, expired or erased one, and for one made
    for someone else than the delivery's or id's holder now."""
    link = read_delivery_token(token)
    if link is None:
        return subscribers.resolve_subscriber_token(session, token)
    delivery = ledger.get_delivery(session, link.delivery_id)
    if delivery is None or delivery.subscriber_id is None:
        return None
    subscriber = subscribers.get(session, delivery.subscriber_id)
    legacy_max = 0 if link.public_id else legacy_max_id(session, LEGACY_MAX_DELIVERY_ID)
    if subscriber is None or not link.holds_for(subscriber.public_id, legacy_max):
        return None
    return subscriber

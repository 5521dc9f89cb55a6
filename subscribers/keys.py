"""The suppression key must never change silently: a new key forgets every suppression.

Suppressed and erased addresses are kept only as keyed hashes (addresses.py). With another key
(NEWSLETTER_SUPPRESSION_KEY, or NEWSLETTER_SECRET_KEY it falls back to), no hash matches any
more: every unsubscribe, bounce, complaint and erasure is forgotten and those people can be
added and mailed again. So the database keeps a fingerprint of the key it was hashed with, and
every process that hashes addresses refuses to start with another one.
"""

from __future__ import annotations

import hmac

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.instance import get_value, set_value
from newsletter.settings import get_settings
from subscribers.addresses import address_hash
from subscribers.models import Subscriber

FINGERPRINT = "suppression_key_fingerprint"


class SuppressionKeyChanged(RuntimeError):
    pass


def _fingerprint() -> str:
    # The hash of a fixed text under the key: says nothing about any address, nor the key.
    return address_hash("\x00suppression-key-fingerprint")[:32]


def _message() -> str:
    settings = get_settings()
    which = (
        "NEWSLETTER_SUPPRESSION_KEY"
        if settings.newsletter_suppression_key
        else "NEWSLETTER_SECRET_KEY (NEWSLETTER_SUPPRESSION_KEY is not set and falls back to it)"
    )
    return (
        f"{which} is not the key this database's suppression list was hashed with: with it, "
        "every unsubscribe, bounce and erasure would be forgotten. Set NEWSLETTER_SUPPRESSION_KEY "
        "to the key used before (the previous NEWSLETTER_SECRET_KEY if it was never set); "
        "see docs/operations.md, 'Keys'."
    )


def check_suppression_key(session: Session) -> None:
    """Refuse a key other than the one the stored hashes were made with; remember the key of a
    database that has none recorded yet (checked first against a stored subscriber's hash)."""
    current = _fingerprint()
    stored = get_value(session, FINGERPRINT)
    if stored is not None:
        if not hmac.compare_digest(stored, current):
            raise SuppressionKeyChanged(_message())
        return
    sample = session.execute(select(Subscriber.email, Subscriber.email_hash).limit(1)).first()
    if sample is not None and not hmac.compare_digest(address_hash(sample[0]), sample[1]):
        raise SuppressionKeyChanged(_message())
    set_value(session, FINGERPRINT, current)

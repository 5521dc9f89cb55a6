"""What can happen to a subscriber: consent, confirmation, leaving, coming back, erasure.

Services flush and never commit: the CLI command or web request owns the transaction. Mail is
sent by the caller after the commit (subscribers/emails.py), so a confirmation link never
points at a row that was rolled back.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from newsletter.numbers import ascii_int
from newsletter.orm import utcnow
from newsletter.personalize import read_delivery_token
from newsletter.security.signing import sign, unsign
from newsletter.sending import repository as sending_repository
from subscribers import repository
from subscribers.addresses import address_hash, normalise
from subscribers.models import Subscriber, SubscriberStatus

CONFIRM_PURPOSE = "confirm"
SUBSCRIBER_PURPOSE = "subscriber"
# Long enough for someone who reads mail weekly; short enough that an old mail is not a key.
CONFIRM_TTL_SECONDS = 7 * 24 * 3600
SUBSCRIBER_TOKEN_TTL_SECONDS = 90 * 24 * 3600

LEFT = repository.LEFT


class SubscriberError(ValueError):
    """A refused request, with a message for the person or admin who made it."""


class Suppressed(SubscriberError):
    pass


class Outcome(enum.StrEnum):
    ADDED = "added"
    ACTIVATED = "activated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ConfirmationRequest:
    """A confirmation mail to send once the transaction that asked for it has committed."""

    email: str
    name: str
    token: str


# --- tokens ---------------------------------------------------------------------------------


def confirmation_token(subscriber: Subscriber) -> str:
    assert subscriber.confirm_sent_at is not None
    return confirmation_token_for(subscriber.id, subscriber.confirm_sent_at)


def confirmation_token_for(subscriber_id: int, confirm_sent_at: datetime) -> str:
    """Names the request it answers, so a newer request or an unsubscribe voids it."""
    value = f"{subscriber_id}:{confirm_sent_at.isoformat()}"
    return sign(CONFIRM_PURPOSE, value, expires_in=CONFIRM_TTL_SECONDS)


def subscriber_token(subscriber_id: int) -> str:
    """A link credential for one subscriber outside any issue (e.g. after confirming)."""
    return sign(SUBSCRIBER_PURPOSE, str(subscriber_id), expires_in=SUBSCRIBER_TOKEN_TTL_SECONDS)


def resolve_token(session: Session, token: str) -> Subscriber | None:
    """The subscriber an unsubscribe/preferences link is for: a delivery token from an issue,
    or a subscriber token. None for a bad, expired or erased one."""
    delivery_id = read_delivery_token(token)
    if delivery_id is not None:
        delivery = sending_repository.get_delivery(session, delivery_id)
        subscriber_id = delivery.subscriber_id if delivery is not None else None
    else:
        value = unsign(SUBSCRIBER_PURPOSE, token)
        subscriber_id = ascii_int(value) if value is not None else None
    return repository.get(session, subscriber_id) if subscriber_id is not None else None


def _read_confirmation(token: str) -> tuple[int, datetime] | None:
    value = unsign(CONFIRM_PURPOSE, token)
    if value is None:
        return None
    raw_id, _, raw_when = value.partition(":")
    try:
        return int(raw_id), datetime.fromisoformat(raw_when)
    except ValueError:
        return None


# --- joining --------------------------------------------------------------------------------


def find(session: Session, raw_email: str) -> Subscriber | None:
    return repository.get_by_email(session, normalise(raw_email))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_name(raw: str) -> str:
    """A name as one line of text, control characters (CR/LF, tabs…) turned to spaces.

    Names come from strangers and end up in To: headers, pages and exports.
    """
    return " ".join(_CONTROL.sub(" ", raw).split())


def _new(email: str, name: str, status: SubscriberStatus, source: str) -> Subscriber:
    now = utcnow()
    return Subscriber(
        email=email,
        email_hash=address_hash(email),
        name=clean_name(name),
        status=status,
        source=source,
        consent_method="",
        paused=False,
        tracking_opt_out=False,
        created_at=now,
        updated_at=now,
    )


def add_by_admin(
    session: Session, raw_email: str, name: str = "", *, source: str = "cli"
) -> tuple[Subscriber, Outcome]:
    """The admin vouches for this person's consent: active at once, consent recorded as admin.

    An address that left (or was erased) is refused: only the person's own new consent can
    bring it back, e.g. through a confirmation mail.
    """
    email = normalise(raw_email)
    email_hash = address_hash(email)
    existing = repository.get_by_email(session, email)
    suppression = repository.suppression_for(session, email_hash)
    if existing is not None and existing.status in LEFT:
        raise Suppressed(
            f"{email} is {existing.status.value}; only their own consent brings it back (send them a confirmation with --confirm)"
        )
    if suppression is not None:
        raise Suppressed(
            f"{email} is suppressed ({suppression.reason}); only their own consent brings it back (send them a confirmation with --confirm)"
        )
    now = utcnow()
    consent: dict[str, Any] = {
        "consent_at": now,
        "consent_ip": None,
        "consent_method": "admin",
        "confirmed_at": now,
    }
    if existing is None:
        subscriber = _new(email, name, SubscriberStatus.ACTIVE, source)
        for key, value in consent.items():
            setattr(subscriber, key, value)
        return repository.add(session, subscriber), Outcome.ADDED
    if existing.status == SubscriberStatus.PENDING and repository.transition(
        session,
        existing.id,
        to=SubscriberStatus.ACTIVE,
        allowed_from=[SubscriberStatus.PENDING],
        confirm_sent_at=None,
        **consent,
    ):
        return _reload(session, existing.id), Outcome.ACTIVATED
    return existing, Outcome.UNCHANGED


def request_confirmation(
    session: Session, raw_email: str, name: str = "", *, source: str
) -> ConfirmationRequest | None:
    """Double opt-in, step one: a pending row and a confirmation to mail.

    Someone who is already active gets nothing (the answer to the form is the same, so it does
    not tell a stranger who is on the list). Someone who left, or was erased, may come back
    this way: the mail goes to the address itself, so confirming is their own consent.
    """
    email = normalise(raw_email)
    existing = repository.get_by_email(session, email)
    now = utcnow()
    if existing is None:
        subscriber = _new(email, name, SubscriberStatus.PENDING, source)
        subscriber.confirm_sent_at = now
        repository.add(session, subscriber)
    elif existing.status == SubscriberStatus.ACTIVE:
        return None
    else:
        subscriber = existing
        subscriber.confirm_sent_at = now
        if clean_name(name) and subscriber.status == SubscriberStatus.PENDING:
            subscriber.name = clean_name(name)
        session.flush()
    return ConfirmationRequest(subscriber.email, subscriber.name, confirmation_token(subscriber))


class ConfirmState(enum.StrEnum):
    READY = "ready"  # a valid link for a pending request: show the button
    DONE = "done"  # already active
    INVALID = "invalid"  # forged, expired, superseded, or the person is gone


def confirmation_state(session: Session, token: str) -> tuple[ConfirmState, Subscriber | None]:
    parsed = _read_confirmation(token)
    if parsed is None:
        return ConfirmState.INVALID, None
    subscriber = repository.get(session, parsed[0])
    if subscriber is None:
        return ConfirmState.INVALID, None
    if subscriber.status == SubscriberStatus.ACTIVE:
        return ConfirmState.DONE, subscriber
    if subscriber.confirm_sent_at != parsed[1]:
        return ConfirmState.INVALID, None
    return ConfirmState.READY, subscriber


def confirm(
    session: Session, token: str, *, ip: str | None
) -> tuple[ConfirmState, Subscriber | None]:
    """Double opt-in, step two (the button's POST): active, consent recorded, suppression
    lifted: this is the person's own new consent."""
    state, subscriber = confirmation_state(session, token)
    if state != ConfirmState.READY or subscriber is None:
        return state, subscriber
    now = utcnow()
    assert subscriber.confirm_sent_at is not None
    if not repository.confirm(
        session,
        subscriber.id,
        subscriber.confirm_sent_at,
        consent_at=now,
        consent_ip=ip,
        consent_method="double-opt-in",
        confirmed_at=now,
        unsubscribed_at=None,
    ):
        return confirmation_state(session, token)
    repository.lift_suppression(session, subscriber.email_hash)
    return ConfirmState.DONE, _reload(session, subscriber.id)


def resubscribe(session: Session, subscriber_id: int, *, ip: str | None) -> bool:
    """From the person's own preferences page: their new consent, so it lifts suppression."""
    subscriber = repository.get(session, subscriber_id)
    if subscriber is None:
        return False
    now = utcnow()
    changed = repository.transition(
        session,
        subscriber_id,
        to=SubscriberStatus.ACTIVE,
        allowed_from=[*LEFT, SubscriberStatus.PENDING],
        consent_at=now,
        consent_ip=ip,
        consent_method="preferences",
        confirmed_at=subscriber.confirmed_at or now,
        confirm_sent_at=None,
        unsubscribed_at=None,
    )
    if changed:
        repository.lift_suppression(session, subscriber.email_hash)
    return changed


# --- leaving --------------------------------------------------------------------------------


def unsubscribe(session: Session, subscriber_id: int, *, reason: str = "unsubscribed") -> bool:
    """Stop mail at once. True if this call changed the status (a repeat is harmless)."""
    subscriber = repository.get(session, subscriber_id)
    if subscriber is None:
        return False
    changed = repository.transition(
        session,
        subscriber_id,
        to=SubscriberStatus.UNSUBSCRIBED,
        allowed_from=[SubscriberStatus.ACTIVE, SubscriberStatus.PENDING],
        unsubscribed_at=utcnow(),
        confirm_sent_at=None,
    )
    repository.suppress(session, subscriber.email_hash, reason)
    return changed


def mark_bounced(session: Session, subscriber_id: int, detail: str) -> bool:
    """A permanent bounce: the address does not receive mail; suppressed."""
    return _suppress_as(
        session,
        subscriber_id,
        SubscriberStatus.BOUNCED,
        [SubscriberStatus.ACTIVE, SubscriberStatus.PENDING],
        detail,
    )


def mark_complained(session: Session, subscriber_id: int, detail: str) -> bool:
    """A spam complaint outranks any other state: never mail them again unasked."""
    return _suppress_as(
        session,
        subscriber_id,
        SubscriberStatus.COMPLAINED,
        [
            SubscriberStatus.ACTIVE,
            SubscriberStatus.PENDING,
            SubscriberStatus.UNSUBSCRIBED,
            SubscriberStatus.BOUNCED,
        ],
        detail,
    )


def _suppress_as(
    session: Session,
    subscriber_id: int,
    status: SubscriberStatus,
    allowed_from: list[SubscriberStatus],
    detail: str,
) -> bool:
    subscriber = repository.get(session, subscriber_id)
    if subscriber is None:
        return False
    changed = repository.transition(
        session, subscriber_id, to=status, allowed_from=allowed_from, confirm_sent_at=None
    )
    repository.suppress(session, subscriber.email_hash, status.value, detail[:2000])
    return changed


def set_paused(session: Session, subscriber_id: int, paused: bool) -> None:
    repository.set_flags(session, subscriber_id, paused=paused)


def set_tracking_opt_out(session: Session, subscriber_id: int, opt_out: bool) -> None:
    repository.set_flags(session, subscriber_id, tracking_opt_out=opt_out)


def erase(session: Session, subscriber_id: int) -> bool:
    """GDPR erasure: the row goes, the keyed hash stays on the suppression list (so an import
    or an admin cannot put the address back), past deliveries and events stay counted with
    no link to the person."""
    subscriber = repository.get(session, subscriber_id)
    if subscriber is None:
        return False
    repository.scrub_activity(session, subscriber.id, subscriber.email)
    repository.mark_erased(session, subscriber.email_hash, subscriber.email)
    repository.delete_subscriber(session, subscriber.id)
    return True


# --- reading --------------------------------------------------------------------------------


def _reload(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = repository.get(session, subscriber_id)
    assert subscriber is not None
    return subscriber


def to_json(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status.value,
        "paused": subscriber.paused,
        "tracking_opt_out": subscriber.tracking_opt_out,
        "source": subscriber.source,
        "consent": {
            "at": subscriber.consent_at.isoformat() if subscriber.consent_at else None,
            "ip": subscriber.consent_ip,
            "method": subscriber.consent_method or None,
        },
        "confirmed_at": subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else None,
        "unsubscribed_at": (
            subscriber.unsubscribed_at.isoformat() if subscriber.unsubscribed_at else None
        ),
        "created_at": subscriber.created_at.isoformat(),
        "updated_at": subscriber.updated_at.isoformat(),
    }


def personal_data(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything the service holds about one person (their own export)."""
    data = to_json(subscriber)
    for kind, rows in repository.activity(session, subscriber.id).items():
        # The export is JSON: a datetime left in it was a 500 for every reader who had been
        # sent an issue.
        data[kind] = [
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
            for row in rows
        ]
    return data

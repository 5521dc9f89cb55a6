"""What can happen to a subscriber: consent, confirmation, leaving, coming back, erasure.

Services flush and never commit: the CLI command or web request owns the transaction. Mail is
sent by the caller after the commit (subscribers/emails.py), so a confirmation link never
points at a row that was rolled back.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

from newsletter.errors import Refused
from newsletter.instance import legacy_max_id
from newsletter.numbers import ascii_int
from newsletter.orm import utcnow
from newsletter.security.signing import sign, unsign
from newsletter.settings import get_settings
from subscribers import bulk, repository
from subscribers.addresses import InvalidAddress, address_hash, normalise
from subscribers.models import Subscriber, SubscriberStatus, Suppression

# Every link names the subscriber's public id (random, never given again), so it can only ever
# open that person's data. The purposes before public ids ("confirm", "subscriber") named bare
# ids; they are honoured only for subscribers who existed then (LEGACY_MAX_SUBSCRIBER_ID).
CONFIRM_PURPOSE = "confirm-v2"
SUBSCRIBER_PURPOSE = "subscriber-v2"
LEGACY_CONFIRM_PURPOSE = "confirm"
LEGACY_SUBSCRIBER_PURPOSE = "subscriber"
LEGACY_MAX_SUBSCRIBER_ID = "legacy_links_max_subscriber_id"
# Long enough for someone who reads mail weekly; short enough that an old mail is not a key.
CONFIRM_TTL_SECONDS = 7 * 24 * 3600
SUBSCRIBER_TOKEN_TTL_SECONDS = 90 * 24 * 3600

LEFT = repository.LEFT


class SubscriberError(Refused):
    """A refused request, with a message for the person or admin who made it."""


class Suppressed(SubscriberError):
    pass


class AddOutcome(enum.StrEnum):
    ADDED = "added"
    ACTIVATED = "activated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ConfirmationRequest:
    """A confirmation mail to send once the transaction that asked for it has committed."""

    email: str
    name: str
    token: str


@dataclass(frozen=True)
class WelcomeRequest:
    """A welcome mail to send once the confirmation has committed (claimed: sent only once)."""

    subscriber_id: int
    email: str
    token: str  # a subscriber token: the mail's preferences and unsubscribe links
    claimed_at: datetime
    latest_week: str | None  # the latest issue readers received, for its web version


# --- tokens ---------------------------------------------------------------------------------


def confirmation_token(subscriber: Subscriber) -> str:
    assert subscriber.confirm_sent_at is not None
    return confirmation_token_for(subscriber.public_id, subscriber.confirm_sent_at)


def confirmation_token_for(public_id: str, confirm_sent_at: datetime) -> str:
    """Names the request it answers, so a newer request or an unsubscribe voids it."""
    value = f"{public_id}:{confirm_sent_at.isoformat()}"
    return sign(CONFIRM_PURPOSE, value, expires_in=CONFIRM_TTL_SECONDS)


def subscriber_token(public_id: str) -> str:
    """A link credential for one subscriber outside any issue (e.g. after confirming)."""
    return sign(SUBSCRIBER_PURPOSE, public_id, expires_in=SUBSCRIBER_TOKEN_TTL_SECONDS)


def resolve_subscriber_token(session: Session, token: str) -> Subscriber | None:
    """The subscriber a subscriber token (not a delivery's) names; None for a bad, expired or
    erased one. Links from an issue carry a delivery token: newsletter/people/links.py reads
    both."""
    public_id = unsign(SUBSCRIBER_PURPOSE, token)
    if public_id is not None:
        return repository.get_by_public_id(session, public_id)
    value = unsign(LEGACY_SUBSCRIBER_PURPOSE, token)
    subscriber_id = ascii_int(value) if value is not None else None
    return _legacy_subscriber(session, subscriber_id)


def _legacy_subscriber(session: Session, subscriber_id: int | None) -> Subscriber | None:
    """The subscriber a link signed before public ids names, if it existed then."""
    if subscriber_id is None or subscriber_id > legacy_max_id(session, LEGACY_MAX_SUBSCRIBER_ID):
        return None
    return repository.get(session, subscriber_id)


def _read_confirmation(session: Session, token: str) -> tuple[Subscriber | None, datetime] | None:
    """(whom a confirmation link is for, the request it answers), or None for a bad link."""
    value = unsign(CONFIRM_PURPOSE, token)
    legacy = value is None
    if legacy:
        value = unsign(LEGACY_CONFIRM_PURPOSE, token)
    if value is None:
        return None
    who, _, raw_when = value.partition(":")
    try:
        when = datetime.fromisoformat(raw_when)
    except ValueError:
        return None
    if legacy:
        return _legacy_subscriber(session, ascii_int(who)), when
    return repository.get_by_public_id(session, who), when


# --- joining --------------------------------------------------------------------------------


def get(session: Session, subscriber_id: int) -> Subscriber | None:
    return repository.get(session, subscriber_id)


def mailable_ids_select() -> Select[int]:
    """Who an issue goes to, as a SELECT of ids (active, not paused, not suppressed): the
    ledger snapshots its audience from it in one statement."""
    return repository.mailable_ids_select()


def mailable() -> ColumnElement[bool]:
    """The same rule as a condition on subscribers' rows, for a query that reads them anyway
    (a batch's recipients, the snapshot)."""
    return repository.mailable()


def is_paused(session: Session, subscriber_id: int) -> bool:
    subscriber = repository.get(session, subscriber_id)
    return bool(subscriber is not None and subscriber.paused)


def mailable_count(session: Session) -> int:
    return repository.mailable_count(session)


def suppressed_among(session: Session, hashes: Sequence[str]) -> set[str]:
    return bulk.suppressed_among(session, hashes)


def suppression_for(session: Session, email_hash: str) -> Suppression | None:
    return repository.suppression_for(session, email_hash)


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
) -> tuple[Subscriber, AddOutcome]:
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
        return repository.add(session, subscriber), AddOutcome.ADDED
    if existing.status == SubscriberStatus.PENDING and repository.transition(
        session,
        existing.id,
        to=SubscriberStatus.ACTIVE,
        allowed_from=[SubscriberStatus.PENDING],
        confirm_sent_at=None,
        **consent,
    ):
        return _reload(session, existing.id), AddOutcome.ACTIVATED
    return existing, AddOutcome.UNCHANGED


def request_confirmation(
    session: Session,
    raw_email: str,
    name: str = "",
    *,
    source: str,
    topics: Sequence[str] = (),
) -> ConfirmationRequest | None:
    """Double opt-in, step one: a pending row and a confirmation to mail.

    Someone who is already active gets nothing (the answer to the form is the same, so it does
    not tell a stranger who is on the list). Someone who unsubscribed, or was erased, may come
    back this way: the mail goes to the address itself, so confirming is their own consent.
    An address that bounced or complained gets nothing either, and nothing is written: mail
    to a dead mailbox or to someone who called ours spam hurts every reader's delivery, and
    anyone may type any address into the form.

    `topics` (checked by the door) are kept for a new or still pending request only: a
    stranger's form cannot change what someone already on the list reads.
    """
    email = normalise(raw_email)
    existing = repository.get_by_email(session, email)
    if _never_mail(session, email, existing):
        return None
    now = utcnow()
    if existing is None:
        subscriber = _new(email, name, SubscriberStatus.PENDING, source)
        subscriber.confirm_sent_at = now
        repository.add(session, subscriber)
        if topics:
            set_topics(session, subscriber.id, topics)
    elif existing.status == SubscriberStatus.ACTIVE:
        return None
    else:
        subscriber = existing
        subscriber.confirm_sent_at = now
        if subscriber.status == SubscriberStatus.PENDING:
            if clean_name(name):
                subscriber.name = clean_name(name)
            if topics:
                set_topics(session, subscriber.id, topics)
        session.flush()
    return ConfirmationRequest(subscriber.email, subscriber.name, confirmation_token(subscriber))


_UNMAILABLE = frozenset({SubscriberStatus.BOUNCED.value, SubscriberStatus.COMPLAINED.value})


def _never_mail(session: Session, email: str, existing: Subscriber | None) -> bool:
    if existing is not None and existing.status.value in _UNMAILABLE:
        return True
    suppression = repository.suppression_for(session, address_hash(email))
    return suppression is not None and suppression.reason in _UNMAILABLE


class ConfirmState(enum.StrEnum):
    READY = "ready"  # a valid link for a pending request: show the button
    DONE = "done"  # already active
    INVALID = "invalid"  # forged, expired, superseded, or the person is gone


def confirmation_state(session: Session, token: str) -> tuple[ConfirmState, Subscriber | None]:
    parsed = _read_confirmation(session, token)
    if parsed is None or parsed[0] is None:
        return ConfirmState.INVALID, None
    subscriber = parsed[0]
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


def claim_welcome(
    session: Session, subscriber: Subscriber, latest_week: str | None
) -> WelcomeRequest | None:
    """The welcome mail for a subscriber who just confirmed, unless one was already sent."""
    now = utcnow()
    if not repository.claim_welcome(session, subscriber.id, now):
        return None
    return WelcomeRequest(
        subscriber.id, subscriber.email, subscriber_token(subscriber.public_id), now, latest_week
    )


def welcome_not_sent(session: Session, request: WelcomeRequest) -> None:
    repository.release_welcome(session, request.subscriber_id, request.claimed_at)


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


class MailFact(enum.StrEnum):
    """What the mail provider reported about a person's mail (tracking stores the event and
    hands the fact here; what it does to the subscriber is decided here)."""

    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"  # "blocked", a full mailbox: temporary, the address stays
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    # SendGrid refused to send to the address; its reason says whether for ever (DROP_REASONS).
    DROPPED = "dropped"


# SendGrid's reasons for a drop that will recur for every later mail (the address is on its own
# bounce, spam-report or unsubscribe list, or is not an address), and what each makes of the
# subscriber here. Other drops ("Recipient List over Package Quota", "Invalid SMTPAPI header",
# "Spam Content") are about the request, not the person: nothing changes.
DROP_REASONS = {
    "bounced address": SubscriberStatus.BOUNCED,
    "invalid": SubscriberStatus.BOUNCED,
    "spam reporting address": SubscriberStatus.COMPLAINED,
    "unsubscribed address": SubscriberStatus.UNSUBSCRIBED,
}


def on_mail_fact(
    session: Session,
    subscriber_id: int,
    fact: MailFact,
    detail: str,
    *,
    issue_id: int | None = None,
) -> bool:
    """Apply a provider's report: a permanent bounce suppresses the address as bounced, a
    complaint as complained (outranking any other state), an unsubscribe (SendGrid's own
    link, a list-unsubscribe) as unsubscribed; a temporary bounce changes nothing; a drop for a
    reason SendGrid keeps for ever (its own bounce, spam-report or unsubscribe list) does what
    that reason would have done here; soft bounces of NEWSLETTER_SOFT_BOUNCE_PAUSE_AFTER issues
    in a row (`issue_id`: the one the mail was) pause the subscriber. True if the status or the
    pause changed."""
    if fact is MailFact.HARD_BOUNCE:
        return mark_bounced(session, subscriber_id, detail)
    if fact is MailFact.COMPLAINT:
        return mark_complained(session, subscriber_id, detail)
    if fact is MailFact.UNSUBSCRIBE:
        return unsubscribe(session, subscriber_id, reason="unsubscribed")
    if fact is MailFact.SOFT_BOUNCE:
        if issue_id is None:
            return False
        in_a_row = repository.count_soft_bounce(session, subscriber_id, issue_id)
        if in_a_row >= get_settings().newsletter_soft_bounce_pause_after:
            return repository.set_paused_if_subscribed(session, subscriber_id, True)
        return False
    if fact is MailFact.DROPPED:
        becomes = DROP_REASONS.get(detail.strip().lower())
        note = f"dropped by SendGrid: {detail}"
        if becomes is SubscriberStatus.BOUNCED:
            return mark_bounced(session, subscriber_id, note)
        if becomes is SubscriberStatus.COMPLAINED:
            return mark_complained(session, subscriber_id, note)
        if becomes is SubscriberStatus.UNSUBSCRIBED:
            return unsubscribe(session, subscriber_id, reason="unsubscribed")
    return False


def mail_delivered(session: Session, subscriber_ids: Sequence[int]) -> None:
    """The provider delivered to them: soft bounces in a row start again from none."""
    repository.reset_soft_bounces(session, subscriber_ids)


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
    """The person's (or an admin's) own pause or resume; resuming also answers a "still want
    this?" question, and a chosen pause is theirs, not the silence's."""
    repository.set_paused(session, subscriber_id, paused)


def set_tracking_opt_out(session: Session, subscriber_id: int, opt_out: bool) -> None:
    repository.set_flags(session, subscriber_id, tracking_opt_out=opt_out)


def forget(session: Session, subscriber: Subscriber, *, compact: bool = True) -> None:
    """The subscribers' part of an erasure (newsletter/people/erasure.py asks every owner in
    turn): the row goes, the keyed hash stays on the suppression list marked erased (so an
    import or an admin cannot put the address back), and the search index forgets the address
    (`compact`; a bulk erasure compacts once at the end)."""
    repository.mark_erased(session, subscriber.email_hash, subscriber.email)
    repository.delete_subscriber(session, subscriber.id)
    if compact:
        repository.compact_search_index(session)


def compact_search_index(session: Session) -> None:
    repository.compact_search_index(session)


class BulkAction(enum.StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    PAUSE = "pause"
    RESUME = "resume"
    ERASE = "erase"  # carried out by newsletter/people/erasure.py: every owner forgets


def apply_bulk(session: Session, action: BulkAction, subscriber_ids: list[int]) -> int:
    """One action on many subscribers through the same steps as one at a time (suppression),
    in the caller's transaction: all of them or, on an error, none. Returns how many changed.
    Erasure spans every domain and is `newsletter.people.erasure.apply_bulk`'s."""
    if action is BulkAction.ERASE:
        raise ValueError("erasure is newsletter.people.erasure's: every owner forgets the person")
    changed = 0
    for subscriber_id in subscriber_ids:
        if action is BulkAction.UNSUBSCRIBE:
            changed += unsubscribe(session, subscriber_id, reason="admin")
        else:
            # Only people still on the list, and only a real change, count: "2 of 2 paused"
            # for someone who had unsubscribed said what did not happen.
            changed += repository.set_paused_if_subscribed(
                session, subscriber_id, action is BulkAction.PAUSE
            )
    return changed


NAME_CHARS = 200


def rename(session: Session, subscriber_id: int, raw_name: str) -> str:
    """The admin corrects a name; returns it as stored (one line, trimmed)."""
    name = clean_name(raw_name)
    if len(name) > NAME_CHARS:
        raise SubscriberError(f"the name is {len(name)} characters; at most {NAME_CHARS}")
    if not repository.rename(session, subscriber_id, name):
        raise SubscriberError(f"no subscriber {subscriber_id} (erased?)")
    return name


def suppression_of(session: Session, raw_email: str) -> tuple[str, Suppression | None]:
    """Look an address up on the suppression list (which holds only its keyed hash)."""
    email_hash = address_hash(normalise(raw_email))
    return email_hash, repository.suppression_for(session, email_hash)


def suppress_by_hand(session: Session, raw_email: str, note: str) -> bool:
    """An admin adds an address (a role account, someone who asked by phone). False if it was
    already suppressed (the first reason recorded stays)."""
    email_hash, existing = suppression_of(session, raw_email)
    if existing is None:
        repository.suppress(session, email_hash, "manual", clean_name(note)[:500])
    return existing is None


def hash_of(raw_email: object) -> str | None:
    """The suppression hash of an address from outside (a provider's event), None if it is not
    one."""
    if not isinstance(raw_email, str) or len(raw_email) > 320:
        return None
    try:
        return address_hash(normalise(raw_email))
    except InvalidAddress:
        return None


def erased_among(session: Session, hashes: set[str]) -> set[str]:
    return repository.erased_among(session, hashes)


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
        "welcome_sent_at": (
            subscriber.welcome_sent_at.isoformat() if subscriber.welcome_sent_at else None
        ),
        "created_at": subscriber.created_at.isoformat(),
        "updated_at": subscriber.updated_at.isoformat(),
    }


def own_data(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """What the subscribers' tables hold about one person (their export adds the other
    owners': newsletter/people/export.py)."""
    data = to_json(subscriber)
    data["topics"] = repository.topics_of(session, subscriber.id)
    data["tags"] = repository.tags_of(session, subscriber.id)
    return data


# --- topics ---------------------------------------------------------------------------------

# A person picks among the site's categories (a handful); the bounds only keep a scripted
# request from writing a thousand rows.
MAX_TOPICS = 50
TOPIC_CHARS = 100


def topics_of(session: Session, subscriber_id: int) -> list[str]:
    """The topics they chose, by name; empty means every topic."""
    return repository.topics_of(session, subscriber_id)


def topics_by_subscriber(session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[str]]:
    return repository.topics_by_subscriber(session, subscriber_ids)


def tag_names_after(session: Session, after_id: int) -> list[str]:
    """The distinct tag names of the people created after `after_id` (an import's)."""
    return repository.tag_names_after(session, after_id)


def topics_from_tags(session: Session, topic_of_tag: dict[str, str], after_id: int) -> int:
    """The people created after `after_id` get, as topics, the categories their tags name
    (`topic_of_tag`: tag name -> category, as the door matched them); returns how many of
    them now have topics. Someone already on the list keeps the topics they chose."""
    return repository.topics_from_tags(session, topic_of_tag, after_id)


def any_topics(session: Session) -> bool:
    """Whether anyone chose topics (else every send is the whole issue, at no extra cost)."""
    return repository.any_topics(session)


def topic_masks(bits: dict[str, int]) -> Subquery:
    """For the ledger's snapshot: (subscriber_id, mask) of each one who chose topics, the sum
    of `bits` (a bit per this week's category) of the ones they chose; 0 when none is this
    week's. Whoever chose none has no row."""
    return repository.topic_masks(bits)


def set_topics(session: Session, subscriber_id: int, names: Sequence[str]) -> list[str]:
    """Replace their topics with `names`, as the door checked them against the published
    categories (`newsletter.matchups.service.categories_named`); an empty list means every
    topic again. Returns them as stored (sorted, each once)."""
    chosen = sorted(set(names))
    if len(chosen) > MAX_TOPICS:
        raise SubscriberError(f"{len(chosen)} topics; at most {MAX_TOPICS}")
    for name in chosen:
        if not name or len(name) > TOPIC_CHARS:
            raise SubscriberError(f"a topic name is 1 to {TOPIC_CHARS} characters: {name[:40]!r}")
    if repository.get(session, subscriber_id) is None:
        raise SubscriberError(f"no subscriber {subscriber_id} (erased?)")
    repository.set_topics(session, subscriber_id, chosen)
    return chosen


# --- asking the silent ones (newsletter/people/reengagement.py decides who) ----------------


@dataclass(frozen=True)
class StillReadingRequest:
    """A "still want this?" mail to send once the asking has committed."""

    subscriber_id: int
    email: str
    token: str  # a subscriber token: the mail's answer, preferences and unsubscribe links


def ask_still_reading(
    session: Session, subscriber_ids: list[int], now: datetime, not_asked_since: datetime
) -> list[StillReadingRequest]:
    """Record the question for each one still active and unpaused, not asked or answering
    since `not_asked_since` (the oldest of the silent issues)."""
    return [
        StillReadingRequest(subscriber_id, email, subscriber_token(public_id))
        for subscriber_id, email, public_id in repository.ask_still_reading(
            session, subscriber_ids, now, not_asked_since
        )
    ]


def still_reading(session: Session, subscriber_id: int) -> None:
    """They answered yes, or read again: not asked any more, unpaused if the silence paused them
    (a pause they chose themselves stays)."""
    repository.answered(session, [subscriber_id], utcnow())


def read_again(session: Session, subscriber_ids: list[int], now: datetime) -> None:
    """Reading since being asked is an answer."""
    repository.answered(session, subscriber_ids, now)


def unask(session: Session, subscriber_ids: list[int]) -> None:
    """The question could not be mailed: not asked after all (the next round asks)."""
    repository.unask(session, subscriber_ids)


def asked_before(session: Session, before: datetime) -> list[tuple[int, datetime]]:
    return repository.asked_before(session, before)


def pause_unanswered(session: Session, subscriber_ids: list[int], now: datetime) -> int:
    return repository.pause_unanswered(session, subscriber_ids, now)


def reengagement_counts(session: Session) -> dict[str, int]:
    """How many are asked and awaited, and how many the silence paused."""
    return repository.reengagement_counts(session)

"""The SQL that writes the list and the suppression list (one subscriber at a time, or a few);
the bulk import's is bulk.py's, the admin list's reads listing.py's."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

from newsletter.orm import upsert_insert, utcnow
from subscribers import search as search_index
from subscribers.addresses import scrub
from subscribers.models import (
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    SubscriberTopic,
    Suppression,
)

# Statuses that mean "this address left": never mailed, never reactivated by an import.
LEFT = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


def _not_suppressed() -> ColumnElement[bool]:
    return ~exists().where(Suppression.email_hash == Subscriber.email_hash)


def mailable_ids_select() -> Select[int]:
    """Ids of subscribers who may be mailed now: active, not paused, not suppressed.

    Sending snapshots an audience with INSERT ... SELECT from this, and filters each batch
    with it again so someone who left mid-send is skipped.
    """
    return select(Subscriber.id).where(mailable())


def mailable() -> ColumnElement[bool]:
    """The condition on a subscribers row that it may be mailed now (what
    `mailable_ids_select` selects), for a query that reads the rows anyway."""
    return and_(
        Subscriber.status == SubscriberStatus.ACTIVE,
        Subscriber.paused.is_(False),
        _not_suppressed(),
    )


def mailable_count(session: Session) -> int:
    """How many people a send started now would go to."""
    return session.scalar(select(func.count()).select_from(mailable_ids_select().subquery())) or 0


# --- single subscribers ---------------------------------------------------------------------


def get(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id, populate_existing=True)


def get_by_public_id(session: Session, public_id: str) -> Subscriber | None:
    return session.scalars(
        select(Subscriber).where(Subscriber.public_id == public_id)
    ).one_or_none()


def get_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.email == email)).one_or_none()


def add(session: Session, subscriber: Subscriber) -> Subscriber:
    session.add(subscriber)
    session.flush()
    return subscriber


def transition(
    session: Session,
    subscriber_id: int,
    *,
    to: SubscriberStatus,
    allowed_from: Iterable[SubscriberStatus],
    **values: Any,
) -> bool:
    """A guarded status change: True only for the caller whose UPDATE found the row in an
    allowed state, so two concurrent requests cannot both perform it."""
    stmt = (
        update(Subscriber)
        .where(Subscriber.id == subscriber_id, Subscriber.status.in_(list(allowed_from)))
        .values(status=to, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    changed: bool = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
    session.expire_all()
    return changed


def confirm(session: Session, subscriber_id: int, confirm_sent_at: datetime, **values: Any) -> bool:
    """Activate on a confirmation link, only if it answers the latest request."""
    stmt = (
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            Subscriber.confirm_sent_at == confirm_sent_at,
            Subscriber.status != SubscriberStatus.ACTIVE,
        )
        .values(status=SubscriberStatus.ACTIVE, confirm_sent_at=None, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    changed: bool = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
    session.expire_all()
    return changed


def claim_welcome(session: Session, subscriber_id: int, now: datetime) -> bool:
    """True for the one caller that may send this active subscriber's welcome mail."""
    stmt = (
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            Subscriber.status == SubscriberStatus.ACTIVE,
            Subscriber.welcome_sent_at.is_(None),
        )
        .values(welcome_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    claimed: bool = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
    return claimed


def release_welcome(session: Session, subscriber_id: int, claimed_at: datetime) -> None:
    """The transport refused the welcome mail: the record must not say it was sent."""
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id, Subscriber.welcome_sent_at == claimed_at)
        .values(welcome_sent_at=None)
        .execution_options(synchronize_session=False)
    )


def set_flags(session: Session, subscriber_id: int, **values: object) -> None:
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


# A pause or a resume chosen by someone (the person, an admin, the soft-bounce rule) settles
# the "still want this?" question: resuming answers it, and a chosen pause is no longer the
# silence's, so the answer button must not lift it.
_CHOSEN_PAUSE: dict[str, object] = {"reengage_paused_at": None}
_CHOSEN_RESUME: dict[str, object] = {"reengage_paused_at": None}


def _chosen(paused: bool) -> dict[str, object]:
    return dict(_CHOSEN_PAUSE) if paused else {**_CHOSEN_RESUME, "reengage_answered_at": utcnow()}


def set_paused(session: Session, subscriber_id: int, paused: bool) -> None:
    set_flags(session, subscriber_id, paused=paused, **_chosen(paused))


def set_paused_if_subscribed(session: Session, subscriber_id: int, paused: bool) -> bool:
    """Pause or resume someone still on the list (active or pending); True if they were.
    Someone who left has no mail to pause."""
    result = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            Subscriber.status.in_([SubscriberStatus.ACTIVE, SubscriberStatus.PENDING]),
            Subscriber.paused.is_not(paused),
        )
        .values(updated_at=utcnow(), paused=paused, **_chosen(paused))
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def delete_subscriber(session: Session, subscriber_id: int) -> None:
    # Deliveries and votes point here with ON DELETE SET NULL: they stay counted, anonymous.
    session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
    session.expire_all()


def compact_search_index(session: Session) -> None:
    """Drop deleted rows' trigrams from SQLite's search index now.

    FTS5 deletes by writing a tombstone beside the old entry; the address's trigrams stay in
    the older segment until the segments happen to merge. `optimize` merges them all into one,
    without the deleted rows (about 2 s at a million subscribers on a 2-core machine), so an
    erasure leaves nothing derived from the address behind. PostgreSQL's trigram index lives
    in the table's own index pages, not in a table.
    """
    if session.get_bind().dialect.name == "sqlite" and _fts_ready(session):
        fts = search_index.FTS_TABLE
        session.execute(text(f"INSERT INTO {fts}({fts}) VALUES ('optimize')"))


# --- suppression ----------------------------------------------------------------------------


def suppress(session: Session, email_hash: str, reason: str, detail: str = "") -> None:
    """Add the address to the suppression list; the first reason recorded stays."""
    stmt = upsert_insert(session, Suppression).values(
        email_hash=email_hash, reason=reason, detail=detail, created_at=utcnow()
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["email_hash"]))


def suppression_for(session: Session, email_hash: str) -> Suppression | None:
    return session.scalars(
        select(Suppression).where(Suppression.email_hash == email_hash)
    ).one_or_none()


def erased_among(session: Session, hashes: set[str]) -> set[str]:
    if not hashes:
        return set()
    return set(
        session.scalars(
            select(Suppression.email_hash).where(
                Suppression.email_hash.in_(sorted(hashes)), Suppression.erased_at.is_not(None)
            )
        )
    )


def lift_suppression(session: Session, email_hash: str) -> None:
    session.execute(delete(Suppression).where(Suppression.email_hash == email_hash))


def mark_erased(session: Session, email_hash: str, scrub_email: str) -> None:
    """The hash stays, marked erased, with the reason it already had (a bounce or complaint
    keeps the address unmailable); a bounce message naming the address (any case) does not."""
    suppress(session, email_hash, "erased")
    detail = session.scalar(select(Suppression.detail).where(Suppression.email_hash == email_hash))
    session.execute(
        update(Suppression)
        .where(Suppression.email_hash == email_hash)
        .values(erased_at=utcnow(), detail=scrub(detail or "", scrub_email))
    )


def rename(session: Session, subscriber_id: int, name: str) -> bool:
    changed = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(name=name, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.expire_all()
    return bool(changed)


def tags_of(session: Session, subscriber_id: int) -> list[str]:
    return list(
        session.scalars(
            select(SubscriberTag.name)
            .where(SubscriberTag.subscriber_id == subscriber_id)
            .order_by(SubscriberTag.name)
        )
    )


def topics_of(session: Session, subscriber_id: int) -> list[str]:
    return list(
        session.scalars(
            select(SubscriberTopic.name)
            .where(SubscriberTopic.subscriber_id == subscriber_id)
            .order_by(SubscriberTopic.name)
        )
    )


def topics_by_subscriber(session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each one's topics (only those who chose any), for a page of the list."""
    chosen: dict[int, list[str]] = {}
    if not subscriber_ids:
        return chosen
    rows = session.execute(
        select(SubscriberTopic.subscriber_id, SubscriberTopic.name)
        .where(SubscriberTopic.subscriber_id.in_(subscriber_ids))
        .order_by(SubscriberTopic.subscriber_id, SubscriberTopic.name)
    )
    for subscriber_id, name in rows:
        chosen.setdefault(subscriber_id, []).append(name)
    return chosen


def set_topics(session: Session, subscriber_id: int, names: Sequence[str]) -> None:
    """Replace the person's topics with `names` (already checked and de-duplicated)."""
    session.execute(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber_id))
    if names:
        session.execute(
            insert(SubscriberTopic),
            [{"subscriber_id": subscriber_id, "name": name} for name in names],
        )
    session.execute(
        update(Subscriber).where(Subscriber.id == subscriber_id).values(updated_at=utcnow())
    )


def tag_names_after(session: Session, after_id: int) -> list[str]:
    return list(
        session.scalars(
            select(SubscriberTag.name).where(SubscriberTag.subscriber_id > after_id).distinct()
        )
    )


def topics_from_tags(session: Session, topic_of_tag: dict[str, str], after_id: int) -> int:
    """Give the people created after `after_id` the topic each of their tags names; returns
    how many people got one."""
    for tag, topic in topic_of_tag.items():
        chosen = select(SubscriberTag.subscriber_id, literal(topic)).where(
            SubscriberTag.subscriber_id > after_id,
            SubscriberTag.name == tag,
            ~exists().where(
                SubscriberTopic.subscriber_id == SubscriberTag.subscriber_id,
                SubscriberTopic.name == topic,
            ),
        )
        session.execute(insert(SubscriberTopic).from_select(["subscriber_id", "name"], chosen))
    return int(
        session.scalar(
            select(func.count(func.distinct(SubscriberTopic.subscriber_id))).where(
                SubscriberTopic.subscriber_id > after_id
            )
        )
        or 0
    )


def any_topics(session: Session) -> bool:
    return (
        session.scalar(select(exists().where(SubscriberTopic.subscriber_id.is_not(None)))) or False
    )


def topic_masks(bits: dict[str, int]) -> Subquery:
    """(subscriber_id, mask) of everyone who chose a topic: the sum of `bits` of the topics
    they chose (0 when none of them is among `bits`). One grouped pass over the topics'
    primary key; someone who chose none has no row (everything)."""
    bit = case(
        *(
            (SubscriberTopic.name == name, literal(value, BigInteger()))
            for name, value in bits.items()
        ),
        else_=literal(0, BigInteger()),
    )
    return (
        select(
            SubscriberTopic.subscriber_id.label("subscriber_id"),
            cast(func.sum(bit), BigInteger()).label("mask"),
        )
        .group_by(SubscriberTopic.subscriber_id)
        .subquery("topic_masks")
    )


_fts_present: dict[str, bool] = {}


def _fts_ready(session: Session) -> bool:
    """True if this SQLite database has the trigram table (a SQLite older than 3.34 has not)."""
    bind = session.get_bind()
    key = str(bind.engine.url)
    if key not in _fts_present:
        found = session.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": search_index.FTS_TABLE},
        ).first()
        _fts_present[key] = found is not None
    return _fts_present[key]


# --- soft bounces in a row ------------------------------------------------------------------


def count_soft_bounce(session: Session, subscriber_id: int, issue_id: int) -> int:
    """One more issue in a row whose mail soft-bounced (a second bounce of the same issue, or
    a late one of an earlier issue, does not count again); returns the count now (0: no such
    subscriber)."""
    stmt = (
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(
            # Issue ids grow with time: a late event of an issue counted already (or of an
            # earlier one) counts nothing.
            soft_bounces=case(
                (Subscriber.soft_bounce_issue_id >= issue_id, Subscriber.soft_bounces),
                else_=Subscriber.soft_bounces + 1,
            ),
            soft_bounce_issue_id=func.coalesce(
                case(
                    (Subscriber.soft_bounce_issue_id >= issue_id, Subscriber.soft_bounce_issue_id),
                    else_=issue_id,
                ),
                issue_id,
            ),
        )
        .returning(Subscriber.soft_bounces)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).scalar() or 0)


def reset_soft_bounces(session: Session, subscriber_ids: Sequence[int]) -> None:
    """Mail reached them: the next soft bounce starts a new count."""
    if subscriber_ids:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(sorted(set(subscriber_ids))), Subscriber.soft_bounces > 0)
            .values(soft_bounces=0, soft_bounce_issue_id=None)
            .execution_options(synchronize_session=False)
        )


# --- asking the silent ones -----------------------------------------------------------------


def _awaiting() -> ColumnElement[bool]:
    """Asked, and not answered since."""
    return and_(
        Subscriber.reengage_asked_at.is_not(None),
        or_(
            Subscriber.reengage_answered_at.is_(None),
            Subscriber.reengage_answered_at < Subscriber.reengage_asked_at,
        ),
    )


def ask_still_reading(
    session: Session, subscriber_ids: Sequence[int], now: datetime, not_asked_since: datetime
) -> list[tuple[int, str, str]]:
    """Mark the asking of those still active and not paused who were not asked since
    `not_asked_since` (the oldest of the silent issues: they were not asked about these);
    returns (id, email, public id) of each one marked."""
    if not subscriber_ids:
        return []
    stmt = (
        update(Subscriber)
        .where(
            Subscriber.id.in_(sorted(set(subscriber_ids))),
            Subscriber.status == SubscriberStatus.ACTIVE,
            Subscriber.paused.is_(False),
            or_(
                Subscriber.reengage_asked_at.is_(None),
                Subscriber.reengage_asked_at < not_asked_since,
            ),
            or_(
                Subscriber.reengage_answered_at.is_(None),
                Subscriber.reengage_answered_at < not_asked_since,
            ),
        )
        .values(reengage_asked_at=now)
        .returning(Subscriber.id, Subscriber.email, Subscriber.public_id)
        .execution_options(synchronize_session=False)
    )
    return [(row[0], row[1], row[2]) for row in session.execute(stmt)]


def answered(session: Session, subscriber_ids: Sequence[int], now: datetime) -> None:
    """They said yes or read again: not awaited any more, and unpaused if the silence paused
    them (a pause they chose stays: it carries no reengage_paused_at)."""
    if not subscriber_ids:
        return
    ids = sorted(set(subscriber_ids))
    session.execute(
        update(Subscriber)
        .where(
            Subscriber.id.in_(ids),
            Subscriber.reengage_paused_at.is_not(None),
            Subscriber.status == SubscriberStatus.ACTIVE,
        )
        .values(paused=False, reengage_paused_at=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Subscriber)
        .where(Subscriber.id.in_(ids), Subscriber.status == SubscriberStatus.ACTIVE)
        .values(reengage_answered_at=now)
        .execution_options(synchronize_session=False)
    )


def unask(session: Session, subscriber_ids: Sequence[int]) -> None:
    """The question could not be mailed: they were not asked after all."""
    if subscriber_ids:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(sorted(set(subscriber_ids))))
            .values(reengage_asked_at=None)
            .execution_options(synchronize_session=False)
        )


def asked_before(session: Session, before: datetime) -> list[tuple[int, datetime]]:
    """(id, asked at) of those asked before `before`, awaited, and not paused yet."""
    rows = session.execute(
        select(Subscriber.id, Subscriber.reengage_asked_at).where(
            Subscriber.reengage_asked_at < before,
            _awaiting(),
            Subscriber.reengage_paused_at.is_(None),
            Subscriber.status == SubscriberStatus.ACTIVE,
            Subscriber.paused.is_(False),
        )
    )
    return [(row[0], row[1]) for row in rows if row[1] is not None]


def pause_unanswered(session: Session, subscriber_ids: Sequence[int], now: datetime) -> int:
    if not subscriber_ids:
        return 0
    result = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id.in_(sorted(set(subscriber_ids))),
            _awaiting(),
            Subscriber.paused.is_(False),
        )
        .values(paused=True, reengage_paused_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def reengagement_counts(session: Session) -> dict[str, int]:
    asked = session.scalar(
        select(func.count()).where(_awaiting(), Subscriber.reengage_paused_at.is_(None))
    )
    paused = session.scalar(select(func.count()).where(Subscriber.reengage_paused_at.is_not(None)))
    return {"asked_awaiting_answer": int(asked or 0), "paused_for_no_answer": int(paused or 0)}

"""The delivery ledger's rows (deliveries, send_batches): reading them, and the audience
snapshot that creates them. Claiming and settling batches is claims.py's (the worker's whole
view of the ledger); recovering from crashes and operators' actions are recovery.py's.

Every state change is a conditional UPDATE (`... WHERE status = <expected>`): two workers, a
crashed worker's sweeper and an operator can race on the same rows and the database decides.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    case,
    delete,
    func,
    insert,
    literal,
    outerjoin,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

from newsletter.orm import UTCDateTime
from newsletter.sending.models import BatchStatus, Delivery, DeliveryStatus, SendBatch
from subscribers.models import Subscriber
from subscribers.service import mailable, mailable_ids_select

OPEN_STATES = (DeliveryStatus.QUEUED, DeliveryStatus.IN_FLIGHT)


# --- reading the ledger ---------------------------------------------------------------------


def status_counts(session: Session, issue_id: int) -> dict[str, int]:
    """recipients, and how many deliveries are in each state (every state present, maybe 0)."""
    counts = {status.value: 0 for status in DeliveryStatus}
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    )
    for status, count in rows:
        counts[DeliveryStatus(status).value] = int(count)
    if counts[DeliveryStatus.QUEUED.value]:
        # A batch's deliveries stay queued while it is in flight (its claim is one row):
        # those are in flight, found through the few batches in flight and their index.
        flying = int(
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .join(SendBatch, SendBatch.id == Delivery.batch_id)
                .where(
                    SendBatch.issue_id == issue_id,
                    SendBatch.status == BatchStatus.IN_FLIGHT,
                    Delivery.status == DeliveryStatus.QUEUED,
                )
            )
            or 0
        )
        counts[DeliveryStatus.QUEUED.value] -= flying
        counts[DeliveryStatus.IN_FLIGHT.value] += flying
    counts["recipients"] = sum(counts.values())
    return counts


def sent_by_variant(session: Session, issue_id: int) -> dict[int, int]:
    """How many deliveries of each variant were sent (readers who chose topics; the whole
    issue's readers have no variant and are not here)."""
    rows = session.execute(
        select(Delivery.variant, func.count())
        .where(
            Delivery.issue_id == issue_id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.variant.is_not(None),
        )
        .group_by(Delivery.variant)
    )
    return {int(mask): int(n) for mask, n in rows if mask is not None}


def skipped_reasons(session: Session, issue_id: int) -> list[tuple[str, int]]:
    """Why deliveries of the issue were skipped, most frequent first: (reason, how many)."""
    rows = session.execute(
        select(Delivery.error, func.count())
        .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.SKIPPED)
        .group_by(Delivery.error)
        .order_by(func.count().desc(), Delivery.error)
    )
    return [(str(error or "no reason recorded"), int(count)) for error, count in rows]


def backdate_deliveries(session: Session, issue_id: int, by: timedelta) -> None:
    rows = session.execute(
        select(Delivery.id, Delivery.sent_at).where(
            Delivery.issue_id == issue_id, Delivery.sent_at.is_not(None)
        )
    )
    for delivery_id, sent_at in rows:
        assert sent_at is not None
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(sent_at=sent_at - by)
            .execution_options(synchronize_session=False)
        )


def settled_counts(session: Session, issue_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.settled_by, func.count())
        .where(Delivery.issue_id == issue_id, Delivery.settled_by.is_not(None))
        .group_by(Delivery.settled_by)
        .order_by(Delivery.settled_by)
    )
    return {str(by): int(count) for by, count in rows}


def get_delivery(session: Session, delivery_id: int) -> Delivery | None:
    return session.get(Delivery, delivery_id)


def list_deliveries(
    session: Session,
    issue_id: int,
    *,
    status: DeliveryStatus | None = None,
    limit: int = 100,
) -> list[tuple[Delivery, str | None]]:
    """Deliveries with the subscriber's address (None once erased), oldest first."""
    query = (
        select(Delivery, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(Delivery.status == status)
    return [(delivery, email) for delivery, email in session.execute(query)]


def last_batch_error(session: Session, issue_id: int) -> str | None:
    return session.scalar(
        select(SendBatch.error)
        .where(SendBatch.issue_id == issue_id, SendBatch.error.is_not(None))
        .order_by(SendBatch.claimed_at.desc().nulls_last(), SendBatch.id.desc())
        .limit(1)
    )


# --- the issue's send state (issues.status is written by newsletter.issues.service.move) ----


def no_delivery_open(issue_id: int) -> ColumnElement[bool]:
    """True while none of the issue's deliveries is queued or in flight: what "sent" waits for
    (issues' own transition checks it in the same UPDATE, so no race can slip between)."""
    return ~(
        select(Delivery.id)
        .where(Delivery.issue_id == issue_id, Delivery.status.in_(OPEN_STATES))
        .exists()
    )


# --- the audience snapshot ------------------------------------------------------------------


# pg_advisory_xact_lock's key for "the audience a snapshot reads": "nl-audi" as a number.
_AUDIENCE_LOCK = int.from_bytes(b"nl-audi", "big")


def lock_audience(session: Session, *, shared: bool) -> None:
    """Until the transaction ends: a snapshot holds the audience alone (`shared=False`), an
    erasure shares it with other erasures. What the foreign key's row lock did, once per
    transaction instead of once per delivery. Nothing to do on SQLite, whose writers queue."""
    if session.get_bind().dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    session.execute(text(f"SELECT {function}(:key)"), {"key": _AUDIENCE_LOCK})


def snapshot_audience(
    session: Session,
    issue_id: int,
    now: datetime,
    batch_size: int,
    *,
    variants: Subquery | None = None,
    within: Select[Any] | None = None,
    subject: ColumnElement[int] | None = None,
    fresh: bool = False,
) -> int:
    """One queued delivery per mailable subscriber, already cut into batches of `batch_size`.

    `within`: a SELECT of the subscriber ids the audience is limited to (a segment's members,
    newsletter/audience); None, everyone mailable.

    `variants`: (subscriber_id, mask) of those who chose topics, the variant they get (the
    topics they chose among this week's categories; no row: the whole issue), written on each
    delivery; the audience is numbered by it, so a batch holds few variants and its requests
    stay full. Joined once (an aggregate over the topics' primary key), not a subquery per
    subscriber, which SQLite would evaluate for the column, the window and the order alike.

    The batches are created first (one multi-row INSERT), then the deliveries in one
    INSERT ... SELECT that numbers the audience and writes each row's batch id as it goes:
    no second pass over the rows to batch them. Returns how many deliveries were made.

    `subject`: the subject test's number each row gets (an expression of Subscriber.id:
    newsletter/audience/subject_tests.py); `fresh`: only those the issue has no delivery for
    yet (a subject test's winner, sent to everyone else).
    """
    # No erasure runs between the audience read and the commit (PostgreSQL; SQLite has one
    # writer): deliveries have no foreign key that would have made it wait.
    lock_audience(session, shared=False)
    counted = mailable_ids_select()
    if within is not None:
        counted = counted.where(Subscriber.id.in_(within))
    unsent = ~(
        select(Delivery.id)
        .where(Delivery.issue_id == issue_id, Delivery.subscriber_id == Subscriber.id)
        .exists()
    )
    if fresh:
        counted = counted.where(unsent)
    expected = int(session.scalar(select(func.count()).select_from(counted.subquery())) or 0)
    batch_ids = _new_batches(session, issue_id, -(-expected // batch_size), now)
    # Ids made by one statement are consecutive on SQLite (one writer); on PostgreSQL another
    # session's INSERT may interleave with ours, and then the rows are batched afterwards.
    consecutive = bool(batch_ids) and batch_ids[-1] - batch_ids[0] == len(batch_ids) - 1
    if batch_ids and not consecutive:
        session.execute(delete(SendBatch).where(SendBatch.id.in_(batch_ids)))
    at = literal(now, UTCDateTime())
    # Tracking opt-outs get another render, hence another request: numbering them after
    # everyone else keeps each batch to one render, so requests stay full.
    order: list[ColumnElement[Any]] = [
        Subscriber.tracking_opt_out.expression,
        Subscriber.id.expression,
    ]
    variant: ColumnElement[int | None] | None = None
    if variants is not None:
        variant = variants.c.mask
        order.insert(0, variant)
    position = func.row_number().over(order_by=order) - 1
    batch_id: ColumnElement[int | None] = literal(None, Integer())
    if consecutive:
        # On PostgreSQL the list may have grown since the count (READ COMMITTED): rows past
        # the planned batches are left unbatched here and batched below.
        batch_id = case(
            (position < len(batch_ids) * batch_size, batch_ids[0] + position // batch_size),
            else_=None,
        )
    audience = select(
        literal(issue_id),
        Subscriber.id,
        batch_id,
        literal(DeliveryStatus.QUEUED.value),
        literal(0),
        at,
        at,
        *(() if variant is None else (variant,)),
        *(() if subject is None else (subject,)),
    )
    if variants is not None:
        audience = audience.select_from(
            outerjoin(Subscriber, variants, variants.c.subscriber_id == Subscriber.id)
        )
    # The rule as a condition on the rows read: no second pass over the table to match ids.
    audience = audience.where(mailable())
    if within is not None:
        audience = audience.where(Subscriber.id.in_(within))
    if fresh:
        audience = audience.where(unsent)
    audience = audience.order_by(*order)
    made = int(
        session.execute(
            insert(Delivery)
            .from_select(
                [
                    "issue_id",
                    "subscriber_id",
                    "batch_id",
                    "status",
                    "attempts",
                    "created_at",
                    "updated_at",
                    *(() if variant is None else ("variant",)),
                    *(() if subject is None else ("subject",)),
                ],
                audience,
            )
            # An INSERT's rowcount is -1 through SQLAlchemy on psycopg unless asked to keep it:
            # without it, rows past the planned batches (people who joined since the count)
            # were never batched on PostgreSQL.
            .execution_options(preserve_rowcount=True)
        ).rowcount  # type: ignore[attr-defined]
    )
    if not consecutive or made > len(batch_ids) * batch_size:
        plan_batches(session, issue_id, batch_size, now)
    if consecutive and made < len(batch_ids) * batch_size:
        # Fewer than counted (someone left in between): no batch is left empty.
        session.execute(
            delete(SendBatch).where(
                SendBatch.id.in_(batch_ids[-(-made // batch_size) :]),
                ~select(Delivery.id).where(Delivery.batch_id == SendBatch.id).exists(),
            )
        )
    return made


def subject_counts(
    session: Session, issue_id: int, *, split_at: datetime | None = None
) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, int]]]:
    """Per subject of the issue's test, its deliveries by state: (all of them, those made
    before `split_at`: the test's share, not the winner's send to the rest). One pass; with no
    `split_at` the two are the same."""
    before = (
        func.sum(case((Delivery.created_at < split_at, 1), else_=0))
        if split_at is not None
        else func.count()
    )
    query = (
        select(Delivery.subject, Delivery.status, func.count(), before)
        .where(Delivery.issue_id == issue_id, Delivery.subject.is_not(None))
        .group_by(Delivery.subject, Delivery.status)
    )
    every: dict[int, dict[str, int]] = {}
    share: dict[int, dict[str, int]] = {}
    for number, status, count, made_before in session.execute(query):
        if number is None:  # not selected (the WHERE): for the type checker
            continue
        state = DeliveryStatus(status).value
        every.setdefault(int(number), {})[state] = int(count)
        if made_before:
            share.setdefault(int(number), {})[state] = int(made_before)
    return every, share


def variants_in(session: Session, issue_id: int) -> list[int]:
    """The variants the issue's deliveries name (not the whole issue's NULL)."""
    return list(
        session.scalars(
            select(Delivery.variant)
            .where(Delivery.issue_id == issue_id, Delivery.variant.is_not(None))
            .distinct()
            .order_by(Delivery.variant)
        )
    )


def variant_counts(session: Session, issue_id: int) -> dict[int | None, int]:
    """Deliveries per variant (None: the whole issue)."""
    rows = session.execute(
        select(Delivery.variant, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.variant)
    )
    return {variant: int(count) for variant, count in rows}


def rename_variant(session: Session, issue_id: int, old: int, new: int | None) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.variant == old)
        .values(variant=new)
        .execution_options(synchronize_session=False)
    )


def skip_variant(session: Session, issue_id: int, mask: int, reason: str, now: datetime) -> int:
    """The queued deliveries of a variant nobody should get (nothing in their topics) ->
    skipped, with the reason, and out of their batches; a batch left empty goes."""
    skipped = int(
        session.execute(
            update(Delivery)
            .where(
                Delivery.issue_id == issue_id,
                Delivery.variant == mask,
                Delivery.status == DeliveryStatus.QUEUED,
            )
            .values(status=DeliveryStatus.SKIPPED, error=reason, batch_id=None, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    )
    session.execute(
        delete(SendBatch).where(
            SendBatch.issue_id == issue_id,
            SendBatch.status == BatchStatus.PENDING,
            ~select(Delivery.id).where(Delivery.batch_id == SendBatch.id).exists(),
        )
    )
    return skipped


def _new_batches(session: Session, issue_id: int, count: int, now: datetime) -> list[int]:
    if count == 0:
        return []
    rows = [
        {"issue_id": issue_id, "status": BatchStatus.PENDING, "attempts": 0, "created_at": now}
    ] * count
    return list(
        session.scalars(
            insert(SendBatch).returning(SendBatch.id, sort_by_parameter_order=True), rows
        )
    )


def plan_batches(
    session: Session,
    issue_id: int,
    size: int,
    now: datetime,
    *,
    status: DeliveryStatus = DeliveryStatus.QUEUED,
) -> int:
    """Cut the issue's unbatched deliveries in `status` into pending batches of `size`, by id.

    Only the first id of each batch is read (a window function), so planning a million
    deliveries holds a thousand ids, not a million.
    """
    numbered = (
        select(
            Delivery.id.label("id"),
            func.row_number().over(order_by=Delivery.id).label("rn"),
        )
        .where(
            Delivery.issue_id == issue_id, Delivery.status == status, Delivery.batch_id.is_(None)
        )
        .subquery()
    )
    firsts = list(
        session.scalars(
            select(numbered.c.id).where((numbered.c.rn - 1) % size == 0).order_by(numbered.c.id)
        )
    )
    for index, first in enumerate(firsts):
        batch_id = session.scalar(
            insert(SendBatch)
            .values(issue_id=issue_id, status=BatchStatus.PENDING, attempts=0, created_at=now)
            .returning(SendBatch.id)
        )
        in_range = [Delivery.id >= first]
        if index + 1 < len(firsts):
            in_range.append(Delivery.id < firsts[index + 1])
        session.execute(
            update(Delivery)
            .where(
                Delivery.issue_id == issue_id,
                Delivery.status == status,
                Delivery.batch_id.is_(None),
                *in_range,
            )
            .values(batch_id=batch_id, status=DeliveryStatus.QUEUED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(firsts)

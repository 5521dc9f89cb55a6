"""All SQL about the delivery ledger (deliveries, send_batches) and an issue's send state.

Every state change is a conditional UPDATE (`... WHERE status = <expected>`): two workers, a
crashed worker's sweeper and an operator can race on the same rows and the database decides.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    Update,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueStatus
from newsletter.orm import UTCDateTime
from newsletter.sending.models import BatchStatus, Delivery, DeliveryStatus, SendBatch
from subscribers.models import Subscriber
from subscribers.service import mailable_ids_select

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
    counts["recipients"] = sum(counts.values())
    return counts


def skipped_reasons(session: Session, issue_id: int) -> list[tuple[str, int]]:
    """Why deliveries of the issue were skipped, most frequent first: (reason, how many)."""
    rows = session.execute(
        select(Delivery.error, func.count())
        .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.SKIPPED)
        .group_by(Delivery.error)
        .order_by(func.count().desc(), Delivery.error)
    )
    return [(str(error or "no reason recorded"), int(count)) for error, count in rows]


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


def snapshot_audience(session: Session, issue_id: int, now: datetime, batch_size: int) -> int:
    """One queued delivery per mailable subscriber, already cut into batches of `batch_size`.

    The batches are created first (one multi-row INSERT), then the deliveries in one
    INSERT ... SELECT that numbers the audience and writes each row's batch id as it goes:
    no second pass over the rows to batch them. Returns how many deliveries were made.
    """
    expected = int(
        session.scalar(select(func.count()).select_from(mailable_ids_select().subquery())) or 0
    )
    batch_ids = _new_batches(session, issue_id, -(-expected // batch_size), now)
    # Ids made by one statement are consecutive on SQLite (one writer); on PostgreSQL another
    # session's INSERT may interleave with ours, and then the rows are batched afterwards.
    consecutive = bool(batch_ids) and batch_ids[-1] - batch_ids[0] == len(batch_ids) - 1
    if batch_ids and not consecutive:
        session.execute(delete(SendBatch).where(SendBatch.id.in_(batch_ids)))
    at = literal(now, UTCDateTime())
    # Tracking opt-outs get another render, hence another request: numbering them after
    # everyone else keeps each batch to one render, so requests stay full.
    order = (Subscriber.tracking_opt_out, Subscriber.id)
    position = func.row_number().over(order_by=order) - 1
    batch_id: ColumnElement[int | None] = literal(None, Integer())
    if consecutive:
        # On PostgreSQL the list may have grown since the count (READ COMMITTED): rows past
        # the planned batches are left unbatched here and batched below.
        batch_id = case(
            (position < len(batch_ids) * batch_size, batch_ids[0] + position // batch_size),
            else_=None,
        )
    audience = (
        select(
            literal(issue_id),
            Subscriber.id,
            batch_id,
            literal(DeliveryStatus.QUEUED.value),
            literal(0),
            at,
            at,
        )
        .where(Subscriber.id.in_(mailable_ids_select()))
        .order_by(*order)
    )
    made = int(
        session.execute(
            insert(Delivery).from_select(
                [
                    "issue_id",
                    "subscriber_id",
                    "batch_id",
                    "status",
                    "attempts",
                    "created_at",
                    "updated_at",
                ],
                audience,
            )
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


# --- claiming and settling batches ----------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    batch_id: int
    attempts: int
    first_attempt_at: datetime


class BatchRecipient(NamedTuple):
    delivery_id: int
    email: str
    name: str
    tracking_opt_out: bool
    public_id: str


# The statements a worker runs for every batch are built once, with bound parameters, and run
# as Core on the session's connection: building and ORM-dispatching them anew each time cost
# more than SQLite's work for some of them.
_DELIVERIES = cast(Table, Delivery.__table__)
_BATCHES = cast(Table, SendBatch.__table__)


@functools.lru_cache(maxsize=16)
def _claim_statement(statuses: tuple[str, ...], skip_locked: bool) -> Update:
    due = or_(
        _BATCHES.c.next_attempt_at.is_(None), _BATCHES.c.next_attempt_at <= bindparam("b_now")
    )
    # The issue's state is read in the same statement: a pause or a cancel committed before
    # the claim stops every worker at its next batch, with no window between check and claim.
    sending = select(Issue.id).where(
        Issue.id == bindparam("b_issue_id"), Issue.status.in_(statuses)
    )
    candidate = (
        select(_BATCHES.c.id)
        .where(
            _BATCHES.c.issue_id == bindparam("b_issue_id"),
            _BATCHES.c.status == BatchStatus.PENDING,
            due,
            sending.exists(),
        )
        .order_by(_BATCHES.c.id)
        .limit(1)
    )
    if skip_locked:
        candidate = candidate.with_for_update(skip_locked=True)
    return (
        update(_BATCHES)
        .where(
            _BATCHES.c.id == candidate.scalar_subquery(),
            _BATCHES.c.status == BatchStatus.PENDING,
        )
        .values(
            status=BatchStatus.IN_FLIGHT,
            claimed_by=bindparam("b_worker_id"),
            claimed_at=bindparam("b_now"),
            attempts=_BATCHES.c.attempts + 1,
            first_attempt_at=func.coalesce(
                _BATCHES.c.first_attempt_at, bindparam("b_now", type_=UTCDateTime())
            ),
        )
        .returning(_BATCHES.c.id, _BATCHES.c.attempts, _BATCHES.c.first_attempt_at)
    )


def claim_batch(
    session: Session,
    issue_id: int,
    worker_id: str,
    now: datetime,
    *,
    issue_statuses: Sequence[IssueStatus] = (IssueStatus.SENDING,),
) -> Claim | None:
    """Take the next due pending batch of the issue, or None.

    One UPDATE whose subquery picks the row: on PostgreSQL `FOR UPDATE SKIP LOCKED` lets
    workers on several machines take different batches without waiting on each other; on
    SQLite the statement takes the single write lock first, so the second worker sees the
    first one's claim.
    """
    statement = _claim_statement(
        tuple(IssueStatus(s).value for s in issue_statuses),
        session.get_bind().dialect.name == "postgresql",
    )
    row = (
        session.connection()
        .execute(statement, {"b_issue_id": issue_id, "b_worker_id": worker_id, "b_now": now})
        .one_or_none()
    )
    if row is None:
        return None
    return Claim(batch_id=row[0], attempts=row[1], first_attempt_at=row[2] or now)


@functools.lru_cache(maxsize=1)
def _skip_unmailable_statement() -> Update:
    # Correlated per delivery (an anti-join on the primary key), so the check costs the
    # batch's size, not the size of the whole list.
    still_mailable = (
        mailable_ids_select().where(Subscriber.id == _DELIVERIES.c.subscriber_id).exists()
    )
    return (
        update(_DELIVERIES)
        .where(
            _DELIVERIES.c.batch_id == bindparam("b_batch_id"),
            _DELIVERIES.c.status == DeliveryStatus.QUEUED,
            ~still_mailable,
        )
        .values(
            status=DeliveryStatus.SKIPPED,
            error=bindparam("b_reason"),
            updated_at=bindparam("b_now"),
        )
    )


def skip_unmailable(session: Session, batch_id: int, reason: str, now: datetime) -> int:
    """Queued deliveries of the batch whose subscriber may no longer be mailed -> skipped."""
    result = session.connection().execute(
        _skip_unmailable_statement(), {"b_batch_id": batch_id, "b_reason": reason, "b_now": now}
    )
    return int(result.rowcount)


_PUT_IN_FLIGHT = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.batch_id == bindparam("b_batch_id"),
        _DELIVERIES.c.status == DeliveryStatus.QUEUED,
    )
    .values(
        status=DeliveryStatus.IN_FLIGHT,
        attempts=_DELIVERIES.c.attempts + 1,
        updated_at=bindparam("b_now"),
    )
)


@functools.lru_cache(maxsize=1)
def _recipients_statement() -> Select[int, str, str | None, bool, str]:
    subscribers = cast(Table, Subscriber.__table__)
    return (
        select(
            _DELIVERIES.c.id,
            subscribers.c.email,
            subscribers.c.name,
            subscribers.c.tracking_opt_out,
            subscribers.c.public_id,
        )
        .join(subscribers, subscribers.c.id == _DELIVERIES.c.subscriber_id)
        .where(
            _DELIVERIES.c.batch_id == bindparam("b_batch_id"),
            _DELIVERIES.c.status == DeliveryStatus.IN_FLIGHT,
        )
        .order_by(_DELIVERIES.c.id)
    )


def put_in_flight(session: Session, batch_id: int, now: datetime) -> list[BatchRecipient]:
    """Queued deliveries of the batch -> in flight; who they are, to build the request."""
    connection = session.connection()
    connection.execute(_PUT_IN_FLIGHT, {"b_batch_id": batch_id, "b_now": now})
    rows = connection.execute(_recipients_statement(), {"b_batch_id": batch_id})
    return [
        BatchRecipient(delivery_id, email, name or "", bool(opt_out), public_id)
        for delivery_id, email, name, opt_out, public_id in rows
    ]


_SETTLE_BATCH_SENT = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.batch_id == bindparam("b_batch_id"),
        _DELIVERIES.c.status == DeliveryStatus.IN_FLIGHT,
    )
    .values(
        status=DeliveryStatus.SENT,
        message_id=bindparam("b_message_id"),
        sent_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
    )
)


def _in_flight(batch_id: int, delivery_ids: Sequence[int] | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Delivery.batch_id == batch_id,
        Delivery.status == DeliveryStatus.IN_FLIGHT,
    ]
    if delivery_ids is not None:
        conditions.append(Delivery.id.in_(delivery_ids))
    return conditions


def mark_sent(
    session: Session,
    batch_id: int,
    delivery_ids: Sequence[int] | None,
    message_id: str | None,
    now: datetime,
) -> int:
    if delivery_ids is None:
        whole = session.connection().execute(
            _SETTLE_BATCH_SENT, {"b_batch_id": batch_id, "b_message_id": message_id, "b_now": now}
        )
        return int(whole.rowcount)
    result = session.execute(
        update(Delivery)
        .where(*_in_flight(batch_id, delivery_ids))
        .values(status=DeliveryStatus.SENT, message_id=message_id, sent_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def mark_sent_each(
    session: Session, batch_id: int, message_ids: dict[int, str], now: datetime
) -> None:
    """Transports that name every message (the outbox) record each message id."""
    if not message_ids:
        return
    session.connection().execute(
        update(Delivery.__table__)  # type: ignore[arg-type]
        .where(
            Delivery.__table__.c.id == bindparam("delivery_id"),
            Delivery.__table__.c.batch_id == batch_id,
            Delivery.__table__.c.status == DeliveryStatus.IN_FLIGHT.value,
        )
        .values(
            status=DeliveryStatus.SENT.value,
            message_id=bindparam("mid"),
            sent_at=now,
            updated_at=now,
        ),
        [{"delivery_id": d, "mid": m} for d, m in message_ids.items()],
    )


def mark_failed(
    session: Session,
    batch_id: int,
    delivery_ids: Sequence[int] | None,
    error: str,
    now: datetime,
) -> int:
    return _settle_in_flight(session, batch_id, delivery_ids, DeliveryStatus.FAILED, error, now)


def mark_uncertain(
    session: Session,
    batch_id: int,
    delivery_ids: Sequence[int] | None,
    error: str,
    now: datetime,
) -> int:
    return _settle_in_flight(session, batch_id, delivery_ids, DeliveryStatus.UNCERTAIN, error, now)


def _settle_in_flight(
    session: Session,
    batch_id: int,
    delivery_ids: Sequence[int] | None,
    status: DeliveryStatus,
    error: str,
    now: datetime,
) -> int:
    # Only deliveries still in flight in this batch move: the WHERE is the state machine.
    result = session.execute(
        update(Delivery)
        .where(*_in_flight(batch_id, delivery_ids))
        .values(status=status, error=error, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def touch_batch(session: Session, batch_id: int, worker_id: str, now: datetime) -> bool:
    """A heartbeat between the requests of one batch; False if someone took the batch away."""
    result = session.execute(
        update(SendBatch)
        .where(
            SendBatch.id == batch_id,
            SendBatch.status == BatchStatus.IN_FLIGHT,
            SendBatch.claimed_by == worker_id,
        )
        .values(claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


_FINISH_BATCH = (
    update(_BATCHES)
    .where(_BATCHES.c.id == bindparam("b_batch_id"), _BATCHES.c.status == BatchStatus.IN_FLIGHT)
    .values(status=BatchStatus.DONE, finished_at=bindparam("b_now"), error=bindparam("b_error"))
)


def finish_batch(session: Session, batch_id: int, now: datetime, error: str | None = None) -> bool:
    result = session.connection().execute(
        _FINISH_BATCH, {"b_batch_id": batch_id, "b_now": now, "b_error": error}
    )
    return bool(result.rowcount)


def release_batch(
    session: Session, batch_id: int, *, retry_at: datetime | None, error: str, now: datetime
) -> bool:
    """Nothing was accepted: the batch goes back to pending (due at `retry_at`), untouched."""
    result = session.execute(
        update(SendBatch)
        .where(SendBatch.id == batch_id, SendBatch.status == BatchStatus.IN_FLIGHT)
        .values(status=BatchStatus.PENDING, next_attempt_at=retry_at, error=error)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.batch_id == batch_id, Delivery.status == DeliveryStatus.IN_FLIGHT)
        .values(status=DeliveryStatus.QUEUED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- crashed workers ------------------------------------------------------------------------


@dataclass(frozen=True)
class InFlightBatch:
    batch_id: int
    issue_id: int
    claimed_by: str | None
    claimed_at: datetime | None


def in_flight_batches(session: Session, issue_id: int | None = None) -> list[InFlightBatch]:
    query = select(
        SendBatch.id, SendBatch.issue_id, SendBatch.claimed_by, SendBatch.claimed_at
    ).where(SendBatch.status == BatchStatus.IN_FLIGHT)
    if issue_id is not None:
        query = query.where(SendBatch.issue_id == issue_id)
    return [InFlightBatch(*row) for row in session.execute(query.order_by(SendBatch.id))]


def abandon_batch(session: Session, batch_id: int, reason: str, now: datetime) -> int:
    """A batch whose worker died mid-flight: its open deliveries become uncertain, never resent.

    Returns how many deliveries were flagged (0 if the batch was settled meanwhile).
    """
    finished = session.execute(
        update(SendBatch)
        .where(SendBatch.id == batch_id, SendBatch.status == BatchStatus.IN_FLIGHT)
        .values(status=BatchStatus.DONE, finished_at=now, error=reason)
        .execution_options(synchronize_session=False)
    )
    if not finished.rowcount:  # type: ignore[attr-defined]
        return 0
    result = session.execute(
        update(Delivery)
        .where(Delivery.batch_id == batch_id, Delivery.status.in_(OPEN_STATES))
        .values(status=DeliveryStatus.UNCERTAIN, error=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def batch_progress(session: Session, issue_id: int) -> tuple[int, int, datetime | None]:
    """(pending batches, batches in flight, earliest time a pending batch is due)."""
    row = session.execute(
        select(
            func.count().filter(SendBatch.status == BatchStatus.PENDING),
            func.count().filter(SendBatch.status == BatchStatus.IN_FLIGHT),
            func.min(SendBatch.next_attempt_at).filter(SendBatch.status == BatchStatus.PENDING),
        ).where(SendBatch.issue_id == issue_id)
    ).one()
    earliest = row[2]
    if isinstance(earliest, str):  # SQLite hands an aggregate back untyped
        earliest = datetime.fromisoformat(earliest)
    if earliest is not None and earliest.tzinfo is None:
        earliest = earliest.replace(tzinfo=UTC)
    return int(row[0]), int(row[1]), earliest


# --- operator actions -----------------------------------------------------------------------


def skip_queued(session: Session, issue_id: int, reason: str, now: datetime) -> int:
    """Cancelling: what was not handed off yet is skipped with the reason; nothing is lost."""
    session.execute(
        update(SendBatch)
        .where(SendBatch.issue_id == issue_id, SendBatch.status == BatchStatus.PENDING)
        .values(status=BatchStatus.DONE, finished_at=now, error=reason)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SKIPPED, error=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _uncertain(issue_id: int, delivery_ids: Sequence[int] | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Delivery.issue_id == issue_id,
        Delivery.status == DeliveryStatus.UNCERTAIN,
    ]
    if delivery_ids is not None:
        # Uncertainty is per request: one crash can leave batches SendGrid took beside batches
        # it never saw, so the operator resolves the deliveries the activity feed shows.
        conditions.append(Delivery.id.in_(list(delivery_ids)))
    return conditions


def resolve_uncertain_as_sent(
    session: Session,
    issue_id: int,
    note: str,
    now: datetime,
    delivery_ids: Sequence[int] | None = None,
) -> int:
    result = session.execute(
        update(Delivery)
        .where(*_uncertain(issue_id, delivery_ids))
        .values(
            status=DeliveryStatus.SENT,
            error=func.coalesce(Delivery.error, literal("")) + literal(f" [{note}]"),
            sent_at=func.coalesce(Delivery.sent_at, literal(now, UTCDateTime())),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def requeue_uncertain(
    session: Session,
    issue_id: int,
    size: int,
    now: datetime,
    delivery_ids: Sequence[int] | None = None,
) -> int:
    """Uncertain deliveries -> queued in fresh batches (the operator chose to resend them)."""
    count = int(
        session.scalar(select(func.count()).where(*_uncertain(issue_id, delivery_ids))) or 0
    )
    if count:
        # Planning takes the uncertain deliveries with no batch: only the chosen ones.
        session.execute(
            update(Delivery)
            .where(*_uncertain(issue_id, delivery_ids))
            .values(batch_id=None)
            .execution_options(synchronize_session=False)
        )
        plan_batches(session, issue_id, size, now, status=DeliveryStatus.UNCERTAIN)
    return count


def issues_with_work(session: Session) -> list[tuple[int, bool]]:
    """(issue id, resolving) of every issue a worker should send now: those sending, and sent
    ones with re-queued deliveries waiting in pending batches (resolving=True)."""
    pending = (
        select(SendBatch.id)
        .where(SendBatch.issue_id == Issue.id, SendBatch.status == BatchStatus.PENDING)
        .exists()
    )
    rows = session.execute(
        select(Issue.id, Issue.status)
        .where(
            or_(
                Issue.status == IssueStatus.SENDING,
                (Issue.status == IssueStatus.SENT) & pending,
            )
        )
        .order_by(Issue.id)
    )
    return [(issue_id, IssueStatus(status) is IssueStatus.SENT) for issue_id, status in rows]

"""The worker's whole view of the ledger: claim a batch, put it in flight, settle it (sent,
failed, uncertain), release or finish it, and how far the send has come. The worker imports
nothing else of the ledger (pyproject.toml's contract), as listmonk's manager sees its data
source through one small interface.

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
    Select,
    Table,
    Update,
    bindparam,
    func,
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
    variant: int | None = None  # the issue's variant they get (their topics); None: all of it


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
def _recipients_statement() -> Select[int, str, str | None, bool, str, int | None]:
    subscribers = cast(Table, Subscriber.__table__)
    return (
        select(
            _DELIVERIES.c.id,
            subscribers.c.email,
            subscribers.c.name,
            subscribers.c.tracking_opt_out,
            subscribers.c.public_id,
            _DELIVERIES.c.variant,
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
        BatchRecipient(delivery_id, email, name or "", bool(opt_out), public_id, variant)
        for delivery_id, email, name, opt_out, public_id, variant in rows
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

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
from typing import Any, NamedTuple, cast

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
from subscribers.service import mailable

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
    subject: int | None = None  # the subject test's subject they get (1 for the first)


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


# A delivery is "in flight" while its batch is: claiming the batch is one row, not one per
# delivery (the deliveries stay queued; `status_counts` reports them as in flight). Rows written
# as in_flight by an earlier version are settled the same way.
_OPEN = (DeliveryStatus.QUEUED.value, DeliveryStatus.IN_FLIGHT.value)


def _is_open(status: Any) -> ColumnElement[bool]:
    # Two literals, not an expanding IN: the statement also runs as an executemany.
    return or_(status == _OPEN[0], status == _OPEN[1])


@functools.lru_cache(maxsize=1)
def _recipients_statement() -> Select[
    int, str | None, str | None, bool, str | None, int | None, int | None, bool
]:
    subscribers = cast(Table, Subscriber.__table__)
    return (
        select(
            _DELIVERIES.c.id,
            subscribers.c.email,
            subscribers.c.name,
            subscribers.c.tracking_opt_out,
            subscribers.c.public_id,
            _DELIVERIES.c.variant,
            _DELIVERIES.c.subject,
            # Someone who left after the snapshot (or was erased: no row) is not mailed.
            mailable().label("mailable"),
        )
        .outerjoin(subscribers, subscribers.c.id == _DELIVERIES.c.subscriber_id)
        .where(
            _DELIVERIES.c.batch_id == bindparam("b_batch_id"),
            _is_open(_DELIVERIES.c.status),
        )
        .order_by(_DELIVERIES.c.id)
    )


_SKIP = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.id.in_(bindparam("b_ids", expanding=True)),
        _DELIVERIES.c.batch_id == bindparam("b_batch_id"),
        _is_open(_DELIVERIES.c.status),
    )
    .values(
        status=DeliveryStatus.SKIPPED, error=bindparam("b_reason"), updated_at=bindparam("b_now")
    )
)


def batch_recipients(session: Session, batch_id: int) -> tuple[list[BatchRecipient], list[int]]:
    """Who the claimed batch goes to, to build the request (the claim put it in flight), and
    the deliveries whose person may no longer be mailed (unsubscribed, paused, suppressed or
    erased since the snapshot). A read only: on SQLite it needs no write lock."""
    # Fetched at once: row by row, the fetching cost more than the query on SQLite.
    rows = session.connection().execute(_recipients_statement(), {"b_batch_id": batch_id}).all()
    recipients: list[BatchRecipient] = []
    gone: list[int] = []
    for delivery_id, email, name, opt_out, public_id, variant, subject, ok in rows:
        if ok and email is not None and public_id is not None:
            recipients.append(
                BatchRecipient(
                    delivery_id, email, name or "", bool(opt_out), public_id, variant, subject
                )
            )
        else:
            gone.append(delivery_id)
    return recipients, gone


def skip(
    session: Session, batch_id: int, delivery_ids: list[int], reason: str, now: datetime
) -> int:
    """Open deliveries of the batch -> skipped, with the reason (nobody mailable to send to)."""
    if not delivery_ids:
        return 0
    result = session.connection().execute(
        _SKIP, {"b_ids": delivery_ids, "b_batch_id": batch_id, "b_reason": reason, "b_now": now}
    )
    return int(result.rowcount)


def put_in_flight(
    session: Session, batch_id: int, now: datetime, *, skip_reason: str | None = None
) -> list[BatchRecipient]:
    """`batch_recipients` in the claim's transaction. `skip_reason`: those who may no longer be
    mailed are skipped with it and left out; checked right before each batch. Without it,
    they are left as they are (and out of the request)."""
    recipients, gone = batch_recipients(session, batch_id)
    if skip_reason is not None:
        skip(session, batch_id, gone, skip_reason, now)
    return recipients


# Every request its batch was claimed for counts as an attempt of the delivery.
_BATCH_ATTEMPTS = (
    select(_BATCHES.c.attempts).where(_BATCHES.c.id == bindparam("b_batch_id")).scalar_subquery()
)


_SETTLE_BATCH_SENT = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.batch_id == bindparam("b_batch_id"),
        _is_open(_DELIVERIES.c.status),
    )
    .values(
        status=DeliveryStatus.SENT,
        message_id=bindparam("b_message_id"),
        attempts=_DELIVERIES.c.attempts + _BATCH_ATTEMPTS,
        sent_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
    )
)


def _attempts_of(batch_id: int) -> ColumnElement[int]:
    return select(SendBatch.attempts).where(SendBatch.id == batch_id).scalar_subquery()


def _in_flight(batch_id: int, delivery_ids: Sequence[int] | None) -> list[ColumnElement[bool]]:
    """The batch's deliveries still open (the batch is claimed: they are in flight)."""
    conditions: list[ColumnElement[bool]] = [
        Delivery.batch_id == batch_id,
        _is_open(Delivery.status),
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
        .values(
            status=DeliveryStatus.SENT,
            message_id=message_id,
            attempts=Delivery.attempts + _attempts_of(batch_id),
            sent_at=now,
            updated_at=now,
        )
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
            _is_open(Delivery.__table__.c.status),
        )
        .values(
            status=DeliveryStatus.SENT.value,
            message_id=bindparam("mid"),
            attempts=Delivery.__table__.c.attempts + _attempts_of(batch_id),
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
        .values(
            status=status,
            error=error,
            attempts=Delivery.attempts + _attempts_of(batch_id),
            updated_at=now,
        )
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

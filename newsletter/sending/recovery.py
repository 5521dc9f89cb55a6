"""After a crash and at an operator's word: batches whose worker is gone, queued deliveries of
a cancelled send, uncertain deliveries resolved as sent or queued again, and which issues still
have work for a worker.

Every state change is a conditional UPDATE, as in claims.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueStatus
from newsletter.orm import UTCDateTime
from newsletter.sending.models import BatchStatus, Delivery, DeliveryStatus, SendBatch
from newsletter.sending.repository import OPEN_STATES, plan_batches

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

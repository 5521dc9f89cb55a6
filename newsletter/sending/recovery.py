"""After a crash and at an operator's word: batches whose worker is gone, queued deliveries of
a cancelled send, uncertain deliveries resolved as sent or queued again, and which issues still
have work for a worker.

Every state change is a conditional UPDATE, as in claims.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueStatus
from newsletter.orm import UTCDateTime
from newsletter.sending.models import (
    DROPPED,
    TOOK_IT,
    BatchStatus,
    Delivery,
    DeliveryStatus,
    Evidence,
    SendBatch,
)
from newsletter.sending.repository import OPEN_STATES, plan_batches

# How an uncertain delivery was settled (deliveries.settled_by).
OPERATOR = "operator"
RESEND_BY_OPERATOR = "resend:operator"
RESEND_AUTOMATICALLY = "resend:auto"
_LIFECYCLE = {kind: order for order, kind in enumerate(TOOK_IT)}
# What SendGrid's evidence settles: every delivery without an outcome yet.
_UNSETTLED = (DeliveryStatus.UNCERTAIN, *OPEN_STATES)

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
    attempts = select(SendBatch.attempts).where(SendBatch.id == batch_id).scalar_subquery()
    result = session.execute(
        update(Delivery)
        .where(Delivery.batch_id == batch_id, Delivery.status.in_(OPEN_STATES))
        .values(
            status=DeliveryStatus.UNCERTAIN,
            error=reason,
            attempts=Delivery.attempts + attempts,
            updated_at=now,
        )
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
    # A batch in flight carries its deliveries as queued: its worker settles them.
    in_flight = select(SendBatch.id).where(
        SendBatch.issue_id == issue_id, SendBatch.status == BatchStatus.IN_FLIGHT
    )
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.issue_id == issue_id,
            Delivery.status == DeliveryStatus.QUEUED,
            or_(Delivery.batch_id.is_(None), Delivery.batch_id.not_in(in_flight)),
        )
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
            settled_by=OPERATOR,
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
    *,
    by: str = RESEND_BY_OPERATOR,
) -> int:
    """Uncertain deliveries -> queued in fresh batches (an operator chose to resend them, or
    the scheduler's healing did: `by`)."""
    count = int(
        session.scalar(select(func.count()).where(*_uncertain(issue_id, delivery_ids))) or 0
    )
    if count:
        # Planning takes the uncertain deliveries with no batch: only the chosen ones.
        session.execute(
            update(Delivery)
            .where(*_uncertain(issue_id, delivery_ids))
            .values(batch_id=None, settled_by=by)
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


# --- healing from SendGrid's evidence -----------------------------------------------------


def record_evidence(session: Session, evidence: Sequence[Evidence], now: datetime) -> int:
    """Note which requests SendGrid has shown it took (send_batches.evidence_at, first time
    only) and settle the deliveries the events name that are not settled yet. Returns how many
    settled.

    A sent or failed delivery is settled already and stays as it is. An uncertain one is
    settled by the events. So is one still in flight or queued: SendGrid took it, so its
    worker's answer can only say the same (every worker's settle requires `in_flight`, so it
    then changes nothing), and the events may be the only word about it (the answer never
    comes: a slow answer given up on, a worker killed after sending; or a resend queued before
    the first request's events came would mail it twice).
    """
    if not evidence:
        return 0
    ids = sorted({e.delivery_id for e in evidence})
    # A worker settling these right now holds their rows and then wants their batch's, which
    # the UPDATE below takes: waiting for it here would deadlock (PostgreSQL). So the rows a
    # worker holds are not waited for: this fails at once, the webhook answers 500 and
    # SendGrid posts the events again, when the worker's answer is in. Rows first, batch next,
    # the worker's order.
    session.execute(
        select(Delivery.id)
        .where(Delivery.id.in_(ids), Delivery.status.in_(OPEN_STATES))
        .order_by(Delivery.id)
        .with_for_update(nowait=True)
    )
    session.execute(
        update(SendBatch)
        .where(
            SendBatch.evidence_at.is_(None),
            SendBatch.id.in_(
                select(Delivery.batch_id).where(
                    Delivery.id.in_(ids), Delivery.batch_id.is_not(None)
                )
            ),
        )
        .values(evidence_at=now)
        .execution_options(synchronize_session=False)
    )
    uncertain = set(
        session.scalars(
            select(Delivery.id).where(Delivery.id.in_(ids), Delivery.status.in_(_UNSETTLED))
        )
    )
    if not uncertain:
        return 0
    # One verdict per delivery: any sign SendGrid took it wins over a drop (a drop of a
    # duplicate request says nothing of the first), the earliest such event first.
    chosen: dict[int, Evidence] = {}
    # (Events of one second keep SendGrid's order: processed comes before what follows it.)
    for e in sorted(evidence, key=lambda e: (e.kind == DROPPED, e.at, _LIFECYCLE.get(e.kind, 9))):
        if e.delivery_id in uncertain and e.delivery_id not in chosen:
            chosen[e.delivery_id] = e
    settled = 0
    for e in chosen.values():
        word = literal(f"evidence:{e.kind}")
        values: dict[str, object] = {
            # A resend still in flight or queued stays recorded as the resend it is.
            "settled_by": case(
                (Delivery.status == DeliveryStatus.UNCERTAIN, word),
                else_=func.coalesce(Delivery.settled_by, word),
            ),
            "updated_at": now,
        }
        if e.kind == DROPPED:
            values.update(
                status=DeliveryStatus.FAILED,
                error=f"dropped by SendGrid: {(e.detail or 'no reason given')[:500]}",
            )
        else:
            values.update(
                status=DeliveryStatus.SENT,
                sent_at=func.coalesce(Delivery.sent_at, literal(e.at, UTCDateTime())),
            )
        settled += session.execute(
            update(Delivery)
            .where(Delivery.id == e.delivery_id, Delivery.status.in_(_UNSETTLED))
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    return settled


@dataclass(frozen=True, slots=True)
class UncertainRequest:
    """One request (batch) with deliveries still uncertain, and what its healing waits for."""

    issue_id: int
    batch_id: int | None
    deliveries: list[int]
    uncertain_since: datetime
    resent_before: bool  # an automatic resend happened once: never a second time
    flowing_past: bool  # SendGrid's webhook has shown it took requests made after this one
    # When SendGrid first named other deliveries of this batch (None: never). A batch can be
    # several requests (tracking opt-outs get their own; a 400 resends the rest), so that
    # says nothing of these, beyond: their events, if SendGrid took them, come about as soon.
    batch_named_at: datetime | None = None

    @property
    def resend_from(self) -> datetime:
        """From when the absence of events for these counts."""
        if self.batch_named_at is None:
            return self.uncertain_since
        return max(self.uncertain_since, self.batch_named_at)


def uncertain_requests(session: Session, issue_id: int | None = None) -> list[UncertainRequest]:
    """Every request with uncertain deliveries, with the evidence about the requests beside it.

    "Flowing past": events have arrived for a request of the same send claimed after this one,
    or, when no request was claimed after it (it was among the last), for any other request of
    the send, or for another request of its own batch. Then the absence of events for this one
    means SendGrid did not take it.
    """
    stmt = (
        select(
            Delivery.issue_id,
            Delivery.batch_id,
            Delivery.id,
            Delivery.updated_at,
            Delivery.settled_by,
            SendBatch.claimed_at,
            SendBatch.evidence_at,
        )
        .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
        .where(Delivery.status == DeliveryStatus.UNCERTAIN)
        .order_by(Delivery.issue_id, Delivery.batch_id, Delivery.id)
    )
    if issue_id is not None:
        stmt = stmt.where(Delivery.issue_id == issue_id)
    grouped: dict[tuple[int, int | None], list[Any]] = {}
    for row in session.execute(stmt):
        grouped.setdefault((row.issue_id, row.batch_id), []).append(row)
    if not grouped:
        return []
    issues = sorted({i for i, _ in grouped})
    batches = session.execute(
        select(SendBatch.issue_id, SendBatch.id, SendBatch.claimed_at, SendBatch.evidence_at).where(
            SendBatch.issue_id.in_(issues)
        )
    ).all()
    found: list[UncertainRequest] = []
    for (issue, batch_id), rows in grouped.items():
        claimed = rows[0].claimed_at
        others = [b for b in batches if b.issue_id == issue and b.id != batch_id]
        later = [b for b in others if claimed is None or (b.claimed_at and b.claimed_at > claimed)]
        witnesses = later if later else others
        found.append(
            UncertainRequest(
                issue_id=issue,
                batch_id=batch_id,
                deliveries=[r.id for r in rows],
                uncertain_since=max(r.updated_at for r in rows),
                resent_before=any(r.settled_by == RESEND_AUTOMATICALLY for r in rows),
                # The deliveries SendGrid named are settled (record_evidence), so these are
                # not among them, even when their batch has evidence.
                flowing_past=rows[0].evidence_at is not None
                or any(b.evidence_at is not None for b in witnesses),
                batch_named_at=rows[0].evidence_at,
            )
        )
    return found

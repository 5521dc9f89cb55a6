"""The delivery ledger: one row per (issue, subscriber), each ending sent, failed or uncertain."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.numbers import MAX_ROW_ID
from newsletter.orm import Base, UTCDateTime, str_enum, utcnow

# deliveries.id is an INTEGER column: a larger number from outside names no delivery.
MAX_DELIVERY_ID = MAX_ROW_ID


# SendGrid's events that say it took the request for a delivery: each settles an uncertain
# delivery as sent ("bounce" too: SendGrid took it and tried). "dropped" says it took the
# request and will never send that one: failed, with SendGrid's reason.
TOOK_IT = ("processed", "delivered", "deferred", "bounce")
DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one webhook event says about a delivery of ours."""

    delivery_id: int
    kind: str  # one of TOOK_IT or DROPPED
    at: datetime  # when SendGrid says it happened
    detail: str | None = None


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SKIPPED = "skipped"  # suppressed after the snapshot (e.g. unsubscribed mid-send), with reason


class BatchStatus(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"


class SendBatch(Base):
    __tablename__ = "send_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    status: Mapped[BatchStatus] = mapped_column(
        str_enum(BatchStatus, "batch_status"), default=BatchStatus.PENDING, index=True
    )
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Retries of a temporary failure (5xx, refused connection, 429) stop at a deadline counted
    # from the first attempt, not from the latest one.
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Why the batch last stopped short: what the operator reads after a pause or a retry.
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When SendGrid's webhook first told us of one of this request's deliveries (a processed,
    # delivered, deferred, bounce or dropped event): it took the request. Later requests with
    # evidence while an earlier one has none is what lets an uncertain request be resent.
    evidence_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Delivery(Base):
    __tablename__ = "deliveries"
    # Ids are in link tokens and SendGrid's custom args: never given again (0002_integrity).
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        # Room on each page for a row's updates during its send (HOT: no index rewritten).
        {"sqlite_autoincrement": True, "postgresql_with": {"fillfactor": 50}},
    )

    # No foreign keys (0015_ledger): PostgreSQL's check of three per row was most of the
    # snapshot's time. The rows are written in one statement from the issue, its batches and
    # the subscribers; issues are never deleted, batches only while no delivery names them.
    id: Mapped[int] = mapped_column(primary_key=True)
    # Found through the unique (issue_id, subscriber_id) index, whose first column it is.
    issue_id: Mapped[int] = mapped_column(Integer)
    # NULL once the person is erased (sending/person.py `detach`): the delivery stays counted,
    # anonymous.
    subscriber_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    batch_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # Not indexed: every query on it is within one issue or one batch (their indexes find the
    # rows), and each delivery changes status in every send (queued -> sent; in flight is its
    # batch's state): an index on it would be rewritten 100,000 times a send, and on
    # PostgreSQL it would rule out HOT updates.
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.QUEUED
    )
    message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # How an uncertain delivery was settled: "evidence:<event>" (SendGrid's webhook said so,
    # also when it did before the worker heard SendGrid's answer), "operator" (marked sent by
    # hand), "resend:operator" or "resend:auto" (queued again; an automatic resend happens
    # once, never twice). None for a delivery its worker's answer settled.
    settled_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Which of the issue's variants this person gets (issue_variants.mask: the topics they
    # chose among this week's categories), fixed at the snapshot; NULL for the whole issue.
    variant: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Which subject of the issue's subject test they get (subject_tests.subjects, 1 for the
    # first), fixed when their delivery is made; NULL when the issue has no test.
    subject: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)

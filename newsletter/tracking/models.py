"""Normalised tracking events (first-party and SendGrid's). Votes are newsletter.votes'."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.orm import Base, UTCDateTime, str_enum, utcnow


class EventType(enum.StrEnum):
    PROCESSED = "processed"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    OPENED = "opened"
    CLICKED = "clicked"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    RESUBSCRIBED = "resubscribed"
    VOTED = "voted"
    UNKNOWN = "unknown"


class TrackingEvent(Base):
    __tablename__ = "tracking_events"
    # The numbers count distinct deliveries per (issue, event type): this index answers them
    # without touching the table.
    __table_args__ = (
        Index("ix_tracking_events_issue_type_delivery", "issue_id", "type", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[EventType] = mapped_column(str_enum(EventType, "event_type"))
    source: Mapped[str] = mapped_column(String(16))  # "sendgrid" or "first_party"
    # SendGrid delivers at least once: its sg_event_id makes ingestion idempotent.
    provider_event_id: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    provider_type: Mapped[str] = mapped_column(String(64), default="")
    # No foreign keys (0017_events): PostgreSQL's check of each, per row, was half the cost of
    # storing an event; issues, matchups and deliveries are never deleted. The issue's rows
    # are found through the (issue_id, type, delivery_id) index.
    delivery_id: Mapped[int | None] = mapped_column(nullable=True, index=True)
    issue_id: Mapped[int | None] = mapped_column(nullable=True)
    matchup_id: Mapped[int | None] = mapped_column(nullable=True)
    link_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The keyed address hash (subscribers/addresses.py) of a provider event that matched no
    # delivery (a confirmation or test mail): how erasing the person finds it.
    email_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class TrackingFirst(Base):
    """The first time one delivery did one countable thing for an issue (opened as a person,
    clicked link `k`, bounced...): what makes a unique figure unique when the same reader opens
    twice or SendGrid delivers an event again. `kind` names the figure (see rollups.py)."""

    __tablename__ = "tracking_firsts"

    # No foreign keys (0017_events): issues are never deleted.
    issue_id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(128), primary_key=True)
    # No foreign key: a delivery is never deleted without its issue (which cascades), and the
    # marker is anonymous (erasure keeps the delivery row, without its subscriber).
    delivery_id: Mapped[int] = mapped_column(primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrackingRollup(Base):
    """A figure of an issue, kept as events arrive: how many deliveries have a first of `kind`
    (or, for `open_hour:...`, how many first opened as a person in that hour)."""

    __tablename__ = "tracking_rollups"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(128), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)

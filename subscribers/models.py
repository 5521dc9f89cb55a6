"""A subscriber, their consent, and the suppression list that outlives erasure."""

from __future__ import annotations

import base64
import enum
import secrets
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.orm import Base, UTCDateTime, str_enum, utcnow


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


def new_public_id() -> str:
    return new_public_ids(1)[0]


def new_public_ids(count: int) -> list[str]:
    """`count` ids of 16 random bytes each, URL-safe base64 (22 characters, as
    `secrets.token_urlsafe(16)`), from one read of the system's random source (a large import
    otherwise spent 5% of its time asking for 16 bytes at a time).

    The ids of one call share their first 6 bytes: a batch of an import then lands in one
    place of the unique index instead of on a page each, which is what a commit rewrites
    (with ids all over the index, a 1,000,000-row import spent a quarter of its time there).
    Each id keeps 10 bytes (80 bits) of its own, and the shared part is random, so an id
    tells nothing of when it was made; it says only that it came in with its batch."""
    pool = secrets.token_bytes(6 + 10 * count)
    shared = pool[:6]
    return [
        base64.urlsafe_b64encode(shared + pool[i : i + 10]).rstrip(b"=").decode()
        for i in range(6, 6 + 10 * count, 10)
    ]


class Subscriber(Base):
    __tablename__ = "subscribers"
    # The admin list sorts by name or status and pages by (key, id); the (status, id) index also
    # serves the audience query ("status = active"). The substring-search indexes are engine
    # specific and live outside the models (subscribers/search.py). Ids are never given again
    # (SQLite reuses the highest one otherwise): see 0002_integrity.
    __table_args__ = (
        Index("ix_subscribers_status_id", "status", "id"),
        Index("ix_subscribers_name_id", "name", "id"),
        # The few asked whether they still read, or paused for silence: the editor's numbers
        # count them (0016_reengage_indexes).
        Index(
            "ix_subscribers_reengage_asked",
            "reengage_asked_at",
            sqlite_where=text("reengage_asked_at IS NOT NULL"),
            postgresql_where=text("reengage_asked_at IS NOT NULL"),
        ),
        Index(
            "ix_subscribers_reengage_paused",
            "reengage_paused_at",
            sqlite_where=text("reengage_paused_at IS NOT NULL"),
            postgresql_where=text("reengage_paused_at IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random, never reused: every link made for this person is signed with it, so a link can
    # only ever open this person's data, whatever happens to ids (newsletter/security/delivery_tokens.py).
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    # Normalised (trimmed, lower-cased): uniqueness is case-insensitive by construction.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # The same keyed hash the suppression list holds (subscribers/addresses.py), so "not
    # suppressed" is one NOT EXISTS on suppressions' unique index in the audience query. No
    # index here: it is a function of `email`, already unique, and a second random-order index
    # would halve bulk import speed.
    email_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[SubscriberStatus] = mapped_column(
        str_enum(SubscriberStatus, "subscriber_status"),
        default=SubscriberStatus.PENDING,
    )
    source: Mapped[str] = mapped_column(String(64), default="")
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    consent_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    consent_method: Mapped[str] = mapped_column(String(64), default="")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A confirmation link names the request it answers: sending a new one (or unsubscribing)
    # makes older links worthless.
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When the welcome mail went out after confirming (claimed before sending, cleared again
    # if the transport refused it): a second confirmation never sends a second welcome.
    welcome_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # Issues in a row whose mail soft-bounced (a full mailbox, a block), and the last of them;
    # a delivery in between starts the count again. NEWSLETTER_SOFT_BOUNCE_PAUSE_AFTER in a row
    # pause the subscriber.
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    soft_bounce_issue_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Asked "still want this?" after issues without a click, a vote or a person's open
    # (newsletter/people/reengagement.py); paused when no answer came in time. Answering, or
    # reading again, clears both.
    reengage_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reengage_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When they last answered (the button, reading again, resuming by themselves): asked again
    # only after as many new silent issues as made us ask the first time.
    reengage_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    tracking_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Suppression(Base):
    """An address that must never be mailed, kept only as a one-way hash."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when the person was erased. The reason stays what it was (a complaint stays a
    # complaint, so a sign-up form still never mails the address); "erased" only when the
    # address was not suppressed before.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SubscriberTag(Base):
    """A tag or group the person had in the tool their list came from (Mailchimp tags, Ghost
    labels, MailerLite groups…). Kept as names, so they can become the person's topics."""

    __tablename__ = "subscriber_tags"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)


class SubscriberTopic(Base):
    """A topic the person chose: one of the categories the site publishes matchups in
    ("Developer Tools", "Design Tools"…), stored as the site spells it. None chosen means
    every topic. Validated against the published categories by the door that takes them
    (newsletter/matchups/service.py, `categories_named`): this layer knows no matchups."""

    __tablename__ = "subscriber_topics"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)

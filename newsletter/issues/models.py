"""The weekly issue: which matchups, in what order, the editor's words, and its state."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.orm import Base, UTCDateTime, str_enum, utcnow


class IssueStatus(enum.StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


# A send under way: started, not finished (a pause keeps its claim on the audience).
IN_SEND = (IssueStatus.SENDING, IssueStatus.PAUSED)
# Issues readers have been sent (some of them, so far): published on the web, their matchups
# spoken for (never picked again), their votes the "readers vs the panel" of the next issue.
SEND_STARTED = (*IN_SEND, IssueStatus.SENT)


class Issue(Base):
    __tablename__ = "issues"
    # Ids are in staff URLs and deliveries: never given again (0002_integrity).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    # ISO week, e.g. "2026-W47": one issue per week is a database guarantee.
    week: Mapped[str] = mapped_column(String(8), unique=True)
    status: Mapped[IssueStatus] = mapped_column(
        str_enum(IssueStatus, "issue_status"), default=IssueStatus.DRAFT, index=True
    )
    # Matchups published after the previous issue's cut-off and up to this one are picked.
    cutoff_at: Mapped[datetime] = mapped_column(UTCDateTime())

    subject_override: Mapped[str | None] = mapped_column(Text, nullable=True)
    preheader_override: Mapped[str | None] = mapped_column(Text, nullable=True)
    intro_override: Mapped[str | None] = mapped_column(Text, nullable=True)

    # The frozen render that is sent: placeholders stand for per-recipient values.
    rendered_subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    rendered_preheader: Mapped[str | None] = mapped_column(Text, nullable=True)
    rendered_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    rendered_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The same issue without the open pixel and click rewriting, for NEWSLETTER_TRACKING=off and
    # subscribers who opted out of tracking (vote and unsubscribe links stay).
    rendered_untracked_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    rendered_untracked_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The public web version ("view in browser", the archive): nobody's links, a subscribe link.
    rendered_public_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    rendered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    approved_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    send_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Why a send paused itself (hard bounces or complaints past their thresholds), and when the
    # editors were told; cleared when it resumes.
    pause_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    pause_noticed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When an editor last resumed the send: from then on, the send judges only the bounces and
    # complaints that arrive after it (the editor has seen the ones before).
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Who the issue goes to: everyone mailable (None) or the mailable members of a segment
    # (newsletter/audience), counted when the send starts. No foreign key: this layer knows no
    # segments; the audience refuses to delete a segment an unsent issue names, and a send
    # whose segment is gone is refused, never widened to everyone.
    segment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # What it went to, written when the send starts: the segment's name and rule then, and how
    # many were in it (a segment edited or deleted later does not rewrite history).
    audience: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    items: Mapped[list[IssueMatchup]] = relationship(
        back_populates="issue",
        order_by="IssueMatchup.position",
        cascade="all, delete-orphan",
        lazy="raise",
    )


class IssueMatchup(Base):
    __tablename__ = "issue_matchups"
    __table_args__ = (UniqueConstraint("issue_id", "matchup_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    matchup_id: Mapped[int] = mapped_column(ForeignKey("matchups.id", ondelete="RESTRICT"))
    position: Mapped[int] = mapped_column(Integer)
    # An editor's explicit position survives a rebuild; None means "by panel gap".
    position_override: Mapped[int | None] = mapped_column(Integer, nullable=True)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    summary_override: Mapped[str | None] = mapped_column(Text, nullable=True)

    issue: Mapped[Issue] = relationship(back_populates="items", lazy="raise")


class IssueLink(Base):
    """Every link an issue contains: the click redirect goes only to these."""

    __tablename__ = "issue_links"
    __table_args__ = (UniqueConstraint("issue_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(Text, default="")
    matchup_id: Mapped[int | None] = mapped_column(
        ForeignKey("matchups.id", ondelete="SET NULL"), nullable=True
    )


class IssueVariant(Base):
    """The issue as someone who chose topics gets it: only the matchups in their topics, with
    the subject, overview and storyline made from those. Frozen when the send starts, for
    each combination of this week's categories the audience chose (`mask`: a bit per category
    in `categories`' order); every delivery names its variant (deliveries.variant, NULL for
    the whole issue), so a crash, a restart or another worker sends the same bytes."""

    __tablename__ = "issue_variants"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    mask: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    categories: Mapped[str] = mapped_column(Text)  # the chosen ones, "; "-separated
    matchup_ids: Mapped[str] = mapped_column(Text)  # what it carries, in the issue's order
    subject: Mapped[str] = mapped_column(Text)
    preheader: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    untracked_html: Mapped[str] = mapped_column(Text)
    untracked_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SubjectTest(Base):
    """An issue's subject test: up to four subjects tried on a share of the audience, then the
    winner (by human clicks and votes, or the editor's pick) sent to everyone else.

    Each delivery of the test names the subject it got (deliveries.subject: 1 for the first);
    the deliveries made for everyone else name the winner. A test starts with the send
    (`started_at`) and is decided once (`decided_at`, in the same transaction as the rest's
    deliveries): a crash, a restart or a second worker reads the same subject for everyone."""

    __tablename__ = "subject_tests"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    subjects: Mapped[list[str]] = mapped_column(JSON)
    # Of the audience, the percentage that gets the test (split evenly between the subjects).
    share: Mapped[int] = mapped_column(Integer)
    # How long after the test started the winner is chosen, in minutes.
    wait_minutes: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    winner: Mapped[int | None] = mapped_column(Integer, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The figures the decision read, per subject, as they were then.
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

"""The votes table: one row per delivery and matchup, the latest choice counting."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.orm import Base, UTCDateTime, utcnow


class Vote(Base):
    """One vote per subscriber per matchup; the latest one counts."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("delivery_id", "matchup_id"),
        CheckConstraint("tool IN (0, 1)", name="tool_0_or_1"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # community_split() reads every vote of one matchup.
    matchup_id: Mapped[int] = mapped_column(
        ForeignKey("matchups.id", ondelete="CASCADE"), index=True
    )
    tool: Mapped[int] = mapped_column(Integer)
    # A machine's vote is kept for the record but never counted, and never replaces a person's.
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    voted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

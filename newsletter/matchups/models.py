"""A matchup: two AI tools side by side and the reviewer panel's verdict."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.orm import Base, UTCDateTime, str_enum, utcnow


class Lens(enum.StrEnum):
    BUILDER = "builder"
    SKEPTIC = "skeptic"
    FUTURIST = "futurist"
    MONEY = "money"
    OTHER = "other"


class Matchup(Base):
    __tablename__ = "matchups"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The identity: a digest of the two exact tool names (matchups/slug.py). The slug is only
    # the matchup's name in URLs; two different pairs can reduce to the same words.
    pair_key: Mapped[str] = mapped_column(String(64), unique=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    source_name: Mapped[str] = mapped_column(Text, default="")
    # Hash of the parsed content: a re-import of an unchanged page writes nothing.
    content_hash: Mapped[str] = mapped_column(String(64), default="")

    tools: Mapped[list[MatchupTool]] = relationship(
        back_populates="matchup",
        order_by="MatchupTool.position",
        cascade="all, delete-orphan",
        lazy="raise",
    )
    reviews: Mapped[list[MatchupReview]] = relationship(
        back_populates="matchup",
        order_by="(MatchupReview.reviewer, MatchupReview.tool)",
        cascade="all, delete-orphan",
        lazy="raise",
    )


class MatchupTool(Base):
    __tablename__ = "matchup_tools"
    __table_args__ = (
        UniqueConstraint("matchup_id", "position"),
        CheckConstraint("position IN (0, 1)", name="position_0_or_1"),
        CheckConstraint("panel_ship_pct BETWEEN 0 AND 100", name="panel_pct_range"),
        CheckConstraint(
            "community_pct IS NULL OR community_pct BETWEEN 0 AND 100", name="community_pct_range"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    matchup_id: Mapped[int] = mapped_column(ForeignKey("matchups.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    tagline: Mapped[str] = mapped_column(Text)
    panel_ship_pct: Mapped[int] = mapped_column(Integer)
    # As printed on the page (None for "—"); the newsletter's own vote tally is separate.
    community_pct: Mapped[int | None] = mapped_column(Integer, nullable=True)
    entry: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)

    matchup: Mapped[Matchup] = relationship(back_populates="tools", lazy="raise")


class MatchupReview(Base):
    __tablename__ = "matchup_reviews"
    __table_args__ = (
        UniqueConstraint("matchup_id", "reviewer", "tool"),
        CheckConstraint("tool IN (0, 1)", name="tool_0_or_1"),
        CheckConstraint("reviewer >= 1", name="reviewer_1_based"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    matchup_id: Mapped[int] = mapped_column(ForeignKey("matchups.id", ondelete="CASCADE"))
    reviewer: Mapped[int] = mapped_column(Integer)
    tool: Mapped[int] = mapped_column(Integer)
    lens: Mapped[Lens] = mapped_column(str_enum(Lens, "lens"))
    quote: Mapped[str] = mapped_column(Text)

    matchup: Mapped[Matchup] = relationship(back_populates="reviews", lazy="raise")

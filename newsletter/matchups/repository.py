"""All SQL about matchups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.base import ExecutableOption

from newsletter.matchups.models import Matchup, MatchupReview, MatchupTool
from newsletter.matchups.schemas import MatchupData


def _with_children() -> tuple[ExecutableOption, ...]:
    return (selectinload(Matchup.tools), selectinload(Matchup.reviews))


def get_by_slug(session: Session, slug: str) -> Matchup | None:
    stmt = select(Matchup).where(Matchup.slug == slug).options(*_with_children())
    return session.scalars(stmt).one_or_none()


def get_by_pair_key(session: Session, key: str) -> Matchup | None:
    stmt = select(Matchup).where(Matchup.pair_key == key).options(*_with_children())
    return session.scalars(stmt).one_or_none()


def slug_taken(session: Session, slug: str) -> bool:
    return session.scalar(select(Matchup.id).where(Matchup.slug == slug)) is not None


def list_all(session: Session) -> list[Matchup]:
    stmt = select(Matchup).order_by(Matchup.published_at, Matchup.id).options(*_with_children())
    return list(session.scalars(stmt))


def add(session: Session, data: MatchupData, published_at: datetime, slug: str) -> Matchup:
    matchup = Matchup(
        pair_key=data.pair_key,
        slug=slug,
        title=data.title,
        published_at=published_at,
        source_name=data.source_name,
        content_hash=data.content_hash(),
    )
    _fill_children(matchup, data, new=True)
    session.add(matchup)
    session.flush()
    return matchup


def replace_content(
    session: Session, matchup: Matchup, data: MatchupData, published_at: datetime
) -> None:
    matchup.title = data.title
    matchup.published_at = published_at
    matchup.source_name = data.source_name
    matchup.content_hash = data.content_hash()
    _fill_children(matchup, data, new=False)
    session.flush()
    # Old quotes go before new ones arrive: (matchup, reviewer, tool) is unique.
    matchup.reviews.clear()
    session.flush()
    matchup.reviews.extend(_reviews(data))
    session.flush()


def _reviews(data: MatchupData) -> list[MatchupReview]:
    return [
        MatchupReview(reviewer=r.reviewer, tool=r.tool, lens=r.lens, quote=r.quote)
        for r in data.reviews
    ]


def _fill_children(matchup: Matchup, data: MatchupData, *, new: bool) -> None:
    tools = [MatchupTool(position=i, **vars(t)) for i, t in enumerate(data.tools)]
    if new:
        matchup.tools = tools
        matchup.reviews = _reviews(data)
        return
    # Tools are updated in place so their ids stay stable (votes refer to positions).
    for existing, fresh in zip(matchup.tools, tools, strict=True):
        for column in (
            "name",
            "category",
            "tagline",
            "panel_ship_pct",
            "community_pct",
            "entry",
            "description",
        ):
            setattr(existing, column, getattr(fresh, column))


def categories(session: Session) -> list[str]:
    """Every category a published matchup's tool is in, each once, by name."""
    return list(
        session.scalars(select(MatchupTool.category).distinct().order_by(MatchupTool.category))
    )

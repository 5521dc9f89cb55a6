"""What the votes table holds about one person: their votes (for their export and the admin's
history page). Erasure needs nothing here: a vote's subscriber is SET NULL with the row, and
the vote stays counted, anonymous."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from newsletter.matchups.models import Matchup, MatchupTool
from newsletter.votes.models import Vote


def votes(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    """Oldest first, for the person's own data export."""
    rows = session.execute(
        select(Vote.matchup_id, Vote.tool, Vote.voted_at)
        .where(Vote.subscriber_id == subscriber_id)
        .order_by(Vote.voted_at)
    ).all()
    return [{"matchup_id": v.matchup_id, "tool": v.tool, "at": v.voted_at} for v in rows]


def recent_votes(session: Session, subscriber_id: int, limit: int) -> list[dict[str, Any]]:
    """Newest first, with the matchup's title and the tool's name, for the admin's page."""
    rows = session.execute(
        select(Matchup.title, MatchupTool.name.label("tool"), Vote.voted_at, Vote.machine)
        .join(Matchup, Matchup.id == Vote.matchup_id)
        .join(
            MatchupTool,
            and_(MatchupTool.matchup_id == Vote.matchup_id, MatchupTool.position == Vote.tool),
        )
        .where(Vote.subscriber_id == subscriber_id)
        .order_by(Vote.voted_at.desc())
        .limit(limit)
    ).all()
    return [dict(row._mapping) for row in rows]

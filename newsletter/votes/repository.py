"""All SQL on the votes table, and the panel figures beside them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

from newsletter.matchups.models import MatchupTool
from newsletter.orm import upsert_insert
from newsletter.votes.models import Vote


def upsert_vote(
    session: Session,
    *,
    delivery_id: int,
    subscriber_id: int | None,
    matchup_id: int,
    tool: int,
    machine: bool,
    voted_at: datetime,
) -> bool:
    """One vote per delivery and matchup, the latest counting; a machine's vote never
    replaces a person's. True if the row was written."""
    insert = upsert_insert(session, Vote).values(
        delivery_id=delivery_id,
        subscriber_id=subscriber_id,
        matchup_id=matchup_id,
        tool=tool,
        machine=machine,
        voted_at=voted_at,
    )
    stmt = insert.on_conflict_do_update(
        index_elements=["delivery_id", "matchup_id"],
        set_={
            "tool": insert.excluded.tool,
            "machine": insert.excluded.machine,
            "voted_at": insert.excluded.voted_at,
        },
        where=or_(Vote.machine.is_(True), insert.excluded.machine.is_(False)),
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def human_vote_counts(session: Session, matchup_ids: Iterable[int]) -> dict[int, list[int]]:
    """Per matchup, [votes for tool 0, votes for tool 1], people only."""
    ids = sorted(set(matchup_ids))
    counts: dict[int, list[int]] = {m: [0, 0] for m in ids}
    if not ids:
        return counts
    stmt = (
        select(Vote.matchup_id, Vote.tool, func.count())
        .where(Vote.matchup_id.in_(ids), Vote.machine.is_(False))
        .group_by(Vote.matchup_id, Vote.tool)
    )
    for matchup_id, tool, count in session.execute(stmt):
        counts[matchup_id][tool] = count
    return counts


def panel_figures(session: Session, matchup_ids: Sequence[int]) -> dict[int, list[int]]:
    """Per matchup, [panel ship % of tool 0, of tool 1]."""
    panel: dict[int, list[int]] = {m: [0, 0] for m in matchup_ids}
    if matchup_ids:
        stmt = select(
            MatchupTool.matchup_id, MatchupTool.position, MatchupTool.panel_ship_pct
        ).where(MatchupTool.matchup_id.in_(matchup_ids))
        for matchup_id, position, pct in session.execute(stmt):
            panel[matchup_id][position] = pct
    return panel

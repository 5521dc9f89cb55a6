"""What readers' votes add up to: one matchup's split, and an issue's readers against the panel.

Only people's votes count: a vote flagged as a machine's (a link scanner) is kept for the
record and never counted; an erased subscriber's votes stay counted, anonymously. Recording a
vote from a link is tracking's (it knows the delivery); the row is written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.votes import repository
from newsletter.votes.panel import ReadersVsPanel, Tally

# (matchup id, slug, [tool 0 name, tool 1 name]), in an issue's order.
IssueMatchup = tuple[int, str, Sequence[str]]


def cast(
    session: Session,
    *,
    delivery_id: int,
    subscriber_id: int | None,
    matchup_id: int,
    tool: int,
    machine: bool,
    voted_at: datetime,
) -> bool:
    """Store a vote (the latest per delivery and matchup counts; a machine's never replaces a
    person's). True if the row was written."""
    return repository.upsert_vote(
        session,
        delivery_id=delivery_id,
        subscriber_id=subscriber_id,
        matchup_id=matchup_id,
        tool=tool,
        machine=machine,
        voted_at=voted_at,
    )


def community_split(session: Session, matchup_id: int) -> tuple[int | None, int]:
    """(percentage of people's votes for tool 0, rounded; None without votes, number of votes)."""
    tool0, tool1 = repository.human_vote_counts(session, [matchup_id])[matchup_id]
    total = tool0 + tool1
    if total == 0:
        return None, 0
    return round(100 * tool0 / total), total


def human_vote_counts(session: Session, matchup_ids: Sequence[int]) -> dict[int, list[int]]:
    return repository.human_vote_counts(session, matchup_ids)


def readers_vs_panel(
    session: Session, week: str, matchups: Sequence[IssueMatchup]
) -> ReadersVsPanel | None:
    """People's votes on one issue's matchups beside the panel's picks; None when nobody
    voted."""
    ids = [m for m, _, _ in matchups]
    panel = repository.panel_figures(session, ids)
    votes = repository.human_vote_counts(session, ids)
    tallies = tuple(
        Tally(m, slug, (names[0], names[1]), (panel[m][0], panel[m][1]), (votes[m][0], votes[m][1]))
        for m, slug, names in matchups
        if votes[m][0] + votes[m][1]
    )
    return ReadersVsPanel(week, tallies) if tallies else None

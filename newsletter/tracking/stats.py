"""The numbers editors read for one issue (the CLI's --json, the editor's page, the API), and
readers against the panel for the archive."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from newsletter.issues import service as issues
from newsletter.issues.models import IssueLink
from newsletter.issues.service import IssueNotFound
from newsletter.sending import service as sending
from newsletter.tracking import repository
from newsletter.tracking.models import EventType
from newsletter.votes import service as votes
from subscribers import service as subscribers

OPENS_WINDOW_HOURS = 72


def issue_stats(session: Session, issue_id: int) -> dict[str, Any]:
    """Every number the editors read for one issue (the CLI's --json and the dashboard)."""
    issue = issues.get(session, issue_id)
    if issue is None:
        raise IssueNotFound(f"no issue with id {issue_id}")
    counts = sending.status_counts(session, issue_id)
    unique = repository.unique_deliveries_by_type(session, issue_id)
    bounces = repository.unique_deliveries_by_provider_type(session, issue_id, EventType.BOUNCED)

    def human(event_type: EventType) -> int:
        return unique.get((event_type, False), 0)

    delivered = human(EventType.DELIVERED)
    sent = counts.get("sent", 0)
    opens_unique = human(EventType.OPENED)
    # The outbox transport and a missing webhook leave no delivered events: fall back to sent.
    denominator = delivered or sent
    matchups = issues.issue_matchups(session, issue_id)
    counts_by_matchup = votes.human_vote_counts(session, [m for m, _, _ in matchups])
    clicks_by_matchup = repository.human_clicks_by(session, issue_id, "matchup_id")
    clicks_by_link = repository.human_clicks_by(session, issue_id, "link_key")
    return {
        "issue_id": issue.id,
        "week": issue.week,
        "status": str(issue.status),
        "send_started_at": issue.send_started_at,
        "recipients": counts.get("recipients", 0),
        "sent": sent,
        "failed": counts.get("failed", 0),
        "uncertain": counts.get("uncertain", 0),
        # Not mailed, each with its reason on the delivery (paused, erased, suppressed since).
        "skipped": counts.get("skipped", 0),
        "delivered": delivered,
        "bounced": bounces.get("bounce", 0),
        "blocked": bounces.get("blocked", 0),
        "dropped": human(EventType.DROPPED),
        "opens_unique": opens_unique,
        "opens_machine": unique.get((EventType.OPENED, True), 0),
        "open_rate": round(opens_unique / denominator, 4) if denominator else None,
        "clicks_unique": human(EventType.CLICKED),
        "clicks_machine": unique.get((EventType.CLICKED, True), 0),
        "unsubscribes": human(EventType.UNSUBSCRIBED),
        "complaints": human(EventType.COMPLAINED),
        "matchups": [
            {
                "slug": slug,
                "clicks_unique": clicks_by_matchup.get(matchup_id, 0),
                "votes": [
                    {
                        "tool": position,
                        "name": names[position],
                        "votes": counts_by_matchup[matchup_id][position],
                    }
                    for position in (0, 1)
                ],
                "community_pct": votes.community_split(session, matchup_id)[0],
            }
            for matchup_id, slug, names in matchups
        ],
        "links": [_link_stats(link, clicks_by_link) for link in issues.links_of(session, issue_id)],
        # The list's health beside the issue: who was asked "still want this?", who was paused.
        "re_engagement": subscribers.reengagement_counts(session),
        "pause_reason": issue.pause_reason,
        "opens_by_hour": _opens_by_hour(
            repository.first_human_opens(session, issue_id), issue.send_started_at
        ),
    }


def _link_stats(link: IssueLink, clicks: dict[Any, int]) -> dict[str, Any]:
    return {
        "key": link.key,
        "url": link.url,
        "label": link.label,
        "clicks_unique": clicks.get(link.key, 0),
    }


def _opens_by_hour(first_opens: list[datetime], started_at: datetime | None) -> list[int]:
    """Unique human opens per hour over the first 72 hours after the send started."""
    buckets = [0] * OPENS_WINDOW_HOURS
    if not first_opens:
        return buckets
    start = started_at or min(first_opens)
    for opened_at in first_opens:
        hour = (opened_at - start) // timedelta(hours=1)
        if 0 <= hour < OPENS_WINDOW_HOURS:
            buckets[hour] += 1
    return buckets

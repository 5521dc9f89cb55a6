"""The numbers editors read for one issue (the CLI's --json, the editor's page, the API), and
readers against the panel for the archive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from newsletter.issues import service as issues
from newsletter.issues.models import IssueLink
from newsletter.issues.service import IssueNotFound
from newsletter.sending import service as sending
from newsletter.tracking import rollups
from newsletter.tracking.models import EventType
from newsletter.votes import service as votes
from subscribers import service as subscribers

TREND_ISSUES = 8


def issue_stats(session: Session, issue_id: int) -> dict[str, Any]:
    """Every number the editors read for one issue (the CLI's --json, the web page, the API).

    Read from the figures kept as events arrive (rollups.py), never from the events: the cost
    is the same at 6,000,000 events as at 60,000. The delivery states are the ledger's, an
    indexed count per issue.
    """
    issue = issues.get(session, issue_id)
    if issue is None:
        raise IssueNotFound(f"no issue with id {issue_id}")
    counts = sending.status_counts(session, issue_id)
    n = rollups.figures(session, [issue_id])[issue_id]

    def human(event_type: EventType) -> int:
        return n.get(f"{event_type.value}:h", 0)

    delivered = human(EventType.DELIVERED)
    sent = counts.get("sent", 0)
    opens_unique = human(EventType.OPENED)
    clicks_unique = human(EventType.CLICKED)
    # The outbox transport and a missing webhook leave no delivered events: fall back to sent.
    denominator = delivered or sent
    matchups = issues.issue_matchups(session, issue_id)
    titles = {m.id: m.title for m in issues.matchups_of(session, issue).values()}
    counts_by_matchup = votes.human_vote_counts(session, [m for m, _, _ in matchups])
    hours, first_hour = _opens_by_hour(n)
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
        "bounced": n.get("bounced_as:bounce", 0),
        "blocked": n.get("bounced_as:blocked", 0),
        "dropped": human(EventType.DROPPED),
        "opens_unique": opens_unique,
        "opens_machine": n.get(f"{EventType.OPENED.value}:m", 0),
        "open_rate": _rate(opens_unique, denominator),
        "clicks_unique": clicks_unique,
        "clicks_machine": n.get(f"{EventType.CLICKED.value}:m", 0),
        # Click-through: people who clicked of those delivered; click-to-open: of those who
        # opened (a person's click without a counted open, e.g. images off, still counts).
        "click_rate": _rate(clicks_unique, denominator),
        "click_to_open_rate": _rate(clicks_unique, opens_unique),
        "voters": human(EventType.VOTED),
        "vote_rate": _rate(human(EventType.VOTED), denominator),
        "unsubscribes": human(EventType.UNSUBSCRIBED),
        "complaints": human(EventType.COMPLAINED),
        "matchups": [
            {
                "slug": slug,
                "title": titles.get(matchup_id, slug),
                "clicks_unique": n.get(f"click_matchup:{matchup_id}", 0),
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
        "links": [_link_stats(link, n) for link in issues.links_of(session, issue_id)],
        # The list's health beside the issue: who was asked "still want this?", who was paused.
        "re_engagement": subscribers.reengagement_counts(session),
        "pause_reason": issue.pause_reason,
        # People's first opens per UTC hour, from the first hour with one to the last.
        "opens_by_hour": hours,
        "opens_first_hour": first_hour,
        "trend": _trend(session, issue_id),
        "by_topics": _by_topics(session, issue_id, n, sent),
    }


_PER_TOPIC = {
    "delivered": EventType.DELIVERED,
    "opens_unique": EventType.OPENED,
    "clicks_unique": EventType.CLICKED,
    "voters": EventType.VOTED,
    "unsubscribes": EventType.UNSUBSCRIBED,
}


def _by_topics(
    session: Session, issue_id: int, n: dict[str, int], sent: int
) -> list[dict[str, Any]]:
    """The figures per variant (readers who chose topics), then the readers of the whole
    issue (no topics, or topics that take in every matchup): the issue's figures less the
    variants'. Empty when nobody got a variant."""
    variants = issues.variant_summaries(session, issue_id)
    if not variants:
        return []
    sent_by = sending.sent_by_variant(session, issue_id)
    rows = []
    for variant in variants:
        mask = variant["mask"]
        figures = {
            name: n.get(rollups.variant_kind(mask, f"{t.value}:h"), 0)
            for name, t in _PER_TOPIC.items()
        }
        rows.append(
            _topic_row(variant["categories"], variant["subject"], sent_by.get(mask, 0), figures)
            | {"mask": mask, "matchups": len(variant["matchup_ids"])}
        )
    whole = {
        name: n.get(f"{t.value}:h", 0) - sum(r[name] for r in rows)
        for name, t in _PER_TOPIC.items()
    }
    rest = _topic_row([], None, sent - sum(r["sent"] for r in rows), whole)
    return [*rows, rest | {"mask": None, "matchups": None}]


def _topic_row(
    topics: list[str], subject: str | None, sent: int, figures: dict[str, int]
) -> dict[str, Any]:
    denominator = figures["delivered"] or sent
    return {
        "topics": topics,
        "subject": subject,
        "sent": sent,
        **figures,
        "open_rate": _rate(figures["opens_unique"], denominator),
        "click_rate": _rate(figures["clicks_unique"], denominator),
        "vote_rate": _rate(figures["voters"], denominator),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _link_stats(link: IssueLink, n: dict[str, int]) -> dict[str, Any]:
    return {
        "key": link.key,
        "url": link.url,
        "label": link.label,
        "clicks_unique": n.get(f"click_link:{link.key}", 0),
    }


def _opens_by_hour(n: dict[str, int]) -> tuple[list[int], datetime | None]:
    per_hour = {
        datetime.strptime(kind[len(rollups.OPEN_HOUR) :], "%Y-%m-%dT%H").replace(tzinfo=UTC): count
        for kind, count in n.items()
        if kind.startswith(rollups.OPEN_HOUR) and count
    }
    if not per_hour:
        return [], None
    first, last = min(per_hour), max(per_hour)
    hours = (last - first) // timedelta(hours=1) + 1
    return [per_hour.get(first + timedelta(hours=h), 0) for h in range(hours)], first


def _trend(session: Session, issue_id: int) -> list[dict[str, Any]]:
    """Open, click and vote rates of the latest sent issues (and this one), oldest first."""
    ids = [i for i, _ in issues.last_sent_issues(session, TREND_ISSUES + 1)]
    if issue_id not in ids:
        ids.insert(0, issue_id)
    ids = ids[:TREND_ISSUES]
    kept = rollups.figures(session, ids)
    rows = []
    for other in ids:
        issue = issues.get(session, other)
        if issue is None:
            continue
        n = kept[other]
        delivered = n.get(f"{EventType.DELIVERED.value}:h", 0)
        # Only without a webhook's delivered events: the ledger's sent count (an indexed count).
        denominator = delivered or sending.status_counts(session, other).get("sent", 0)
        rows.append(
            {
                "issue_id": other,
                "week": issue.week,
                "delivered": denominator,
                "open_rate": _rate(n.get(f"{EventType.OPENED.value}:h", 0), denominator),
                "click_rate": _rate(n.get(f"{EventType.CLICKED.value}:h", 0), denominator),
                "vote_rate": _rate(n.get(f"{EventType.VOTED.value}:h", 0), denominator),
                "unsubscribes": n.get(f"{EventType.UNSUBSCRIBED.value}:h", 0),
            }
        )
    return sorted(rows, key=lambda r: str(r["week"]))


def check(session: Session, issue_id: int) -> list[tuple[str, int, int]]:
    """(figure, kept, recounted) for every figure of the issue whose kept value differs from a
    recount of its events; [] when they agree."""
    if issues.get(session, issue_id) is None:
        raise IssueNotFound(f"no issue with id {issue_id}")
    resumed = issues.resumed_at(session, issue_id)
    kept = rollups.figures(session, [issue_id])[issue_id]
    if resumed is not None:
        # Earlier resumptions' counts are kept but no longer read: not compared.
        current = f"since:{rollups.since_key(resumed)}:"
        kept = {
            k: v for k, v in kept.items() if not k.startswith("since:") or k.startswith(current)
        }
    counted = rollups.recount(session, issue_id, resumed)
    return [
        (kind, kept.get(kind, 0), counted.get(kind, 0))
        for kind in sorted(set(kept) | set(counted))
        if kept.get(kind, 0) != counted.get(kind, 0)
    ]


def repair(session: Session, issue_id: int) -> None:
    """Rewrite the issue's figures from a recount of its events."""
    if issues.get(session, issue_id) is None:
        raise IssueNotFound(f"no issue with id {issue_id}")
    rollups.repair(session, issue_id, issues.resumed_at(session, issue_id))

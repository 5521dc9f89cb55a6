"""Arranging the data a test or benchmark starts from, without the steps before it: many active
subscribers and an approved issue whose frozen render is filled directly (what
`issues.service.approve` produces), or an issue already sent to its readers.

Shared by the sending and tracking tests and the send, fault, webhook and tracking-load
benchmarks, which need the same starting points at 3 or 1,000,000 rows. The caller commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueLink, IssueMatchup, IssueStatus
from newsletter.matchups.models import Matchup, MatchupTool
from newsletter.matchups.slug import pair_key
from newsletter.security.delivery_tokens import DELIVERY_PURPOSE, delivery_token
from newsletter.security.signing import sign
from newsletter.sending.models import Delivery, DeliveryStatus
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus

CHUNK = 10_000
DAYS_3 = timedelta(days=3)


def add_subscribers(
    session: Session,
    count: int,
    *,
    prefix: str = "reader",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    opt_out_every: int = 0,
    source: str = "test",
) -> list[str]:
    """`count` subscribers {prefix}0@mail.example.com …; every `opt_out_every`-th one (from the
    first) opted out of tracking. Inserted in chunks, so a million rows never sit in memory."""
    now = datetime.now(UTC)
    emails = [f"{prefix}{i}@mail.example.com" for i in range(count)]

    def rows(start: int) -> Iterator[dict[str, Any]]:
        for i in range(start, min(start + CHUNK, count)):
            yield {
                "email": emails[i],
                "email_hash": address_hash(emails[i]),
                "name": f"Reader {i}",
                "status": status,
                "source": source,
                "consent_method": source,
                "paused": False,
                "tracking_opt_out": bool(opt_out_every) and i % opt_out_every == 0,
                "created_at": now,
                "updated_at": now,
                "confirmed_at": now,
            }

    for start in range(0, count, CHUNK):
        session.execute(insert(Subscriber), list(rows(start)))
    return emails


def add_frozen_issue(
    session: Session,
    *,
    html: str,
    text: str,
    untracked_html: str,
    week: str = "2026-W47",
    status: IssueStatus = IssueStatus.APPROVED,
    approved_by: str = "editor@nl.example",
) -> int:
    """An issue whose render is frozen, ready for `start_send`; returns its id."""
    now = datetime.now(UTC)
    issue = Issue(
        week=week,
        status=status,
        cutoff_at=now,
        rendered_subject="AI Tool Verdicts, week 47",
        rendered_preheader="Eight matchups",
        rendered_html=html,
        rendered_text=text,
        rendered_untracked_html=untracked_html,
        rendered_untracked_text=text,
        rendered_at=now,
        approved_at=now,
        approved_by=approved_by,
    )
    session.add(issue)
    session.flush()
    return issue.id


@dataclass
class SentIssue:
    """A sent issue with two matchups, their links and one delivery per reader."""

    issue_id: int
    matchups: list[int]
    slugs: list[str]
    subscribers: list[int]
    deliveries: list[int]
    public_ids: list[str]

    def token(self, index: int, *, secret: str | None = None) -> str:
        """The signed token of the index-th reader's delivery, as their links carry it."""
        value = f"{self.deliveries[index]}.{self.public_ids[index]}"
        if secret is not None:
            return sign(DELIVERY_PURPOSE, value, secret=secret)
        return delivery_token(self.deliveries[index], self.public_ids[index])


def make_matchup(slug: str, a: str, b: str, *, published_at: datetime) -> Matchup:
    matchup = Matchup(
        slug=slug, pair_key=pair_key(a, b), title=f"{a} vs {b}", published_at=published_at
    )
    matchup.tools = [
        MatchupTool(
            position=i,
            name=name,
            category="Coding",
            tagline="t",
            panel_ship_pct=60,
            community_pct=None,
            entry="Free",
            description="d",
        )
        for i, name in enumerate((a, b))
    ]
    return matchup


def add_sent_issue(session: Session, *, readers: int, sent_at: datetime) -> SentIssue:
    """Cursor vs Windsurf and Claude vs GPT (link keys m0, m1, and `site`), sent at `sent_at`
    to `readers` active subscribers reader{i}@example.com; deliveries are bulk-inserted."""
    matchups = [
        make_matchup("cursor-vs-windsurf", "Cursor", "Windsurf", published_at=sent_at - DAYS_3),
        make_matchup("claude-vs-gpt", "Claude", "GPT", published_at=sent_at - DAYS_3),
    ]
    session.add_all(matchups)
    issue = Issue(
        week="2026-W10",
        status=IssueStatus.SENT,
        cutoff_at=sent_at - timedelta(hours=1),
        send_started_at=sent_at,
        sent_at=sent_at,
    )
    session.add(issue)
    session.flush()
    for position, matchup in enumerate(matchups):
        session.add(IssueMatchup(issue_id=issue.id, matchup_id=matchup.id, position=position))
        session.add(
            IssueLink(
                issue_id=issue.id,
                key=f"m{position}",
                url=f"https://aitoolverdicts.example/matchups/{matchup.slug}",
                label=matchup.title,
                matchup_id=matchup.id,
            )
        )
    session.add(
        IssueLink(
            issue_id=issue.id, key="site", url="https://aitoolverdicts.example/", label="Site"
        )
    )
    now = datetime.now(UTC)
    for start in range(0, readers, CHUNK):
        emails = [f"reader{i}@example.com" for i in range(start, min(start + CHUNK, readers))]
        session.execute(
            insert(Subscriber),
            [
                {
                    "email": email,
                    "email_hash": address_hash(email),
                    "status": SubscriberStatus.ACTIVE,
                    "created_at": now,
                    "updated_at": now,
                }
                for email in emails
            ],
        )
    people = session.execute(select(Subscriber.id, Subscriber.public_id).order_by(Subscriber.id))
    subscriber_ids, public_ids = (list(column) for column in zip(*people, strict=True))
    for start in range(0, len(subscriber_ids), CHUNK):
        session.execute(
            insert(Delivery),
            [
                {
                    "issue_id": issue.id,
                    "subscriber_id": s,
                    "status": DeliveryStatus.SENT,
                    "sent_at": sent_at,
                }
                for s in subscriber_ids[start : start + CHUNK]
            ],
        )
    delivery_ids = list(
        session.scalars(
            select(Delivery.id).where(Delivery.issue_id == issue.id).order_by(Delivery.id)
        )
    )
    return SentIssue(
        issue_id=issue.id,
        matchups=[m.id for m in matchups],
        slugs=[m.slug for m in matchups],
        subscribers=subscriber_ids,
        deliveries=delivery_ids,
        public_ids=public_ids,
    )

"""A sent issue with two matchups, links and three deliveries, built straight from the models
(so these tests depend on the tables, not on how other areas build issues)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueLink, IssueMatchup, IssueStatus
from newsletter.matchups.models import Matchup, MatchupTool
from newsletter.personalize import delivery_token
from newsletter.sending.models import Delivery, DeliveryStatus
from newsletter.settings import reset_settings
from newsletter.tracking.webhook import encode_public_key
from newsletter.web.app import create_app
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus

# Two days ago: long past the machine window, inside the 72-hour opens chart.
SENT_AT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
# Real readers in these tests use a desktop browser's user agent.
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@dataclass
class World:
    issue_id: int
    matchups: list[int]
    slugs: list[str]
    subscribers: list[int]
    deliveries: list[int]

    def token(self, index: int) -> str:
        return delivery_token(self.deliveries[index])


def make_matchup(slug: str, a: str, b: str) -> Matchup:
    matchup = Matchup(slug=slug, title=f"{a} vs {b}", published_at=SENT_AT - timedelta(days=3))
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


def build_world(session: Session, *, sent_at: datetime = SENT_AT, readers: int = 3) -> World:
    matchups = [
        make_matchup("cursor-vs-windsurf", "Cursor", "Windsurf"),
        make_matchup("claude-vs-gpt", "Claude", "GPT"),
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
    subscribers = []
    for i in range(readers):
        email = f"reader{i}@example.com"
        subscriber = Subscriber(
            email=email, email_hash=address_hash(email), status=SubscriberStatus.ACTIVE
        )
        session.add(subscriber)
        subscribers.append(subscriber)
    session.flush()
    deliveries = [
        Delivery(issue_id=issue.id, subscriber_id=s.id, status=DeliveryStatus.SENT, sent_at=sent_at)
        for s in subscribers
    ]
    session.add_all(deliveries)
    session.commit()
    return World(
        issue_id=issue.id,
        matchups=[m.id for m in matchups],
        slugs=[m.slug for m in matchups],
        subscribers=[s.id for s in subscribers],
        deliveries=[d.id for d in deliveries],
    )


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key; its public half is configured as SendGrid's."""
    key = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", encode_public_key(key))
    reset_settings()
    return key


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(), headers={"User-Agent": BROWSER}) as test_client:
        yield test_client

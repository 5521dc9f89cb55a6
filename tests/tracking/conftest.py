"""A sent issue with two matchups, links and three deliveries, built straight from the models
(so these tests depend on the tables, not on how other areas build issues)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.matchups.models import Matchup
from newsletter.settings import reset_settings
from newsletter.tracking.webhook import encode_public_key
from newsletter.web.app import create_app
from tests.support import arrange
from tests.support.arrange import SentIssue

# Two days ago: long past the machine window, inside the 72-hour opens chart.
SENT_AT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
# Real readers in these tests use a desktop browser's user agent.
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


World = SentIssue


def make_matchup(slug: str, a: str, b: str) -> Matchup:
    return arrange.make_matchup(slug, a, b, published_at=SENT_AT - timedelta(days=3))


def build_world(session: Session, *, sent_at: datetime = SENT_AT, readers: int = 3) -> World:
    world = arrange.add_sent_issue(session, readers=readers, sent_at=sent_at)
    session.commit()
    return world


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

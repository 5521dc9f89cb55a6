"""Fixtures for sending: a loopback SendGrid, an approved issue, and a list of subscribers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueStatus
from newsletter.settings import reset_settings
from newsletter.testing.sendgrid_server import SendGridServer
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus

API_KEY = "SG.loopback-test-key"
TRACKED_HTML = (
    '<html><body><p>Verdicts</p><a href="https://nl.example/c/__NL_TOKEN__/m1">read</a>'
    '<a href="https://nl.example/u/__NL_TOKEN__">unsubscribe</a>'
    '<img src="https://nl.example/o/__NL_TOKEN__.gif" alt=""></body></html>'
)
UNTRACKED_HTML = (
    '<html><body><p>Verdicts</p><a href="https://site.example/m1">read</a>'
    '<a href="https://nl.example/u/__NL_TOKEN__">unsubscribe</a></body></html>'
)
TEXT = "Verdicts\n\nUnsubscribe: https://nl.example/u/__NL_TOKEN__\n"


@pytest.fixture
def sendgrid(monkeypatch: pytest.MonkeyPatch) -> Iterator[SendGridServer]:
    """The loopback server, with the service pointed at it through the `sendgrid` transport."""
    with SendGridServer(api_key=API_KEY, keep_payloads=True) as server:
        monkeypatch.setenv("NEWSLETTER_TRANSPORT", "sendgrid")
        monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
        monkeypatch.setenv("SENDGRID_API_HOST", server.url)
        monkeypatch.setenv("SENDGRID_TIMEOUT_SECONDS", "2")
        monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://nl.example")
        reset_settings()
        yield server
    reset_settings()


def make_issue(
    session: Session, *, week: str = "2026-W47", status: IssueStatus = IssueStatus.APPROVED
) -> int:
    """An approved issue whose frozen render is filled directly (what `approve` produces)."""
    now = datetime.now(UTC)
    issue = Issue(
        week=week,
        status=status,
        cutoff_at=now,
        rendered_subject="AI Tool Verdicts, week 47",
        rendered_preheader="Eight matchups",
        rendered_html=TRACKED_HTML,
        rendered_text=TEXT,
        rendered_untracked_html=UNTRACKED_HTML,
        rendered_untracked_text=TEXT,
        rendered_at=now,
        approved_at=now,
        approved_by="editor@nl.example",
    )
    session.add(issue)
    session.commit()
    return issue.id


@dataclass(frozen=True)
class Audience:
    first_id: int
    emails: list[str]


def add_subscribers(
    session: Session,
    count: int,
    *,
    prefix: str = "reader",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    opt_out_every: int = 0,
) -> list[str]:
    """`count` subscribers reader0@…; every `opt_out_every`-th one opted out of tracking."""
    now = datetime.now(UTC)
    emails = [f"{prefix}{i}@mail.example.com" for i in range(count)]
    rows = [
        {
            "email": email,
            "email_hash": address_hash(email),
            "name": f"Reader {i}",
            "status": status,
            "source": "test",
            "consent_method": "test",
            "paused": False,
            "tracking_opt_out": bool(opt_out_every) and i % opt_out_every == 0,
            "created_at": now,
            "updated_at": now,
            "confirmed_at": now,
        }
        for i, email in enumerate(emails)
    ]
    for start in range(0, len(rows), 5000):
        session.execute(insert(Subscriber), rows[start : start + 5000])
    session.commit()
    return emails

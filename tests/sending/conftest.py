"""Fixtures for sending: a loopback SendGrid, an approved issue, and a list of subscribers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from newsletter.issues.models import IssueStatus
from newsletter.settings import reset_settings
from subscribers.models import SubscriberStatus
from tests.support import arrange
from tests.support.sendgrid_server import SendGridServer

API_KEY = "SG.loopback-test-key"
POSTAL_ADDRESS = "Weekly AI Tool Verdicts, 1 Test Street, 75001 Paris, France"
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
        monkeypatch.setenv("NEWSLETTER_POSTAL_ADDRESS", POSTAL_ADDRESS)
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
    issue_id = arrange.add_frozen_issue(
        session,
        html=TRACKED_HTML,
        text=TEXT,
        untracked_html=UNTRACKED_HTML,
        week=week,
        status=status,
    )
    session.commit()
    return issue_id


def add_subscribers(
    session: Session,
    count: int,
    *,
    prefix: str = "reader",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    opt_out_every: int = 0,
) -> list[str]:
    """`count` subscribers reader0@…; every `opt_out_every`-th one opted out of tracking."""
    emails = arrange.add_subscribers(
        session, count, prefix=prefix, status=status, opt_out_every=opt_out_every
    )
    session.commit()
    return emails

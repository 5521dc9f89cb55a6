"""Fixtures for the web app: an app on the test database, staff accounts, signed-in clients."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from newsletter.accounts.models import Role
from newsletter.accounts.service import create_user
from newsletter.db import transaction

PASSWORD = "correct horse battery staple"
ADMIN = "admin@example.com"
EDITOR = "editor@example.com"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "page has no CSRF field"
    return found.group(1)


@pytest.fixture
def app(db_url: str) -> FastAPI:
    from newsletter.web.app import create_app

    return create_app()


@pytest.fixture
def staff(db_url: str) -> None:
    with transaction() as session:
        create_user(session, ADMIN, PASSWORD, Role.ADMIN)
        create_user(session, EDITOR, PASSWORD, Role.EDITOR)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


@pytest.fixture
def anon(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def admin(app: FastAPI, staff: None) -> Iterator[TestClient]:
    with TestClient(app) as client:
        sign_in(client, ADMIN)
        yield client


@pytest.fixture
def editor(app: FastAPI, staff: None) -> Iterator[TestClient]:
    with TestClient(app) as client:
        sign_in(client, EDITOR)
        yield client


def form_token(client: TestClient, page: str) -> str:
    return csrf_from(client.get(page).text)


@pytest.fixture
def draft_issue(db_url: str) -> int:
    """This week's draft built from the real seed pages (published an hour ago)."""
    from datetime import timedelta

    from newsletter.issues.service import build_issue
    from newsletter.matchups.page_parser import decode_page, parse_page
    from newsletter.matchups.service import import_matchup
    from newsletter.orm import utcnow
    from tests.conftest import SEEDS

    with transaction() as session:
        for path in sorted(SEEDS.glob("*.txt"))[:3]:
            data = parse_page(decode_page(path.read_bytes()), path.name)
            import_matchup(session, data, utcnow() - timedelta(hours=1))
        return build_issue(session).id


def mark_sent(issue_id: int) -> None:
    """Arrange a published issue without running a send (the sending suite covers that)."""
    from newsletter.issues import repository
    from newsletter.issues.models import IssueStatus
    from newsletter.issues.service import approve
    from newsletter.orm import utcnow

    with transaction() as session:
        approve(session, issue_id, by=EDITOR)
        now = utcnow()
        assert repository.transition(
            session,
            issue_id,
            (IssueStatus.APPROVED,),
            IssueStatus.SENT,
            send_started_at=now,
            sent_at=now,
        )

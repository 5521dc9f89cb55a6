"""`newsletter demo` runs the whole weekly job on SQLite and the outbox, in an empty folder."""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.accounts.repository import list_all
from newsletter.cli import app
from newsletter.db import transaction
from newsletter.demo import READERS
from newsletter.issues import repository as issues_repository
from newsletter.settings import reset_settings


def test_demo_runs_the_weekly_job_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'demo.db'}")
    monkeypatch.setenv("NEWSLETTER_INBOX_DIR", str(tmp_path / "inbox"))
    monkeypatch.setenv("NEWSLETTER_EDITOR_EMAILS", "editor@example.com")
    reset_settings()

    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output

    messages = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in (tmp_path / "outbox").glob("*.eml")
    ]
    issue_mail = [m for m in messages if m["List-Unsubscribe"]]
    notices = [m for m in messages if m["To"] == "editor@example.com"]
    assert len(issue_mail) == len(READERS)
    assert len({m["To"] for m in issue_mail}) == len(READERS)  # each reader once
    # Last week's (sent) and this week's (the draft left to edit): one notice each.
    assert len(notices) == 2
    assert all("ready for review" in str(n["Subject"]) for n in notices)
    assert (tmp_path / "preview.html").read_text().startswith("<!doctype html>")
    assert f"sent {len(READERS)}" in result.output
    assert "inbox 5 imported / 0 rejected" in result.output
    assert "inbox 2 imported / 0 rejected" in result.output
    assert len(list((tmp_path / "inbox" / "done").iterdir())) == 7


def test_demo_ends_with_a_draft_to_edit_and_says_how_to_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from newsletter.issues.models import IssueStatus
    from newsletter.web.app import create_app
    from tests.web.conftest import csrf_from

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'demo.db'}")
    monkeypatch.setenv("NEWSLETTER_INBOX_DIR", str(tmp_path / "inbox"))
    reset_settings()
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output

    # The printed credentials sign in, and the printed page is an editable draft.
    found = dict(re.findall(r"^\s+((?:admin|editor)@example\.com)\s+(\S+)$", result.output, re.M))
    assert set(found) == {"admin@example.com", "editor@example.com"}
    draft_url = re.search(r"waits at http://localhost:8000(/admin/issues/\d+)", result.output)
    assert draft_url, result.output
    with transaction() as session:
        roles = {u.email: u.role.value for u in list_all(session)}
        draft = issues_repository.get(session, int(draft_url.group(1).rsplit("/", 1)[1]))
        assert draft is not None and draft.status is IssueStatus.DRAFT and draft.items
    assert roles == {"admin@example.com": "admin", "editor@example.com": "editor"}
    with TestClient(create_app()) as client:
        login = client.get("/login")
        client.post(
            "/login",
            data={
                "email": "editor@example.com",
                "password": found["editor@example.com"],
                "csrf_token": csrf_from(login.text),
            },
        )
        page = client.get(draft_url.group(1))
        assert page.status_code == 200 and "Save and preview" in page.text
        # The draft carries a subject test to read, change or remove.
        assert "the draft tries two subjects on 20% of the list" in result.output
        assert "20% of the audience get one of 2 subjects when the send starts" in page.text
        assert "Save the subject test" in page.text

    # Running it again on the same database says why it will not, and changes nothing.
    again = CliRunner().invoke(app, ["demo"])
    assert again.exit_code == 1 and "already has issues" in again.output
    with transaction() as session:
        assert {u.email for u in list_all(session)} == set(roles)

"""`newsletter demo` runs the whole weekly job on SQLite and the outbox, in an empty folder."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.demo import READERS
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
    assert len(notices) == 1 and "ready for review" in str(notices[0]["Subject"])
    assert (tmp_path / "preview.html").read_text().startswith("<!doctype html>")
    assert f"sent {len(READERS)}" in result.output
    assert "inbox 7 imported / 0 rejected" in result.output
    assert sorted(p.name for p in (tmp_path / "inbox" / "done").iterdir())

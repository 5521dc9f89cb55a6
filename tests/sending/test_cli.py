"""`newsletter issue send|send-test|deliveries|resolve|pause` as an operator runs them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.db import transaction
from newsletter.issues import service as issues_service
from newsletter.issues.models import IssueStatus
from newsletter.sending import repository
from newsletter.settings import reset_settings
from tests.sending.conftest import add_subscribers, make_issue
from tests.support.sendgrid_server import SendGridServer

runner = CliRunner()


def test_send_returns_a_json_summary_when_every_delivery_has_an_end_state(
    db: Session, sendgrid: SendGridServer
) -> None:
    add_subscribers(db, 120)
    issue_id = make_issue(db)
    sendgrid.reject_addresses({"reader7@mail.example.com": "Invalid mailbox."})
    result = runner.invoke(app, ["issue", "send", str(issue_id), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "sent"
    assert (summary["recipients"], summary["sent"], summary["failed"], summary["uncertain"]) == (
        120,
        119,
        1,
        0,
    )

    listed = runner.invoke(
        app, ["issue", "deliveries", str(issue_id), "--status", "failed", "--json"]
    )
    assert listed.exit_code == 0
    [failed] = json.loads(listed.stdout)
    assert failed["email"] == "reader7@mail.example.com"
    assert failed["error"] == "SendGrid 400: Invalid mailbox."

    again = runner.invoke(app, ["issue", "send", str(issue_id), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["sent"] == 119
    assert len(sendgrid.received) == 119  # sending a sent issue again mails nobody


def test_send_test_goes_outside_the_ledger(db: Session, sendgrid: SendGridServer) -> None:
    issue_id = make_issue(db)
    result = runner.invoke(
        app, ["issue", "send-test", str(issue_id), "--to", "Editor@Mail.Example.com", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
    [request] = sendgrid.accepted
    assert request.recipients[0].email == "editor@mail.example.com"
    assert request.payload is not None and request.payload["subject"].startswith("[Test] ")
    assert "/o/" not in request.payload["content"][1]["value"]  # untracked: opens not counted
    counts = runner.invoke(app, ["issue", "deliveries", str(issue_id), "--json"])
    assert json.loads(counts.stdout) == []


def test_refused_inputs_exit_non_zero_with_a_clear_error(
    db: Session, sendgrid: SendGridServer
) -> None:
    draft = make_issue(db, week="2026-W48", status="draft")  # type: ignore[arg-type]
    result = runner.invoke(app, ["issue", "send", str(draft)])
    assert result.exit_code != 0 and "draft" in result.output
    result = runner.invoke(app, ["issue", "send", "999"])
    assert result.exit_code != 0 and "999 does not exist" in result.output
    result = runner.invoke(app, ["issue", "resolve", str(draft)])
    assert result.exit_code != 0 and "--resend or --mark-sent" in result.output
    result = runner.invoke(app, ["issue", "pause", str(draft)])
    assert result.exit_code != 0 and "not sending" in result.output
    result = runner.invoke(app, ["issue", "send-test", str(draft), "--to", "not-an-address"])
    assert result.exit_code != 0 and "not an email address" in result.output


def test_sendgrid_refuses_to_send_without_a_postal_address(
    db: Session, sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_POSTAL_ADDRESS")
    reset_settings()
    add_subscribers(db, 3)
    issue_id = make_issue(db)
    for command in (
        ["issue", "send", str(issue_id)],
        ["issue", "send-test", str(issue_id), "--to", "me@example.com"],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code != 0, result.output
        assert "NEWSLETTER_POSTAL_ADDRESS" in result.output
        assert "Traceback" not in result.output
    assert sendgrid.requests == 0
    with transaction() as session:  # nothing was queued: the issue waits, still approved
        assert issues_service.status_of(session, issue_id) is IssueStatus.APPROVED
        assert repository.status_counts(session, issue_id)["recipients"] == 0

"""Resolving uncertain deliveries one by one, as an operator does with SendGrid's activity feed.

One crash or outage can leave a request SendGrid accepted beside one it never saw, both
uncertain. Resolving the whole issue one way either mails the first batch twice (--resend) or
records the second as sent when nobody got it (--mark-sent): the operator must choose per
delivery.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.sending.models import Delivery, DeliveryStatus
from newsletter.settings import reset_settings
from tests.sending.conftest import add_subscribers, make_issue
from tests.support.sendgrid_server import SendGridServer

runner = CliRunner()


def states(db: Session, issue_id: int) -> dict[int, DeliveryStatus]:
    db.expire_all()
    return {
        d.id: DeliveryStatus(d.status)
        for d in db.scalars(select(Delivery).where(Delivery.issue_id == issue_id))
    }


def test_uncertain_deliveries_resolved_per_delivery_from_the_providers_record(
    db: Session, sendgrid: SendGridServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "100")
    monkeypatch.setenv("NEWSLETTER_SEND_CONCURRENCY", "1")
    reset_settings()
    add_subscribers(db, 300)
    issue_id = make_issue(db)
    # First request: taken, then the connection dies. Second: dies before SendGrid took it.
    sendgrid.drop_next(1, accepted=True)
    sendgrid.drop_next(1, accepted=False)
    sent = runner.invoke(app, ["issue", "send", str(issue_id), "--json"])
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["uncertain"] == 200

    uncertain = {i for i, s in states(db, issue_id).items() if s is DeliveryStatus.UNCERTAIN}
    accepted = {int(r.delivery_id or 0) for r in sendgrid.recipients()}
    taken = sorted(uncertain & accepted)
    not_taken = sorted(uncertain - accepted)
    assert len(taken) == 100 and len(not_taken) == 100

    feed = tmp_path / "accepted.txt"
    feed.write_text("\n".join(map(str, taken)) + "\n")
    marked = runner.invoke(
        app, ["issue", "resolve", str(issue_id), "--mark-sent", "--delivery-file", str(feed)]
    )
    assert marked.exit_code == 0, marked.output
    assert "100 uncertain deliveries marked sent" in marked.stdout
    after = states(db, issue_id)
    assert all(after[i] is DeliveryStatus.SENT for i in taken)
    assert all(after[i] is DeliveryStatus.UNCERTAIN for i in not_taken)  # untouched

    resend = runner.invoke(
        app,
        ["issue", "resolve", str(issue_id), "--resend", "--json"]
        + [arg for i in not_taken for arg in ("--delivery", str(i))],
    )
    assert resend.exit_code == 0, resend.output
    summary = json.loads(resend.stdout)
    assert (summary["sent"], summary["uncertain"]) == (300, 0)
    # Everyone got the issue exactly once, the accepted-then-dropped batch included.
    assert sendgrid.duplicates == 0
    assert set(sendgrid.received.values()) == {1} and len(sendgrid.received) == 300


def test_a_delivery_that_is_not_uncertain_is_left_alone_and_named(
    db: Session, sendgrid: SendGridServer, tmp_path: Path
) -> None:
    add_subscribers(db, 5)
    issue_id = make_issue(db)
    assert runner.invoke(app, ["issue", "send", str(issue_id)]).exit_code == 0
    first = min(states(db, issue_id))
    result = runner.invoke(
        app, ["issue", "resolve", str(issue_id), "--resend", "--delivery", str(first)]
    )
    assert result.exit_code == 0
    assert "1 of the 1 chosen deliveries are not uncertain" in result.output
    assert len(sendgrid.received) == 5 and sendgrid.duplicates == 0

    bad = tmp_path / "ids.txt"
    bad.write_text("12\nreader3@mail.example.com\n")
    refused = runner.invoke(
        app, ["issue", "resolve", str(issue_id), "--mark-sent", "--delivery-file", str(bad)]
    )
    assert refused.exit_code != 0
    assert "line 2" in refused.output and "not a delivery id" in refused.output

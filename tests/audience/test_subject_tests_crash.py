"""A subject test through real worker processes killed with SIGKILL at random moments, in the
test's phase and in the winner's, against the SendGrid loopback server: nobody is sent twice,
and every request carried the subject its recipients' deliveries name."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.audience import service as audience
from newsletter.audience import split
from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import IssueStatus, SubjectTest
from newsletter.orm import utcnow
from newsletter.scheduling.clock import ManualClock
from newsletter.scheduling.runner import Scheduler
from newsletter.sending.models import DeliveryStatus
from newsletter.settings import reset_settings
from tests.sending.conftest import add_subscribers, make_issue, sendgrid
from tests.sending.test_crash import kill_until_done, ledger, worker_env
from tests.support.sendgrid_server import SendGridServer

__all__ = ["sendgrid"]  # the fixture

SUBJECTS = ["First subject", "Second subject", "Third subject"]


def test_killed_workers_in_both_phases_change_no_subject_and_mail_nobody_twice(
    db_url: str,
    db: Session,
    sendgrid: SendGridServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "40")
    reset_settings()
    emails = add_subscribers(db, 1200)
    issue_id = make_issue(db)
    # The frozen issue of tests/sending: its test row written as the editor's form would.
    db.add(SubjectTest(issue_id=issue_id, subjects=SUBJECTS, share=40, wait_minutes=30))
    db.commit()
    with transaction() as session:
        assert audience.start_send(session, issue_id)
    sendgrid.latency = 0.03
    env = worker_env(db_url, sendgrid, concurrency=1, batch_size=40)
    rng = random.Random(17)
    kills = kill_until_done(db, issue_id, env, tmp_path, rng, tries=6, most=0.15)

    ids = {email: delivery.subscriber_id for delivery, email in ledger(db, issue_id)}
    in_test = {e for e, sid in ids.items() if sid is not None}
    with transaction() as session:
        assert issues.status_of(session, issue_id) is IssueStatus.SENDING
    # The decision, as the scheduler makes it once the wait is over; then the rest, killed too.
    later = ManualClock(utcnow() + timedelta(minutes=31))
    assert Scheduler(clock=later, worker_id="decider").dispatch().subject_winners[0][0] == issue_id
    kills += kill_until_done(db, issue_id, env, tmp_path, rng, tries=6, most=0.15)
    assert kills >= 3

    rows = ledger(db, issue_id)
    assert sorted(email for _, email in rows) == sorted(emails)
    states = Counter(DeliveryStatus(d.status) for d, _ in rows)
    assert set(states) <= {DeliveryStatus.SENT, DeliveryStatus.UNCERTAIN}
    assert sendgrid.duplicates == 0 and set(sendgrid.received.values()) == {1}
    with transaction() as session:
        test = session.get(SubjectTest, issue_id)
        assert test is not None and test.winner is not None
        winner = test.winner
    named = {email: d.subject for d, email in rows}
    for delivery, email in rows:
        assert delivery.subscriber_id is not None
        if email in in_test:
            assert named[email] == split.subject_number(issue_id, delivery.subscriber_id, 3)
            assert split.in_share(issue_id, delivery.subscriber_id, 40)
        else:
            assert named[email] == winner
    # What SendGrid was asked to send: each request's subject is its recipients' subject.
    for request in sendgrid.accepted:
        assert request.payload is not None
        subject = request.payload.get("subject") or request.payload["personalizations"][0].get(
            "subject"
        )
        for recipient in request.recipients:
            assert subject == SUBJECTS[named[recipient.email] - 1], recipient.email  # type: ignore[operator]
    db.expire_all()
    assert (
        db.scalar(select(SubjectTest.decided_by).where(SubjectTest.issue_id == issue_id))
        == "the figures"
    )

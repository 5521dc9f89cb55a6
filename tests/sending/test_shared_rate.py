"""NEWSLETTER_SEND_RATE_LIMIT is the rate of the whole list: two worker processes on one
database send no faster together than the limit, where each used to send at the full rate.

Measured on what the ledger records (each delivery's `sent_at`, the moment its request was
answered), not on how long the test took: counts per window, with one batch per thread of
slack for requests answered close together.
"""

from __future__ import annotations

import bisect
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.sending import service
from newsletter.sending.models import DeliveryStatus, SendBatch
from newsletter.settings import reset_settings
from tests.sending.conftest import add_subscribers, make_issue
from tests.sending.test_crash import ledger, start_worker, worker_env
from tests.support.sendgrid_server import SendGridServer

RATE = 100.0  # emails per second, for the whole list
BATCH = 10
THREADS = 2
PEOPLE = 300


def test_two_workers_share_one_rate(
    db_url: str,
    db: Session,
    sendgrid: SendGridServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", str(BATCH))
    reset_settings()
    add_subscribers(db, PEOPLE)
    issue_id = make_issue(db)
    with transaction() as session:
        assert service.start_send(session, issue_id)
    env = worker_env(db_url, sendgrid, concurrency=THREADS, batch_size=BATCH)
    env["NEWSLETTER_SEND_RATE_LIMIT"] = str(RATE)
    workers = [start_worker(issue_id, env, tmp_path) for _ in range(2)]
    for process in workers:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()

    rows = ledger(db, issue_id)
    assert Counter(DeliveryStatus(d.status) for d, _ in rows) == {DeliveryStatus.SENT: PEOPLE}
    assert sendgrid.duplicates == 0
    # Both processes sent: the rate was shared, not taken by one of them.
    claims = db.scalars(select(SendBatch.claimed_by).where(SendBatch.issue_id == issue_id))
    workers_seen = {str(holder).split(":")[1] for holder in claims}
    assert len(workers_seen) == 2, workers_seen

    times = sorted(d.sent_at.timestamp() for d, _ in rows if d.sent_at is not None)
    assert len(times) == PEOPLE
    # All of it took at least what the rate allows, less a batch for each thread of both
    # workers (the first reservations go at once, and answers arrive spread around the moment
    # their request left); two workers at the full rate each would have taken half (1.46 s
    # measured with per-process buckets, against 2.6 s allowed here).
    spread = times[-1] - times[0]
    allowed = (PEOPLE - 2 * THREADS * BATCH) / RATE
    assert spread >= allowed, (spread, allowed)
    # And no window of a second holds more than a second's worth, give or take a batch per
    # thread of both workers.
    slack = 2 * THREADS * BATCH
    for start in times:
        within = bisect.bisect_right(times, start + 1.0) - bisect.bisect_left(times, start)
        assert within <= RATE * 1.0 + slack, (within, start - times[0])


def test_unlimited_sends_without_touching_the_bucket(
    db_url: str, db: Session, sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.limits import RateBucket
    from newsletter.sending.worker import run_until_done

    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", str(BATCH))
    reset_settings()
    add_subscribers(db, 40)
    issue_id = make_issue(db)
    with transaction() as session:
        assert service.start_send(session, issue_id)
    run_until_done(issue_id, worker_id="test:1")
    assert sendgrid.accepted_recipients == 40
    db.rollback()
    assert db.scalars(select(RateBucket)).all() == []  # 0 costs no statement at all

"""Real worker processes: killed with SIGKILL at random moments, and two at once on PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.issues import service as issues_service
from newsletter.issues.models import IssueStatus
from newsletter.sending import service
from newsletter.sending.models import Delivery, DeliveryStatus, SendBatch
from newsletter.settings import reset_settings
from subscribers.models import Subscriber
from tests.sending.conftest import API_KEY, add_subscribers, make_issue
from tests.support.sendgrid_server import SendGridServer

WORKER = [sys.executable, "-c", "from newsletter.cli import main; main()"]


def worker_env(
    db_url: str, server: SendGridServer, concurrency: int, batch_size: int = 100
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=db_url,
        NEWSLETTER_TRANSPORT="sendgrid",
        SENDGRID_API_KEY=API_KEY,
        NEWSLETTER_POSTAL_ADDRESS="1 Test Street, 75001 Paris",
        SENDGRID_API_HOST=server.url,
        SENDGRID_TIMEOUT_SECONDS="5",
        NEWSLETTER_BATCH_SIZE=str(batch_size),
        NEWSLETTER_SEND_CONCURRENCY=str(concurrency),
    )
    return env


def start_worker(issue_id: int, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*WORKER, "issue", "worker", "--issue", str(issue_id)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_until_it_claims(db: Session, worker_id: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        db.expire_all()
        if db.scalar(select(SendBatch.id).where(SendBatch.claimed_by == worker_id).limit(1)):
            return
        db.rollback()
        time.sleep(0.02)


def kill_until_done(
    db: Session,
    issue_id: int,
    env: dict[str, str],
    cwd: Path,
    rng: random.Random,
    *,
    tries: int,
    most: float,
) -> int:
    """Start a worker and SIGKILL it at a random moment of its sending (up to `most` seconds
    after its first claim), `tries` times or until one finishes; then one more runs to the end.
    Returns how many were killed."""
    kills = 0
    for _ in range(tries):
        process = start_worker(issue_id, env, cwd)
        # Kill at a random moment of the sending itself, not while Python starts up.
        wait_until_it_claims(db, service.local_worker_id(process.pid), process)
        time.sleep(rng.uniform(0.0, most))
        if process.poll() is not None:
            assert process.returncode == 0, process.stderr.read().decode()  # type: ignore[union-attr]
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    final = start_worker(issue_id, env, cwd)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr.decode()
    return kills


def ledger(db: Session, issue_id: int) -> list[tuple[Delivery, str]]:
    db.expire_all()
    return [
        (d, email)
        for d, email in db.execute(
            select(Delivery, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.issue_id == issue_id)
        )
    ]


def test_a_worker_killed_at_random_moments_never_sends_twice_and_loses_nothing(
    db_url: str,
    db: Session,
    sendgrid: SendGridServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "50")  # batches are cut when the send starts
    reset_settings()
    add_subscribers(db, 3000)
    issue_id = make_issue(db)
    with transaction() as session:
        assert service.start_send(session, issue_id)
    sendgrid.latency = 0.05
    env = worker_env(db_url, sendgrid, concurrency=1, batch_size=50)
    kills = kill_until_done(db, issue_id, env, tmp_path, random.Random(5), tries=10, most=0.2)
    assert kills >= 5

    rows = ledger(db, issue_id)
    states = Counter(DeliveryStatus(d.status) for d, _ in rows)
    assert len(rows) == 3000
    # Every delivery has an end state, nothing was refused, and nobody got the issue twice.
    assert set(states) <= {DeliveryStatus.SENT, DeliveryStatus.UNCERTAIN}
    assert sendgrid.duplicates == 0 and set(sendgrid.received.values()) == {1}
    received = {email for (_, email) in sendgrid.received}
    for delivery, email in rows:
        if delivery.status == DeliveryStatus.SENT:
            assert email in received
    # Uncertain deliveries come only from batches a kill interrupted: one batch per kill at
    # most, each flagged with the worker that died holding it.
    uncertain_batches = {d.batch_id for d, _ in rows if d.status == DeliveryStatus.UNCERTAIN}
    assert len(uncertain_batches) <= kills
    for batch_id in uncertain_batches:
        batch = db.get(SendBatch, batch_id)
        assert batch is not None and "stopped while this batch was in flight" in (batch.error or "")
    with transaction() as session:
        assert issues_service.status_of(session, issue_id) == IssueStatus.SENT


# Only on postgresql: several machines share PostgreSQL; SQLite has one writer at a time.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_workers_on_postgresql_share_one_issue_without_overlap(
    db_url: str,
    db: Session,
    sendgrid: SendGridServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "100")
    reset_settings()
    emails = add_subscribers(db, 4000)
    issue_id = make_issue(db)
    with transaction() as session:
        assert service.start_send(session, issue_id)
    sendgrid.latency = 0.03
    env = worker_env(db_url, sendgrid, concurrency=2)
    workers = [start_worker(issue_id, env, tmp_path) for _ in range(2)]
    for process in workers:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()

    assert sendgrid.duplicates == 0
    assert set(sendgrid.received) == {(str(issue_id), e) for e in emails}
    rows = ledger(db, issue_id)
    assert {DeliveryStatus(d.status) for d, _ in rows} == {DeliveryStatus.SENT}
    db.expire_all()
    claimers = {
        (b.claimed_by or "").split(":")[1]
        for b in db.scalars(select(SendBatch).where(SendBatch.issue_id == issue_id))
    }
    assert claimers == {str(p.pid) for p in workers}  # both processes really sent batches

"""A worker with a send rate limit, killed while it waits for the limiter."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.sending import service
from newsletter.sending.models import DeliveryStatus
from newsletter.settings import reset_settings
from tests.sending.conftest import add_subscribers, make_issue
from tests.sending.test_crash import ledger, start_worker, wait_until_it_claims, worker_env
from tests.support.sendgrid_server import SendGridServer


def test_a_kill_during_the_rate_limit_wait_leaves_no_unsent_mail_uncertain(
    db_url: str,
    db: Session,
    sendgrid: SendGridServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "4")
    reset_settings()
    add_subscribers(db, 12)
    issue_id = make_issue(db)
    with transaction() as session:
        assert service.start_send(session, issue_id)
    env = worker_env(db_url, sendgrid, concurrency=1, batch_size=4)
    # One batch of 4 at once, then 4 seconds' wait before each next one.
    env["NEWSLETTER_SEND_RATE_LIMIT"] = "1"
    process = start_worker(issue_id, env, tmp_path)
    wait_until_it_claims(db, service.local_worker_id(process.pid), process)
    deadline = time.monotonic() + 30
    while len(sendgrid.received) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(1.0)  # well inside the wait for the second batch
    assert process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(sendgrid.received) == 4

    # The next worker (no limit) sweeps what the dead one held and sends the rest.
    del env["NEWSLETTER_SEND_RATE_LIMIT"]
    final = start_worker(issue_id, env, tmp_path)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr.decode()

    rows = ledger(db, issue_id)
    received = {email for (_, email) in sendgrid.received}
    uncertain = [email for d, email in rows if d.status == DeliveryStatus.UNCERTAIN]
    # Nothing that never reached the server is flagged as possibly sent.
    assert [e for e in uncertain if e not in received] == []
    assert Counter(DeliveryStatus(d.status) for d, _ in rows) == {DeliveryStatus.SENT: 12}
    assert sendgrid.duplicates == 0 and set(sendgrid.received.values()) == {1}
    assert received == {email for _, email in rows}

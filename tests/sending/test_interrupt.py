"""Ctrl-C or SIGTERM stops a worker after the batch it has in flight: nothing becomes uncertain."""

from __future__ import annotations

import signal
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
# One engine: the signal handling is process wiring; the ledger claims are tested on both.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_signalled_worker_settles_its_batch_and_leaves_the_rest_queued(
    db_url: str,
    db: Session,
    sendgrid: SendGridServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "50")
    reset_settings()
    add_subscribers(db, 500)
    issue_id = make_issue(db)
    with transaction() as session:
        assert service.start_send(session, issue_id)
    sendgrid.latency = 0.5  # the signal lands while a request is out
    env = worker_env(db_url, sendgrid, concurrency=1, batch_size=50)

    process = start_worker(issue_id, env, tmp_path)
    wait_until_it_claims(db, service.local_worker_id(process.pid), process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr.decode()
    assert "stopping after the batches in flight" in stderr.decode()
    states = Counter(DeliveryStatus(d.status) for d, _ in ledger(db, issue_id))
    assert states[DeliveryStatus.UNCERTAIN] == 0 and states[DeliveryStatus.IN_FLIGHT] == 0
    assert states[DeliveryStatus.SENT] >= 50  # the batch it held went out and was settled
    assert states[DeliveryStatus.QUEUED] > 0  # and it stopped there
    assert sum(states.values()) == 500

    # A restarted worker sends the rest, each address once.
    final = start_worker(issue_id, env, tmp_path)
    assert final.wait(timeout=60) == 0
    assert Counter(DeliveryStatus(d.status) for d, _ in ledger(db, issue_id)) == {
        DeliveryStatus.SENT: 500
    }
    assert sendgrid.duplicates == 0

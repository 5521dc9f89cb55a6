"""A worker's id names its host, its pid and its PID namespace, and a batch is taken from a
worker at once only when its pid can really be checked here.

The bug this pins: ids were "host:pid", and the sweep took a batch at once when the host was
this one and the pid was not alive here. Two containers of one Kubernetes pod (or `docker run
--network host`) share a hostname but not their PID namespace: a worker's pid, seen from its
neighbour, names another process or none, so a live worker's batch was flagged uncertain
mid-request (its answer then settled nothing, and a late webhook meant a resend: mailed twice).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.sending import claims, service
from newsletter.sending.models import BatchStatus, Delivery, DeliveryStatus, SendBatch
from newsletter.settings import reset_settings
from tests.sending.conftest import add_subscribers, make_issue

NEVER_ALIVE = 2**22 + 12345  # above Linux's pid_max: no process has it, in any namespace
STUCK = timedelta(seconds=300)
KEY_OF_THIS_PROCESS = (
    "from newsletter.sending.service import pid_namespace_key as k; import os; "
    "print(os.getpid(), k())"
)


def test_a_worker_id_is_hostname_pid_and_pid_namespace() -> None:
    host, pid, key = service.default_worker_id().split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert len(key) == 8 and int(key, 16) >= 0
    # A child of this process shares its namespace: the same key, so its pid is checkable.
    out = subprocess.run(
        [sys.executable, "-c", KEY_OF_THIS_PROCESS], capture_output=True, text=True, check=True
    )
    child_pid, child_key = out.stdout.split()
    assert child_key == key
    assert service.local_worker_id(int(child_pid)) == f"{host}:{child_pid}:{key}"


def test_a_process_in_its_own_pid_namespace_has_another_key_though_pid_and_host_repeat() -> None:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to make a PID namespace")
    made = subprocess.run(
        [unshare, "--pid", "--fork", sys.executable, "-c", KEY_OF_THIS_PROCESS],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"this machine refuses a PID namespace: {made.stderr.strip()[:200]}")
    pid, key = made.stdout.split()
    # The first process of a namespace is pid 1 in every container: only the key tells them
    # apart from each other, and from this machine's own pid 1.
    assert pid == "1"
    assert key != service.pid_namespace_key()
    assert not service.worker_is_gone(f"{socket.gethostname()}:{NEVER_ALIVE}:{key}:0")


def hold_a_batch(db: Session, holder: str, subscribers: int = 300) -> tuple[int, int]:
    """A send started, its first batch in flight under `holder`: (issue id, batch id)."""
    add_subscribers(db, subscribers)
    issue_id = make_issue(db)
    now = datetime.now(UTC)
    with transaction() as session:
        assert service.start_send(session, issue_id)
    with transaction() as session:
        claim = claims.claim_batch(session, issue_id, holder, now)
        assert claim is not None
        claims.put_in_flight(session, claim.batch_id, now)
    return issue_id, claim.batch_id


def sweep(issue_id: int, after: timedelta = timedelta(0)) -> int:
    with transaction() as session:
        return service.sweep_stuck(
            session, older_than=STUCK, issue_id=issue_id, now=datetime.now(UTC) + after
        )


@pytest.fixture(autouse=True)
def batches_of_100(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "100")
    reset_settings()


@pytest.mark.parametrize(
    "holder",
    [
        # This hostname, another PID namespace (the pod's other container): not checkable.
        pytest.param(f"{socket.gethostname()}:{NEVER_ALIVE}:0badc0de:1", id="another-namespace"),
        # An id written before keys existed (a worker of the previous release): not checkable.
        pytest.param(f"{socket.gethostname()}:{NEVER_ALIVE}", id="without-a-key"),
        pytest.param(f"{socket.gethostname()}:{NEVER_ALIVE}:0", id="thread-without-a-key"),
        pytest.param(f"other-host:{NEVER_ALIVE}:0badc0de:0", id="another-host"),
        pytest.param(f"{socket.gethostname()}:{2**64}:0badc0de", id="huge-pid"),
    ],
)
def test_a_batch_whose_holder_cannot_be_checked_here_waits_for_the_stuck_timeout(
    db: Session, holder: str
) -> None:
    issue_id, batch_id = hold_a_batch(db, holder)
    assert not service.worker_is_gone(holder)
    assert sweep(issue_id) == 0
    db.expire_all()
    batch = db.get(SendBatch, batch_id)
    assert batch is not None and batch.status == BatchStatus.IN_FLIGHT
    db.expire_all()
    batch = db.get(SendBatch, batch_id)
    assert batch is not None and batch.status == BatchStatus.IN_FLIGHT
    # Its claim is older than the timeout: whoever held it, it is taken now.
    assert sweep(issue_id, after=STUCK + timedelta(seconds=1)) == 100
    db.expire_all()
    batch = db.get(SendBatch, batch_id)
    assert batch is not None and batch.status == BatchStatus.DONE
    assert holder in (batch.error or "")


@pytest.mark.parametrize("suffix", ["", ":0", ":scheduler-abc123"])
def test_a_dead_worker_of_this_namespace_loses_its_batch_at_once(db: Session, suffix: str) -> None:
    holder = service.local_worker_id(NEVER_ALIVE) + suffix
    issue_id, batch_id = hold_a_batch(db, holder)
    assert service.worker_is_gone(holder)
    assert sweep(issue_id) == 100
    db.expire_all()
    states = set(db.scalars(select(Delivery.status).where(Delivery.batch_id == batch_id)))
    assert states == {DeliveryStatus.UNCERTAIN}


def test_a_live_worker_of_this_namespace_keeps_its_batch(db: Session) -> None:
    holder = service.default_worker_id() + ":0"  # this very process: alive
    issue_id, batch_id = hold_a_batch(db, holder)
    assert not service.worker_is_gone(holder)
    assert sweep(issue_id) == 0
    db.expire_all()
    batch = db.get(SendBatch, batch_id)
    assert batch is not None and batch.status == BatchStatus.IN_FLIGHT

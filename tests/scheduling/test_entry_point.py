"""`python scheduler.py`: --help, --once, and a clean exit on SIGTERM (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.scheduling.conftest import EDITOR, drop_seeds, recipients

ENTRY = str(REPO / "scheduler.py")


def run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, ENTRY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        check=False,
    )


def test_help_explains_the_settings() -> None:
    result = run(["--help"])
    assert result.returncode == 0
    for setting in (
        "NEWSLETTER_SCHEDULE_DAY",
        "NEWSLETTER_SCHEDULE_TIME",
        "NEWSLETTER_TIMEZONE",
        "NEWSLETTER_APPROVAL_POLICY",
        "NEWSLETTER_MISFIRE_GRACE_SECONDS",
        "NEWSLETTER_INBOX_DIR",
        "NEWSLETTER_EDITOR_EMAILS",
        "--once",
    ):
        assert setting in result.stdout


# Only on sqlite: one engine is enough for a settings error.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_bad_schedule_setting_is_refused_by_name(
    db_url: str, configure: Callable[..., None]
) -> None:
    configure(newsletter_schedule_time="nine")
    result = run(["--once"])
    assert result.returncode == 2
    # Named with what is wrong; the value is not repeated (a setting may be a key).
    assert "NEWSLETTER_SCHEDULE_TIME: expected a local time like 09:00" in result.stderr
    assert "nine" not in result.stderr and "Traceback" not in result.stderr


# Only on sqlite: the process wiring is engine-independent; the claims are tested on both.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_once_runs_the_weekly_job_now_and_exits(
    db_url: str, inbox: Path, configure: Callable[..., None], isolated_env: Path
) -> None:
    configure()
    names = drop_seeds(inbox, 2)

    result = run(["--once", "--json"])

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "awaiting_review" and report["matchups"] == 2
    assert sorted(report["inbox"]["imported"]) == names
    assert sorted(p.name for p in (inbox / "done").iterdir()) == names
    assert recipients(isolated_env / "outbox") == [EDITOR]
    assert "running the weekly job now" in result.stderr
    assert "ready for review" in result.stderr


# Only on sqlite: the process wiring is engine-independent.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sigterm_stops_the_scheduler_cleanly(
    db_url: str, configure: Callable[..., None], tmp_path: Path
) -> None:
    configure(newsletter_tick_seconds=1)
    log_path = tmp_path / "scheduler.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, ENTRY],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env=os.environ.copy(),
        )
        try:
            deadline = time.monotonic() + 30
            while "scheduler started" not in log_path.read_text():
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
    log = log_path.read_text()
    assert "received SIGTERM" in log
    assert log.rstrip().endswith("scheduler stopped")


def _a_started_send(inbox: Path, readers: int) -> tuple[int, list[str]]:
    """The week's issue of one seed page, approved and started for `readers` new readers."""
    from newsletter.db import transaction
    from newsletter.issues import service as issues
    from newsletter.scheduling.runner import Scheduler
    from newsletter.sending import service as sending
    from tests.scheduling.conftest import add_subscribers

    drop_seeds(inbox, 1)
    addresses = add_subscribers(readers)
    report = Scheduler().run_now()
    assert report.issue_id is not None
    with transaction() as session:
        issues.approve(session, report.issue_id, by=EDITOR)
    with transaction() as session:
        assert sending.start_send(session, report.issue_id)
    return report.issue_id, addresses


# Only on sqlite: the process wiring is engine-independent.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sigterm_mid_send_finishes_the_current_batch_and_a_restart_sends_the_rest(
    db_url: str, inbox: Path, configure: Callable[..., None], isolated_env: Path, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from newsletter.db import transaction
    from newsletter.scheduling.runner import Scheduler
    from newsletter.sending.models import Delivery, DeliveryStatus

    # Slow enough to be stopped mid-way: 40 readers, batches of 5, 10 emails a second.
    configure(
        newsletter_batch_size=5,
        newsletter_send_rate_limit=10,
        newsletter_send_concurrency=1,
        newsletter_misfire_grace_seconds=0,
    )
    _, readers = _a_started_send(inbox, 40)

    outbox = isolated_env / "outbox"
    log_path = tmp_path / "scheduler.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, ENTRY],
            stderr=log_file,
            stdout=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
        try:
            deadline = time.monotonic() + 30
            while len(recipients(outbox)) < 1 + 5:  # the editor notice and a first batch
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()

    with transaction() as session:
        statuses = [d.status for d in session.scalars(select(Delivery))]
    sent = statuses.count(DeliveryStatus.SENT)
    assert DeliveryStatus.IN_FLIGHT not in statuses and DeliveryStatus.UNCERTAIN not in statuses
    assert 5 <= sent < 40 and sent % 5 == 0  # whole batches only
    assert statuses.count(DeliveryStatus.QUEUED) == 40 - sent

    Scheduler().dispatch()  # the next start picks up where it stopped

    with transaction() as session:
        statuses = [d.status for d in session.scalars(select(Delivery))]
    assert statuses == [DeliveryStatus.SENT] * 40
    assert recipients(outbox) == sorted([EDITOR, *readers])


# Only on sqlite: what the log says does not depend on the engine.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_debug_log_of_a_send_names_no_reader_no_token_and_no_api_key(
    db_url: str,
    inbox: Path,
    configure: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator chasing a problem runs the scheduler at DEBUG. python_http_client writes
    each request's body and headers into debug lines: every reader's address and token, and
    the Authorization header with the API key. The log says how big a body was, nothing of
    who it went to."""
    from tests.support.sendgrid_server import SendGridServer

    key = "SG.debug-log-key-" + "k" * 40
    with SendGridServer(api_key=key, keep_payloads=True) as server:
        configure(
            newsletter_transport="sendgrid",
            sendgrid_api_key=key,
            sendgrid_api_host=server.url,
            newsletter_postal_address="1 Log Street, 75001 Paris",
        )
        _, readers = _a_started_send(inbox, 3)

        result = run(["--once", "--log-level", "DEBUG"])

        assert result.returncode == 0, result.stderr
        sent_to = sorted(r.email for r in server.recipients())
        assert set(readers) <= set(sent_to)
        tokens = [
            value
            for request in server.accepted
            for p in (request.payload or {})["personalizations"]
            for value in p.get("substitutions", {}).values()
        ]
    assert len(tokens) == 3
    log = result.stderr
    # The library's debug lines are not written at all; had they been, their body would
    # read as its size (tests/sending/test_transport.py).
    assert "python_http_client" not in log and "PAYLOAD" not in log and "HEADERS" not in log
    for secret in (key, "Bearer", *sent_to, *tokens):
        assert secret not in log

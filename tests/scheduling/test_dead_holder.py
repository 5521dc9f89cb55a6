"""A scheduler that died on this machine mid-way through the weekly run is replaced at once by
the next one started here: its pid is checked, as the batch sweep checks a sending worker's,
instead of waiting out the 30 minutes kept for holders that cannot be checked."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from newsletter.db import transaction
from newsletter.scheduling.clock import ManualClock
from newsletter.scheduling.models import RunStatus, SchedulerRun
from newsletter.scheduling.runner import Scheduler, new_worker_id
from newsletter.sending.service import local_worker_id
from tests.scheduling.test_scheduler import SLOT, WEEK, weekly_runs


def dead_scheduler_id() -> str:
    """The id a scheduler on this machine had, whose process has since exited."""
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return f"{local_worker_id(int(process.stdout))}:scheduler-abc123"


def left_running(holder: str) -> None:
    with transaction() as session:
        session.add(
            SchedulerRun(
                run_key=f"weekly:{WEEK}",
                week=WEEK,
                slot_at=SLOT,
                status=RunStatus.RUNNING,
                claimed_by=holder,
                started_at=SLOT,
            )
        )


def test_a_run_left_by_a_dead_scheduler_on_this_machine_is_taken_over_at_once(
    db_url: str, inbox: Path, configure: Callable[..., None]
) -> None:
    configure()
    holder = dead_scheduler_id()
    left_running(holder)
    clock = ManualClock(SLOT + timedelta(minutes=1))
    scheduler = Scheduler(clock=clock)
    report = scheduler.tick().weekly
    assert report is not None
    [run] = weekly_runs()
    assert (run.status, run.attempts, run.claimed_by) == (RunStatus.DONE, 2, scheduler.worker_id)


@pytest.mark.parametrize(
    "holder",
    [
        pytest.param("live", id="alive-on-this-machine"),
        pytest.param("other-host:1:scheduler-abc123", id="on-another-machine"),
        pytest.param("not-a-worker-id", id="unreadable"),
    ],
)
def test_a_run_whose_holder_may_be_alive_still_waits_for_the_stale_timeout(
    db_url: str, inbox: Path, configure: Callable[..., None], holder: str
) -> None:
    configure()
    holder = new_worker_id() if holder == "live" else holder  # this very process: alive
    left_running(holder)
    clock = ManualClock(SLOT + timedelta(minutes=1))
    assert Scheduler(clock=clock).tick().weekly is None
    [run] = weekly_runs()
    assert (run.status, run.attempts, run.claimed_by) == (RunStatus.RUNNING, 1, holder)
    clock.set(SLOT + timedelta(minutes=31))
    assert Scheduler(clock=clock).tick().weekly is not None

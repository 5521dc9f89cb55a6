"""APScheduler wiring: two jobs with fixed ids, in one process.

- "tick" every NEWSLETTER_TICK_SECONDS (first run at start-up): catches up the weekly run
  from the database, sweeps stuck batches, starts and resumes due sends.
- "weekly" on the configured local day and time: the same tick, fired at the slot itself so
  the weekly job starts on the minute rather than up to one tick later.

APScheduler's own jobs live in memory only; the guarantee (run once, run a missed slot within
the grace period, never twice) comes from the tick reading scheduler_runs, not from
APScheduler's misfire handling, which forgets everything on restart.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from newsletter.scheduling.slots import DAYS, WeeklySchedule

if TYPE_CHECKING:
    from newsletter.scheduling.runner import Scheduler

log = logging.getLogger("newsletter.scheduler")

TICK_JOB = "tick"
WEEKLY_JOB = "weekly"


def weekly_trigger(schedule: WeeklySchedule) -> CronTrigger:
    return CronTrigger(
        day_of_week=DAYS[schedule.weekday],
        hour=schedule.at.hour,
        minute=schedule.at.minute,
        second=schedule.at.second,
        timezone=schedule.zone,
    )


def build_apscheduler(
    scheduler: Scheduler, *, start_at: datetime | None = None
) -> BackgroundScheduler:
    settings = scheduler.settings
    aps = BackgroundScheduler(
        timezone=scheduler.schedule.zone,
        job_defaults={
            # A tick that overruns (a long send) is not queued up behind itself: the next one
            # re-reads the database anyway.
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.newsletter_misfire_grace_seconds or None,
        },
    )
    aps.add_job(
        scheduler.tick,
        IntervalTrigger(seconds=settings.newsletter_tick_seconds, timezone=scheduler.schedule.zone),
        id=TICK_JOB,
        name="catch up the weekly run and dispatch due sends",
        next_run_time=start_at or scheduler.clock.now(),
    )
    aps.add_job(
        scheduler.tick,
        weekly_trigger(scheduler.schedule),
        id=WEEKLY_JOB,
        name=f"weekly job ({scheduler.schedule.describe()})",
    )
    return aps


def run_forever(scheduler: Scheduler) -> None:
    """Run until SIGTERM or SIGINT; then let the current batch finish and exit."""
    stop = scheduler.stop

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info(
                "received %s: finishing the current batch, then exiting",
                signal.Signals(signum).name,
            )
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _request_stop)
        signal.signal(signal.SIGINT, _request_stop)

    aps = build_apscheduler(scheduler)
    aps.start()
    weekly = aps.get_job(WEEKLY_JOB)
    log.info(
        "scheduler started as %s: weekly job %s (next %s), tick every %ss, policy %s, grace %ss",
        scheduler.worker_id,
        scheduler.schedule.describe(),
        weekly.next_run_time.isoformat() if weekly and weekly.next_run_time else "?",
        scheduler.settings.newsletter_tick_seconds,
        scheduler.settings.newsletter_approval_policy,
        scheduler.settings.newsletter_misfire_grace_seconds,
    )
    try:
        while not stop.wait(timeout=1.0):
            pass
    finally:
        stop.set()
        # wait=True: a tick in progress returns after its current batch (the worker sees stop).
        aps.shutdown(wait=True)
        log.info("scheduler stopped")

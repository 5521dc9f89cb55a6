"""`newsletter maintenance`: the housekeeping that keeps a year of weekly sends cheap, run
daily by the scheduler (once across every scheduler) and by hand.

- Tracking events older than NEWSLETTER_EVENT_DETAIL_RETENTION_DAYS lose their raw payload,
  user agent and provider detail; the facts stay (newsletter/tracking/retention.py).
- Attempt-limit rows whose window has passed are deleted (newsletter/limits.py).

Every step goes in bounded batches, each its own short transaction, so no lock is held for
long and an interrupted run is simply run again: it goes on from where the last committed
batch left off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from newsletter import limits
from newsletter.db import transaction
from newsletter.settings import Settings, get_settings
from newsletter.tracking import retention

BATCH_SIZE = 10_000


@dataclass
class MaintenanceReport:
    dry_run: bool
    retention_days: int
    detail_before: datetime | None  # events received before this lose their detail
    events_cleared: int = 0  # (dry run: would be cleared)
    event_batches: int = 0
    limiter_rows_deleted: int = 0  # (dry run: would be deleted)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["detail_before"] = self.detail_before.isoformat() if self.detail_before else None
        return data

    def lines(self) -> list[str]:
        would = "would clear" if self.dry_run else "cleared"
        if self.detail_before is None:
            events = "event detail: kept for ever (NEWSLETTER_EVENT_DETAIL_RETENTION_DAYS=0)"
        else:
            events = (
                f"event detail: {would} the raw payload, user agent and provider detail of "
                f"{self.events_cleared:,} events received before "
                f"{self.detail_before:%Y-%m-%d %H:%M} UTC ({self.retention_days} days)"
            )
            if not self.dry_run:
                plural = "" if self.event_batches == 1 else "es"
                events += f", in {self.event_batches} batch{plural}"
        deleted = "would delete" if self.dry_run else "deleted"
        return [
            events,
            f"attempt limits: {deleted} {self.limiter_rows_deleted:,} rows whose window passed",
            f"took {self.seconds:.1f} s",
        ]


def run(
    now: datetime,
    *,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    settings: Settings | None = None,
    between_batches: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> MaintenanceReport:
    """Do (or, dry, count) every housekeeping step. `between_batches` is called after each
    committed batch (progress, and the tests' injected crash); `stop` ends the run after the
    batch in progress (the scheduler's SIGTERM): the next run goes on from there."""
    stopping = stop or threading.Event()
    settings = settings or get_settings()
    days = settings.newsletter_event_detail_retention_days
    before = now - timedelta(days=days) if days else None
    report = MaintenanceReport(dry_run=dry_run, retention_days=days, detail_before=before)
    started = time.perf_counter()
    epoch = now.timestamp()
    if dry_run:
        with transaction() as session:
            if before is not None:
                report.events_cleared = retention.old_detail_count(session, before=before)
            report.limiter_rows_deleted = limits.stale_attempts(session, epoch)
            session.rollback()
        report.seconds = time.perf_counter() - started
        return report
    while before is not None:
        with transaction() as session:
            batch = retention.clear_old_detail(session, before=before, limit=batch_size)
        report.events_cleared += batch.cleared
        report.event_batches += 1
        if batch.finished or stopping.is_set():
            break
        if between_batches is not None:
            between_batches()
    while True:
        with transaction() as session:
            deleted = limits.delete_stale_attempts(session, epoch, limit=batch_size)
        report.limiter_rows_deleted += deleted
        if deleted < batch_size or stopping.is_set():
            break
        if between_batches is not None:
            between_batches()
    report.seconds = time.perf_counter() - started
    return report

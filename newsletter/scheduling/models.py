"""The scheduler's ledger: one row per weekly run, keyed so only one scheduler performs it."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.orm import Base, UTCDateTime, str_enum, utcnow


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    # The slot passed beyond the misfire grace period while no scheduler was running: reported,
    # never performed late.
    MISSED = "missed"


class SchedulerRun(Base):
    __tablename__ = "scheduler_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    # "weekly:2026-W47" for the scheduled run, "manual:<timestamp>" for `scheduler.py --once`:
    # the unique key is the claim, so a second scheduler's INSERT fails instead of running twice.
    run_key: Mapped[str] = mapped_column(String(64), unique=True)
    week: Mapped[str] = mapped_column(String(8), index=True)
    slot_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[RunStatus] = mapped_column(
        str_enum(RunStatus, "scheduler_run_status"), default=RunStatus.RUNNING, index=True
    )
    claimed_by: Mapped[str] = mapped_column(String(128), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # What the run did (or why it failed / was missed), one line for logs and operators.
    detail: Mapped[str] = mapped_column(Text, default="")

    # The issue the run built and when the scheduler plans to send it (the approval policy
    # decides whether it may). Due work is these rows: the tick reads them, so a restart or a
    # second scheduler picks up exactly where the first left off.
    issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="SET NULL"), nullable=True
    )
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    # Set once the issue has left the waiting states (sending, sent, cancelled, or nothing to
    # send): the tick stops looking at the row.
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

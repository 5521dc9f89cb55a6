"""The scheduler's promises, driven by a manual clock (nothing sleeps for real time).

Each test calls `Scheduler.tick()` as APScheduler would, after moving the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.db import transaction
from newsletter.issues import repository as issues_repository
from newsletter.issues import service as issues
from newsletter.issues.models import Issue, IssueStatus
from newsletter.scheduling.clock import ManualClock
from newsletter.scheduling.models import RunStatus, SchedulerRun
from newsletter.scheduling.runner import Scheduler
from newsletter.sending.models import Delivery, DeliveryStatus
from tests.scheduling.conftest import EDITOR, add_subscribers, drop_seeds, recipients, utc

# Monday 09:00 Europe/Paris (the default schedule) in the first week of summer time.
SLOT = utc(2026, 3, 30, 7)
WEEK = "2026-W14"


def runs() -> list[SchedulerRun]:
    with transaction() as session:
        return list(session.scalars(select(SchedulerRun).order_by(SchedulerRun.id)))


def weekly_runs() -> list[SchedulerRun]:
    return [r for r in runs() if r.run_key.startswith("weekly:")]


def issue_of_week(week: str = WEEK) -> Issue | None:
    with transaction() as session:
        return issues_repository.get_by_week(session, week)


def deliveries() -> list[Delivery]:
    with transaction() as session:
        return list(session.scalars(select(Delivery)))


@pytest.fixture
def outbox(isolated_env: Path) -> Path:
    return isolated_env / "outbox"


def test_the_weekly_job_fires_at_nine_paris_time_on_both_sides_of_the_spring_change(
    db_url: str, inbox: Path, configure: Callable[..., None]
) -> None:
    configure()
    clock = ManualClock(utc(2026, 3, 23, 7, 59))  # 08:59 winter time
    scheduler = Scheduler(clock=clock)

    assert scheduler.tick().weekly is None
    clock.set(utc(2026, 3, 23, 8, 0))  # 09:00 winter time = 08:00 UTC
    report = scheduler.tick().weekly
    assert report is not None and report.week == "2026-W13"
    clock.advance(timedelta(seconds=30))
    assert scheduler.tick().weekly is None

    clock.set(utc(2026, 3, 30, 6, 59, 30))  # 08:59:30 summer time
    assert scheduler.tick().weekly is None
    clock.set(utc(2026, 3, 30, 7, 0))  # 09:00 summer time = 07:00 UTC
    report = scheduler.tick().weekly
    assert report is not None and report.week == WEEK
    assert [r.run_key for r in weekly_runs() if r.status is RunStatus.DONE] == [
        "weekly:2026-W13",
        "weekly:2026-W14",
    ]


def test_the_weekly_job_fires_at_nine_paris_time_after_the_autumn_change(
    db_url: str, inbox: Path, configure: Callable[..., None]
) -> None:
    configure()
    clock = ManualClock(utc(2026, 10, 26, 7, 59))  # 08:59 winter time, day after the change
    scheduler = Scheduler(clock=clock)
    scheduler.tick()
    assert issue_of_week("2026-W44") is None
    clock.set(utc(2026, 10, 26, 8, 0))
    report = scheduler.tick().weekly
    assert report is not None and report.week == "2026-W44"


def test_a_restart_within_the_grace_period_runs_the_missed_run_once(
    db_url: str, inbox: Path, configure: Callable[..., None]
) -> None:
    configure(newsletter_misfire_grace_seconds=6 * 3600)
    drop_seeds(inbox, 2)
    clock = ManualClock(SLOT + timedelta(hours=3))  # the machine was off at 09:00

    first = Scheduler(clock=clock)
    report = first.tick().weekly
    assert report is not None and report.week == WEEK and report.matchups == 2

    clock.advance(timedelta(minutes=5))
    assert first.tick().weekly is None
    restarted = Scheduler(clock=clock)
    assert restarted.tick().weekly is None
    [run] = weekly_runs()
    assert run.status is RunStatus.DONE and run.attempts == 1
    assert run.slot_at == SLOT


def test_beyond_the_grace_period_the_missed_run_is_reported_not_run(
    db_url: str,
    inbox: Path,
    configure: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    outbox: Path,
) -> None:
    configure(newsletter_misfire_grace_seconds=3600)
    drop_seeds(inbox, 2)
    clock = ManualClock(SLOT + timedelta(hours=1, minutes=1))

    with caplog.at_level(logging.INFO, logger="newsletter.scheduler"):
        tick = Scheduler(clock=clock).tick()
        Scheduler(clock=clock).tick()

    assert tick.weekly is None and tick.missed == f"weekly:{WEEK}"
    [run] = weekly_runs()
    assert run.status is RunStatus.MISSED
    assert "beyond the grace period" in run.detail
    missed_lines = [r for r in caplog.records if "missed" in r.getMessage()]
    assert len(missed_lines) == 1 and missed_lines[0].levelno == logging.WARNING
    assert issue_of_week() is None
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) != []  # inbox untouched
    assert recipients(outbox) == []


def test_a_run_whose_scheduler_died_is_taken_over_once(
    db_url: str, inbox: Path, configure: Callable[..., None]
) -> None:
    configure()
    with transaction() as session:
        session.add(
            SchedulerRun(
                run_key=f"weekly:{WEEK}",
                week=WEEK,
                slot_at=SLOT,
                status=RunStatus.RUNNING,
                claimed_by="scheduler:dead-host:1",
                started_at=SLOT,
            )
        )
    clock = ManualClock(SLOT + timedelta(minutes=10))
    assert Scheduler(clock=clock).tick().weekly is None  # it may still be working

    clock.set(SLOT + timedelta(minutes=45))
    report = Scheduler(clock=clock).tick().weekly
    assert report is not None
    [run] = weekly_runs()
    assert run.status is RunStatus.DONE and run.attempts == 2
    assert run.claimed_by != "scheduler:dead-host:1"


def test_review_waits_for_approval_then_sends_at_the_planned_time(
    db_url: str, inbox: Path, configure: Callable[..., None], outbox: Path
) -> None:
    configure(newsletter_approval_policy="review", newsletter_send_delay_minutes=60)
    drop_seeds(inbox, 2)
    readers = add_subscribers(3)
    clock = ManualClock(SLOT)
    scheduler = Scheduler(clock=clock)

    report = scheduler.tick().weekly
    assert report is not None and report.issue_id is not None
    clock.advance(timedelta(minutes=61))
    scheduler.tick()
    issue = issue_of_week()
    assert issue is not None and issue.status is IssueStatus.DRAFT
    assert recipients(outbox) == [EDITOR]  # only the "ready for review" notice

    with transaction() as session:
        issues.approve(session, report.issue_id, by=EDITOR, now=clock.now())
    clock.advance(timedelta(seconds=30))
    tick = scheduler.tick()

    assert tick.started_sends == [report.issue_id]
    issue = issue_of_week()
    assert issue is not None and issue.status is IssueStatus.SENT
    assert recipients(outbox) == sorted([EDITOR, *readers])
    assert {d.status for d in deliveries()} == {DeliveryStatus.SENT}


def test_auto_sends_at_the_planned_time_without_approval(
    db_url: str, inbox: Path, configure: Callable[..., None], outbox: Path
) -> None:
    configure(newsletter_approval_policy="auto", newsletter_send_delay_minutes=60)
    drop_seeds(inbox, 2)
    readers = add_subscribers(2)
    clock = ManualClock(SLOT)
    scheduler = Scheduler(clock=clock)

    scheduler.tick()
    clock.advance(timedelta(minutes=59))
    assert scheduler.tick().started_sends == []
    assert recipients(outbox) == [EDITOR]

    clock.advance(timedelta(minutes=1))
    tick = scheduler.tick()

    issue = issue_of_week()
    assert issue is not None and tick.started_sends == [issue.id]
    assert issue.status is IssueStatus.SENT
    assert issue.approved_by == "scheduler (approval policy auto)"
    assert recipients(outbox) == sorted([EDITOR, *readers])
    clock.advance(timedelta(hours=1))
    assert scheduler.tick().started_sends == []
    assert len(recipients(outbox)) == 3


def test_auto_holds_an_issue_an_editor_cancelled(
    db_url: str, inbox: Path, configure: Callable[..., None], outbox: Path
) -> None:
    configure(newsletter_approval_policy="auto", newsletter_send_delay_minutes=60)
    drop_seeds(inbox, 1)
    add_subscribers(2)
    clock = ManualClock(SLOT)
    scheduler = Scheduler(clock=clock)
    report = scheduler.tick().weekly
    assert report is not None and report.issue_id is not None
    with transaction() as session:
        issues.cancel(session, report.issue_id)

    clock.advance(timedelta(hours=2))
    scheduler.tick()

    issue = issue_of_week()
    assert issue is not None and issue.status is IssueStatus.CANCELLED
    assert recipients(outbox) == [EDITOR]
    [run] = weekly_runs()
    assert run.settled_at is not None and "held" in run.detail


def test_an_empty_week_sends_nothing_and_tells_the_editors(
    db_url: str, inbox: Path, configure: Callable[..., None], outbox: Path
) -> None:
    configure(newsletter_approval_policy="auto", newsletter_send_delay_minutes=0)
    add_subscribers(2)
    clock = ManualClock(SLOT)
    scheduler = Scheduler(clock=clock)

    scheduler.tick()
    clock.advance(timedelta(hours=3))
    scheduler.tick()

    assert recipients(outbox) == [EDITOR]
    assert deliveries() == []
    issue = issue_of_week()
    assert issue is not None and issue.status is IssueStatus.DRAFT


def test_an_editor_scheduled_issue_goes_at_the_editors_time(
    db_url: str, inbox: Path, configure: Callable[..., None], outbox: Path
) -> None:
    configure(newsletter_approval_policy="review", newsletter_send_delay_minutes=0)
    drop_seeds(inbox, 1)
    readers = add_subscribers(1)
    clock = ManualClock(SLOT)
    scheduler = Scheduler(clock=clock)
    report = scheduler.tick().weekly
    assert report is not None and report.issue_id is not None
    with transaction() as session:
        issues.approve(session, report.issue_id, by=EDITOR, now=clock.now())
        issues.schedule(session, report.issue_id, SLOT + timedelta(hours=4), now=clock.now())

    clock.advance(timedelta(hours=3))
    assert scheduler.tick().started_sends == []
    clock.advance(timedelta(hours=1))
    assert scheduler.tick().started_sends == [report.issue_id]
    assert recipients(outbox) == sorted([EDITOR, *readers])


def test_a_restart_resumes_a_send_left_half_done(
    db_url: str, inbox: Path, configure: Callable[..., None], outbox: Path
) -> None:
    from newsletter.sending import service as sending

    configure(newsletter_approval_policy="auto", newsletter_send_delay_minutes=0)
    drop_seeds(inbox, 1)
    readers = add_subscribers(3)
    clock = ManualClock(SLOT)
    report = Scheduler(clock=clock).run_now()
    assert report.issue_id is not None
    # A scheduler died right after claiming the send: the issue is "sending", nothing went.
    with transaction() as session:
        issues.approve(session, report.issue_id, by=EDITOR, now=clock.now())
    with transaction() as session:
        assert sending.start_send(session, report.issue_id, now=clock.now())

    tick = Scheduler(clock=clock).tick()

    assert tick.resumed_sends == [report.issue_id]
    issue = issue_of_week()
    assert issue is not None and issue.status is IssueStatus.SENT
    assert sorted(r for r in recipients(outbox) if r != EDITOR) == readers

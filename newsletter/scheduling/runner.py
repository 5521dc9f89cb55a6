"""The scheduler's work, one tick at a time: catch up the weekly run, then dispatch due sends.

A tick is idempotent and safe to run in several processes at once. Everything it acts on is
data (scheduler_runs, the issue's status and times, the send ledger) and every action is a
claim that only one caller can win: the unique run key, `start_send`'s conditional transition,
the sending worker's batch claims. So APScheduler only has to call `tick` often enough; a
restarted or duplicated scheduler computes the same due work from the database and at most one
of them performs each piece of it.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from newsletter.audience import service as audience
from newsletter.audience import subject_tests
from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import SEND_STARTED, IssueStatus
from newsletter.scheduling import repository
from newsletter.scheduling.clock import Clock, SystemClock
from newsletter.scheduling.models import RunStatus
from newsletter.scheduling.slots import WeeklySchedule
from newsletter.scheduling.weekly import WeeklyReport, run_weekly_job
from newsletter.sending import service as sending
from newsletter.sending import worker
from newsletter.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from newsletter.scheduling.maintenance import MaintenanceReport

log = logging.getLogger("newsletter.scheduler")

# A weekly run is short (import, build, a few emails): one still "running" after this long
# belongs to a scheduler that died, and may be taken over. A failed run is retried after a
# pause, a few times, while its slot is within the grace period.
STALE_RUN_AFTER = timedelta(minutes=30)
RETRY_FAILED_AFTER = timedelta(minutes=10)
MAX_ATTEMPTS = 3
DAILY = timedelta(days=1)

AUTO_APPROVER = "scheduler (approval policy auto)"


def new_worker_id() -> str:
    # "host:pid:…" as the sending worker expects: a batch claimed by a scheduler that died on
    # this machine is recognised at once instead of after the stuck-batch timeout.
    return f"{sending.default_worker_id()}:scheduler-{uuid.uuid4().hex[:6]}"


@dataclass
class TickReport:
    weekly: WeeklyReport | None = None
    missed: str | None = None
    started_sends: list[int] = field(default_factory=list)
    resumed_sends: list[int] = field(default_factory=list)
    swept_deliveries: int = 0
    resent_uncertain: int = 0  # uncertain deliveries healing queued again (once each)
    pause_notices: list[int] = field(default_factory=list)  # self-paused sends told to editors
    asked_still_reading: int = 0  # "still want this?" mails sent (once a day at most)
    paused_for_silence: int = 0
    skipped: bool = False  # the previous tick of this process was still running
    maintenance: MaintenanceReport | None = None  # the daily housekeeping, when it ran
    # Subject tests decided this tick: (issue id, the winning subject's number).
    subject_winners: list[tuple[int, int]] = field(default_factory=list)


class Scheduler:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        settings: Settings | None = None,
        worker_id: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.settings = settings or get_settings()
        self.schedule = WeeklySchedule.from_settings(self.settings)
        self.worker_id = worker_id or new_worker_id()
        self.stop = stop or threading.Event()
        self._lock = threading.Lock()
        # What was already said about a waiting issue, so a 30 s tick does not repeat it.
        self._announced: set[tuple[int, str]] = set()

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.settings.newsletter_misfire_grace_seconds)

    # The periodic job -------------------------------------------------------------------

    def tick(self) -> TickReport:
        if not self._lock.acquire(blocking=False):
            log.debug("tick: the previous tick is still running, skipped")
            return TickReport(skipped=True)
        try:
            report = TickReport()
            now = self.clock.now()
            if self.stop.is_set():
                return report
            self._step("heartbeat", lambda: self._heartbeat(now))
            self._step("weekly catch-up", lambda: self._catch_up(now, report))
            self._dispatch(now, report)
            return report
        finally:
            self._lock.release()

    def _heartbeat(self, now: datetime) -> None:
        with transaction() as session:
            repository.mark_seen(session, now)

    def dispatch(self) -> TickReport:
        """Only the send half of a tick (`--once` after its manual run)."""
        with self._lock:
            report = TickReport()
            self._dispatch(self.clock.now(), report)
            return report

    def _dispatch(self, now: datetime, report: TickReport) -> None:
        if self.stop.is_set():
            return
        self._step("sweep", lambda: self._sweep(report))
        self._step("healing", lambda: self._heal(report))
        self._step("pause notices", lambda: self._pause_notices(report))
        self._step("re-engagement", lambda: self._reengage(report))
        self._step("planned sends", lambda: self._planned_sends(now, report))
        self._step("due issues", lambda: self._due_issues(now, report))
        self._step("subject tests", lambda: self._subject_tests(now, report))
        self._step("sends", lambda: self._run_sends(report))
        # Last: a send in progress goes first; the housekeeping waits for the tick after it.
        self._step("maintenance", lambda: self._maintain(report))

    def _step(self, name: str, action: Callable[[], None]) -> None:
        # One failing step (a database hiccup, a bug in one issue) must not stop the others or
        # kill the scheduler: it is logged and the next tick tries again.
        try:
            action()
        except Exception:
            log.exception("tick: %s failed; will retry on the next tick", name)

    # The weekly run ---------------------------------------------------------------------

    def _catch_up(self, now: datetime, report: TickReport) -> None:
        slot = self.schedule.last_slot(now)
        week = self.schedule.week_of(slot)
        key = f"weekly:{week}"
        late = now - slot
        with transaction() as session:
            run = repository.get_run(session, key)
            if run is not None:
                holder, state = run.claimed_by, run.status
                # A holder that was a process on this machine and is gone is known dead: no
                # need to wait out STALE_RUN_AFTER (the batch sweep asks the same question).
                dead = state is RunStatus.RUNNING and holder and sending.worker_is_gone(holder)
                run = repository.reclaim_run(
                    session,
                    run_key=key,
                    worker=self.worker_id,
                    now=now,
                    stale_before=now - STALE_RUN_AFTER,
                    retry_before=now - RETRY_FAILED_AFTER,
                    max_attempts=MAX_ATTEMPTS,
                    dead_holder=holder if dead else None,
                )
                if run is None:
                    if state is RunStatus.RUNNING:
                        log.info("weekly %s: being run by %s, skipped", week, holder)
                    else:
                        log.debug("weekly %s: already %s", week, state.value)
                    return
                if late > self.grace:
                    # The take-over itself is too late: record it as missed, not run.
                    repository.finish_run(
                        session,
                        run.id,
                        worker=self.worker_id,
                        status=RunStatus.MISSED,
                        now=now,
                        detail=f"interrupted and not resumed within the grace period ({self.grace})",
                        settled=True,
                    )
                    log.warning("weekly %s: interrupted run not resumed: beyond grace", week)
                    report.missed = key
                    return
                log.warning(
                    "weekly %s: taking over the run (attempt %d; previous claim died or failed)",
                    week,
                    run.attempts,
                )
            elif late > self.grace:
                detail = (
                    f"slot {slot.isoformat()} passed {_human(late)} ago while no scheduler ran, "
                    f"beyond the grace period of {_human(self.grace)}: not run"
                )
                if repository.record_missed(
                    session, run_key=key, week=week, slot_at=slot, now=now, detail=detail
                ):
                    log.warning("weekly %s: missed: %s", week, detail)
                    report.missed = key
                return
            else:
                run = repository.claim_run(
                    session, run_key=key, week=week, slot_at=slot, worker=self.worker_id, now=now
                )
                if run is None:
                    log.info("weekly %s: already claimed by another scheduler, skipped", week)
                    return
            run_id = run.id
        if late > timedelta(seconds=self.settings.newsletter_tick_seconds * 2):
            log.info("weekly %s: running the missed run late by %s (within grace)", week, late)
        else:
            log.info("weekly %s: running the weekly job (slot %s)", week, slot.isoformat())
        report.weekly = self._perform(run_id, week, now)

    def run_now(self) -> WeeklyReport:
        """`scheduler.py --once`: the weekly job now, recorded as a manual run."""
        now = self.clock.now()
        week = self.schedule.week_of(now)
        key = f"manual:{now.strftime('%Y%m%dT%H%M%S.%fZ')}"
        with transaction() as session:
            run = repository.claim_run(
                session, run_key=key, week=week, slot_at=now, worker=self.worker_id, now=now
            )
            if run is None:
                raise RuntimeError(f"run key {key} already exists")
            run_id = run.id
        log.info("weekly %s: running the weekly job now (manual run %s)", week, key)
        return self._perform(run_id, week, now)

    def _perform(self, run_id: int, week: str, now: datetime) -> WeeklyReport:
        try:
            weekly = run_weekly_job(now=now, week=week)
        except Exception as exc:
            with transaction() as session:
                repository.finish_run(
                    session,
                    run_id,
                    worker=self.worker_id,
                    status=RunStatus.FAILED,
                    now=self.clock.now(),
                    detail=f"{type(exc).__name__}: {exc}",
                )
            log.exception("weekly %s: failed; retried after %s", week, RETRY_FAILED_AFTER)
            raise
        with transaction() as session:
            repository.finish_run(
                session,
                run_id,
                worker=self.worker_id,
                status=RunStatus.DONE,
                now=self.clock.now(),
                detail=weekly.summary(),
                issue_id=weekly.issue_id,
                send_at=weekly.send_at,
                settled=weekly.send_at is None,
            )
        log.info("weekly %s: done: %s", week, weekly.summary())
        return weekly

    # Sends ------------------------------------------------------------------------------

    def _sweep(self, report: TickReport) -> None:
        older_than = timedelta(seconds=self.settings.newsletter_send_stuck_seconds)
        with transaction() as session:
            report.swept_deliveries = sending.sweep_stuck(
                session, older_than=older_than, now=self.clock.now()
            )
        if report.swept_deliveries:
            log.warning(
                "sweep: %d deliveries of batches stuck in flight (> %s or worker gone) "
                "marked uncertain",
                report.swept_deliveries,
                older_than,
            )

    def _heal(self, report: TickReport) -> None:
        with transaction() as session:
            healed = sending.heal_uncertain(session, now=self.clock.now())
        report.resent_uncertain = healed.resent
        if healed.resent:
            log.warning(
                "healing: %d uncertain deliveries in %d requests SendGrid never named, while its "
                "webhook showed it took the later ones, queued again (once)",
                healed.resent,
                healed.requests,
            )

    def _reengage(self, report: TickReport) -> None:
        """Once a day: ask the silent ones whether they still want the mail, pause those who
        never answered (newsletter/people/reengagement.py)."""
        from newsletter.people import reengagement
        from subscribers import emails
        from subscribers import service as subscribers

        now = self.clock.now()
        with transaction() as session:
            # The claim and the round in one transaction, as the maintenance's: of two
            # schedulers ticking together one runs it, the other waits for its commit and
            # skips (a read and a later write let both ask the same people, twice).
            if not repository.claim_daily(session, repository.REENGAGED_AT, now, DAILY):
                return
            done = reengagement.run(session, now)
        report.paused_for_silence = done.paused
        for request in done.to_ask:
            if emails.send_still_reading(request).ok:
                report.asked_still_reading += 1
            else:
                # Not asked after all: the next round asks again.
                with transaction() as session:
                    subscribers.unask(session, [request.subscriber_id])
        if report.asked_still_reading or done.paused:
            log.info(
                "re-engagement: %d asked whether they still want the mail, %d paused after no "
                "answer, %d read again",
                report.asked_still_reading,
                done.paused,
                done.read_again,
            )

    def _maintain(self, report: TickReport) -> None:
        """Once a day across every scheduler: `newsletter maintenance` (retention of event
        detail, stale limiter rows). The claim is a compare-and-set on the last run's time."""
        from newsletter.scheduling import maintenance

        if self.stop.is_set():
            return
        now = self.clock.now()
        with transaction() as session:
            if not repository.claim_daily(session, repository.MAINTAINED_AT, now, DAILY):
                return
        done = maintenance.run(now, settings=self.settings, stop=self.stop)
        report.maintenance = done
        log.info("maintenance: %s", "; ".join(done.lines()))

    def _pause_notices(self, report: TickReport) -> None:
        """Tell the editors, once, of each send that paused itself to protect the sender."""
        from newsletter.scheduling.editors import notify_editors, preview_url

        with transaction() as session:
            paused = [(i.id, i.week, i.pause_reason) for i in issues.unnoticed_pauses(session)]
        for issue_id, week, reason in paused:
            text = (
                f"The send of issue {week} {reason}.\n\n"
                "Nothing more goes out until an editor resumes it (or cancels it): look at the "
                f"bounces and complaints first, on the issue's page:\n{preview_url(issue_id)}"
            )
            notified = notify_editors(f"Issue {week} paused itself: bounces or complaints", text)
            if notified or not self.settings.editor_emails:
                with transaction() as session:
                    issues.mark_pause_noticed(session, issue_id, self.clock.now())
                report.pause_notices.append(issue_id)

    def _announce(self, issue_id: int, what: str, message: str, *args: object) -> None:
        if (issue_id, what) not in self._announced:
            self._announced.add((issue_id, what))
            log.info(message, *args)

    def _planned_sends(self, now: datetime, report: TickReport) -> None:
        with transaction() as session:
            runs = [(r.id, r.week, r.issue_id) for r in repository.planned_sends(session, now)]
        for run_id, week, issue_id in runs:
            if self.stop.is_set() or issue_id is None:
                return
            # Each planned send on its own: one that fails must not hold up the others.
            self._step(
                f"planned send {week}",
                functools.partial(self._planned_send, run_id, week, issue_id, now, report),
            )

    def _planned_send(
        self, run_id: int, week: str, issue_id: int, now: datetime, report: TickReport
    ) -> None:
        policy = self.settings.newsletter_approval_policy
        with transaction() as session:
            issue = issues.get(session, issue_id)
            status = issue.status if issue is not None else None
            if status is None:
                repository.settle(session, run_id, now=now, detail="issue deleted")
                return
            if status in (IssueStatus.CANCELLED,):
                if repository.settle(session, run_id, now=now, detail="held: cancelled"):
                    log.info(
                        "send %s: issue %d was cancelled by an editor, not sent", week, issue_id
                    )
                return
            if status in SEND_STARTED:
                repository.settle(session, run_id, now=now, detail=f"issue {status.value}")
                return
            if status == IssueStatus.SCHEDULED:
                self._announce(
                    issue_id,
                    "scheduled",
                    "send %s: issue %d is scheduled by an editor for %s, left to that time",
                    week,
                    issue_id,
                    issue.scheduled_at.isoformat() if issue and issue.scheduled_at else "?",
                )
                return
            if status == IssueStatus.DRAFT:
                if policy == "review":
                    self._announce(
                        issue_id,
                        "review",
                        "send %s: issue %d waits for an editor's approval (policy review)",
                        week,
                        issue_id,
                    )
                    return
                try:
                    issues.approve(session, issue_id, by=AUTO_APPROVER, now=now)
                except issues.IssueError as exc:
                    if _still_draft(session, issue_id):
                        # Refused on its merits (no matchups): nothing goes out, and why is said.
                        self._announce(
                            issue_id,
                            "refused",
                            "send %s: issue %d not sent: %s",
                            week,
                            issue_id,
                            exc,
                        )
                        return
                    # Another scheduler or an editor moved it first; the send claim decides.
                    log.info("send %s: issue %d not auto-approved: %s", week, issue_id, exc)
                else:
                    log.info("send %s: issue %d approved by the auto policy", week, issue_id)
        # Approved (now or earlier): the conditional transition decides who sends.
        with transaction() as session:
            started = audience.start_send(session, issue_id, now=now)
        if started:
            log.info("send %s: started sending issue %d", week, issue_id)
            report.started_sends.append(issue_id)
        else:
            log.info("send %s: issue %d already started elsewhere, skipped", week, issue_id)

    def _due_issues(self, now: datetime, report: TickReport) -> None:
        with transaction() as session:
            due = [(i.id, i.week) for i in issues.due_issues(session, now)]
        for issue_id, week in due:
            if self.stop.is_set():
                return
            try:
                with transaction() as session:
                    started = audience.start_send(session, issue_id, now=now)
            except Exception:
                log.exception(
                    "send %s: issue %d could not start; next tick retries", week, issue_id
                )
                continue
            if started:
                log.info("send %s: scheduled issue %d is due, started sending", week, issue_id)
                report.started_sends.append(issue_id)
            else:
                log.info("send %s: issue %d already started elsewhere, skipped", week, issue_id)

    def _subject_tests(self, now: datetime, report: TickReport) -> None:
        # Each test whose wait is over: decided by its figures and its winner queued for
        # everyone else, in one transaction per issue (one failing leaves the others decided).
        with transaction() as session:
            due = subject_tests.due_issue_ids(session, now)
        for issue_id in due:
            if self.stop.is_set():
                return
            try:
                with transaction() as session:
                    decision = subject_tests.decide_if_due(session, issue_id, now)
            except Exception:
                log.exception("subject test of issue %d: not decided; next tick retries", issue_id)
                continue
            if decision is None:
                continue
            log.info(
                "subject test of issue %d: subject %d won, queued for %d more",
                issue_id,
                decision.winner,
                decision.rest,
            )
            report.subject_winners.append((issue_id, decision.winner))

    def _run_sends(self, report: TickReport) -> None:
        # Every issue mid-send, including ones a dead scheduler or the CLI left behind: the
        # worker claims batches one at a time, so several schedulers share the work safely.
        # Sent issues with re-queued uncertain deliveries (an editor's "send again") too.
        with transaction() as session:
            work = sending.issues_with_work(session)
        for issue_id, resolving in work:
            if self.stop.is_set():
                log.info("send: stop requested, issue %d left for the next start", issue_id)
                return
            if issue_id not in report.started_sends:
                report.resumed_sends.append(issue_id)
            log.info("send: working on issue %d as %s", issue_id, self.worker_id)
            try:
                worker.run_until_done(
                    issue_id, worker_id=self.worker_id, stop=self.stop, resolving=resolving
                )
            except Exception:
                # One issue's failure must not keep the other issues' batches waiting.
                log.exception("send: issue %d failed; will retry on the next tick", issue_id)
                continue
            log.info("send: issue %d: no more batches for this worker", issue_id)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours >= 48:
        return f"{hours // 24}d {hours % 24}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds % 60:02d}s"


def _still_draft(session: Session, issue_id: int) -> bool:
    issue = issues.get(session, issue_id)
    return issue is not None and issue.status is IssueStatus.DRAFT

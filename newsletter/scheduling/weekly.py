"""The weekly job: import the inbox, build the week's issue, then follow the approval policy.

- review (default): the draft waits for an editor's approval; editors get a "ready for review"
  email with the preview link. Once approved it goes at the planned send time (the scheduler's
  tick sends it), or at the time an editor scheduled it for.
- auto: the issue is approved and sent at the planned send time, unless an editor holds it.
  Holding means cancelling it (`newsletter issue cancel ID`) or scheduling it for another time
  (`newsletter issue schedule ID --at T`, which then wins). Approval happens at send time, so
  editors' edits made before then go out.

The planned send time is the run's time plus NEWSLETTER_SEND_DELAY_MINUTES. A week with no new
matchups sends nothing and tells the editors so.

This function does not decide *whether* the week is due or who runs it: the caller (the
scheduler's claim on "weekly:<week>", or `scheduler.py --once`) does.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import Issue, IssueStatus
from newsletter.scheduling.editors import notify_editors, preview_url
from newsletter.scheduling.inbox import InboxReport, import_inbox
from newsletter.scheduling.slots import WeeklySchedule
from newsletter.settings import get_settings

log = logging.getLogger("newsletter.scheduler")


class WeekOutcome(enum.StrEnum):
    AWAITING_REVIEW = "awaiting_review"  # review policy: draft built, editors notified
    WILL_SEND = "will_send"  # auto policy: goes at send_at unless held
    EMPTY = "empty"  # no new matchups: nothing will be sent
    LEFT_AS_IS = "left_as_is"  # the week's issue is past draft: an editor or a send owns it


@dataclass
class WeeklyReport:
    week: str
    outcome: WeekOutcome
    issue_id: int | None
    issue_status: str | None
    matchups: int
    policy: str
    send_at: datetime | None
    inbox: InboxReport = field(default_factory=InboxReport)
    notified: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"week {self.week}",
            f"inbox {len(self.inbox.imported)} imported / {len(self.inbox.rejected)} rejected",
            f"issue {self.issue_id} ({self.issue_status}, {self.matchups} matchups)",
            f"{self.outcome.value}",
        ]
        if self.send_at is not None:
            parts.append(f"send at {self.send_at.isoformat()}")
        parts.append(f"editors notified: {len(self.notified)}")
        return "; ".join(parts)


def _included(issue: Issue) -> int:
    return sum(1 for item in issue.items if not item.excluded)


def _local(moment: datetime) -> str:
    zone = WeeklySchedule.from_settings(get_settings()).zone
    return moment.astimezone(zone).strftime("%A %d %B %Y, %H:%M %Z")


def run_weekly_job(*, now: datetime, week: str | None = None) -> WeeklyReport:
    """Run the week's job now. `week` defaults to the ISO week of `now` in NEWSLETTER_TIMEZONE."""
    settings = get_settings()
    schedule = WeeklySchedule.from_settings(settings)
    week = week or schedule.week_of(now)
    policy = settings.newsletter_approval_policy

    inbox = import_inbox(settings.newsletter_inbox_dir, now=now)

    with transaction() as session:
        existing = issues.get_by_week(session, week)
        if existing is not None and existing.status != IssueStatus.DRAFT:
            # Approved, scheduled, sending, sent or cancelled: an editor or a send owns it, and
            # a rebuild would change what they signed off on.
            log.info(
                "weekly %s: issue %d is %s, not rebuilt", week, existing.id, existing.status.value
            )
            return WeeklyReport(
                week=week,
                outcome=WeekOutcome.LEFT_AS_IS,
                issue_id=existing.id,
                issue_status=existing.status.value,
                matchups=_included(existing),
                policy=policy,
                # An approved issue with no time of its own goes at the planned time.
                send_at=now + timedelta(minutes=settings.newsletter_send_delay_minutes)
                if existing.status == IssueStatus.APPROVED
                else None,
                inbox=inbox,
            )
        issue = issues.build_issue(session, week, now=now)
        issue_id, status = issue.id, issue.status.value
        count = _included(issue)
    log.info("weekly %s: built issue %d (%s) with %d matchups", week, issue_id, status, count)

    if count == 0:
        log.info("weekly %s: no new matchups, nothing will be sent", week)
        notified = notify_editors(
            f"[Weekly AI Tool Verdicts] {week}: no new matchups, nothing sent",
            f"No matchup was published since the last issue, so the {week} issue is empty "
            "and nothing will be sent to subscribers this week.\n\n"
            f"Add pages to the inbox or import them, then rebuild it: {preview_url(issue_id)}",
        )
        return WeeklyReport(
            week, WeekOutcome.EMPTY, issue_id, status, 0, policy, None, inbox, notified
        )

    send_at = now + timedelta(minutes=settings.newsletter_send_delay_minutes)
    if policy == "review":
        log.info(
            "weekly %s: policy review, issue %d waits for an editor's approval", week, issue_id
        )
        subject = f"[Weekly AI Tool Verdicts] {week} is ready for review"
        text = (
            f"The {week} issue ({count} matchups) is built and waits for your approval.\n\n"
            f"Preview, edit and approve it here: {preview_url(issue_id)}\n\n"
            f"Once approved it goes out at {_local(send_at)} (or at once if that time has "
            "passed), unless you schedule it for another time."
        )
        outcome = WeekOutcome.AWAITING_REVIEW
    else:
        log.info("weekly %s: policy auto, issue %d will send at %s", week, issue_id, send_at)
        subject = f"[Weekly AI Tool Verdicts] {week} goes out at {_local(send_at)}"
        text = (
            f"The {week} issue ({count} matchups) is built and will be sent automatically at "
            f"{_local(send_at)}.\n\n"
            f"Preview and edit it here: {preview_url(issue_id)}\n\n"
            "To hold it, cancel it (`newsletter issue cancel "
            f"{issue_id}`) or schedule it for another time before then."
        )
        outcome = WeekOutcome.WILL_SEND
    notified = notify_editors(subject, text)
    return WeeklyReport(week, outcome, issue_id, status, count, policy, send_at, inbox, notified)

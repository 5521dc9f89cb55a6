"""The weekly job itself: import, build, notify editors according to the approval policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from newsletter import paths
from newsletter.db import transaction
from newsletter.issues import repository as issues_repository
from newsletter.issues.models import IssueStatus
from newsletter.scheduling.weekly import WeekOutcome, run_weekly_job
from tests.scheduling.conftest import EDITOR, body_text, drop_seeds, outbox_messages, utc

NOW = utc(2026, 3, 30, 7)  # Monday 09:00 in Paris, first week of summer time


def test_review_policy_builds_a_draft_and_sends_editors_the_preview_link(
    db_url: str, inbox: Path, configure: Callable[..., None], isolated_env: Path
) -> None:
    configure(newsletter_send_delay_minutes=90)
    drop_seeds(inbox, 3)

    report = run_weekly_job(now=NOW)

    assert report.outcome is WeekOutcome.AWAITING_REVIEW
    assert report.week == "2026-W14" and report.matchups == 3
    assert report.send_at == utc(2026, 3, 30, 8, 30)
    with transaction() as session:
        issue = issues_repository.get_by_week(session, "2026-W14")
    assert issue is not None and issue.status is IssueStatus.DRAFT
    [notice] = outbox_messages(isolated_env / "outbox")
    assert notice["To"] == EDITOR
    assert "ready for review" in notice["Subject"]
    text = body_text(notice)
    # The link is the editor's issue page (tests/web/test_links.py follows it to a real page).
    assert f"https://news.example{paths.editor_issue(issue.id)}" in text
    assert "10:30" in text  # the planned send time, in Paris time


def test_auto_policy_tells_editors_when_it_goes_and_how_to_hold_it(
    db_url: str, inbox: Path, configure: Callable[..., None], isolated_env: Path
) -> None:
    configure(newsletter_approval_policy="auto")
    drop_seeds(inbox, 1)

    report = run_weekly_job(now=NOW)

    assert report.outcome is WeekOutcome.WILL_SEND
    [notice] = outbox_messages(isolated_env / "outbox")
    assert "goes out at" in notice["Subject"]
    assert f"newsletter issue cancel {report.issue_id}" in body_text(notice)


def test_a_week_without_new_matchups_sends_nothing_and_tells_the_editors(
    db_url: str, inbox: Path, configure: Callable[..., None], isolated_env: Path
) -> None:
    configure(newsletter_approval_policy="auto")

    report = run_weekly_job(now=NOW)

    assert report.outcome is WeekOutcome.EMPTY
    assert report.matchups == 0 and report.send_at is None
    [notice] = outbox_messages(isolated_env / "outbox")
    assert notice["To"] == EDITOR
    assert "no new matchups" in notice["Subject"]
    assert "nothing will be sent" in body_text(notice)


def test_an_issue_past_draft_is_not_rebuilt(
    db_url: str, inbox: Path, configure: Callable[..., None], isolated_env: Path
) -> None:
    from newsletter.issues import service as issues

    configure()
    drop_seeds(inbox, 1)
    first = run_weekly_job(now=NOW)
    assert first.issue_id is not None
    with transaction() as session:
        issues.cancel(session, first.issue_id)
    drop_seeds(inbox, 2)

    again = run_weekly_job(now=NOW)

    assert again.outcome is WeekOutcome.LEFT_AS_IS
    assert again.issue_status == "cancelled" and again.matchups == 1

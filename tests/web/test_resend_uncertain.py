"""Uncertain deliveries an editor or operator sends again really go out, once, or are refused."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.db import transaction
from newsletter.issues import repository as issues_repository
from newsletter.issues.models import IssueStatus
from newsletter.scheduling.runner import Scheduler
from newsletter.sending.models import Delivery, DeliveryStatus
from subscribers import service as subscribers
from tests.subscribers.helpers import cli, outbox
from tests.web.conftest import csrf_from, mark_sent


def _uncertain(issue_id: int, *emails: str) -> None:
    with transaction() as session:
        for email in emails:
            person, _ = subscribers.add_by_admin(session, email)
            session.add(
                Delivery(
                    issue_id=issue_id,
                    subscriber_id=person.id,
                    status=DeliveryStatus.UNCERTAIN,
                    error="timed out after the request went out",
                )
            )


def _states(issue_id: int) -> list[DeliveryStatus]:
    with transaction() as session:
        return list(
            session.scalars(
                select(Delivery.status).where(Delivery.issue_id == issue_id).order_by(Delivery.id)
            )
        )


def _recipients() -> list[str]:
    return sorted(str(message["To"]) for message in outbox())


def test_the_editors_send_again_button_on_a_sent_issue_reaches_each_reader_once(
    editor: TestClient, draft_issue: int
) -> None:
    mark_sent(draft_issue)
    _uncertain(draft_issue, "unsure0@example.com", "unsure1@example.com")
    page = editor.get(f"/admin/issues/{draft_issue}")
    answer = editor.post(
        f"/admin/issues/{draft_issue}/uncertain",
        data={"csrf_token": csrf_from(page.text), "outcome": "requeue"},
    )
    assert "2 uncertain deliveries queued again" in answer.text
    assert outbox() == []

    # What the running scheduler does at its next tick; a second tick sends nothing more.
    Scheduler().dispatch()
    Scheduler().dispatch()

    assert _recipients() == ["unsure0@example.com", "unsure1@example.com"]
    assert _states(draft_issue) == [DeliveryStatus.SENT, DeliveryStatus.SENT]
    with transaction() as session:
        issue = issues_repository.get(session, draft_issue)
        assert issue is not None and issue.status is IssueStatus.SENT


def test_an_extra_worker_sends_a_sent_issues_requeued_deliveries(
    editor: TestClient, draft_issue: int
) -> None:
    mark_sent(draft_issue)
    _uncertain(draft_issue, "unsure0@example.com")
    assert cli("issue", "resolve", str(draft_issue), "--resend", "--json").exit_code == 0
    assert _recipients() == ["unsure0@example.com"]
    # Already sent: a worker started afterwards finds nothing left to send.
    assert cli("issue", "worker").exit_code == 0
    assert _recipients() == ["unsure0@example.com"]
    assert _states(draft_issue) == [DeliveryStatus.SENT]


def test_sending_again_on_a_cancelled_issue_is_refused_with_the_reason(
    editor: TestClient, draft_issue: int
) -> None:
    mark_sent(draft_issue)
    _uncertain(draft_issue, "unsure0@example.com")
    with transaction() as session:
        assert issues_repository.transition(
            session, draft_issue, (IssueStatus.SENT,), IssueStatus.CANCELLED
        )

    result = cli("issue", "resolve", str(draft_issue), "--resend")
    assert result.exit_code == 1
    assert f"issue {draft_issue} is cancelled" in result.output
    page = editor.get(f"/admin/issues/{draft_issue}")
    answer = editor.post(
        f"/admin/issues/{draft_issue}/uncertain",
        data={"csrf_token": csrf_from(page.text), "outcome": "requeue"},
    )
    assert "is cancelled: nothing more of it is sent" in answer.text
    Scheduler().dispatch()
    assert outbox() == []
    assert _states(draft_issue) == [DeliveryStatus.UNCERTAIN]

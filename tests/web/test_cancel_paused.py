"""Cancelling a paused send, at every door, skips what was not handed off: before, the API and
the issue service moved a paused issue to cancelled and left its queued deliveries queued for
ever (no worker takes a cancelled issue's batches)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter import paths
from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import IssueStatus
from newsletter.sending import service as sending
from newsletter.sending.models import Delivery, DeliveryStatus
from subscribers import service as subscribers
from tests.web.conftest import ADMIN, EDITOR, csrf_from


def _paused_send(issue_id: int) -> None:
    with transaction() as session:
        for n in range(3):
            subscribers.add_by_admin(session, f"paused{n}@example.com")
        issues.approve(session, issue_id, by=EDITOR)
        assert sending.start_send(session, issue_id)
        sending.pause(session, issue_id)


def _states(issue_id: int) -> tuple[IssueStatus | None, list[DeliveryStatus]]:
    with transaction() as session:
        rows = session.scalars(select(Delivery.status).where(Delivery.issue_id == issue_id))
        return issues.status_of(session, issue_id), sorted(rows)


@pytest.mark.parametrize("door", ["api", "editor", "cli"])
def test_a_paused_send_cancelled_skips_its_queued_deliveries(
    editor: TestClient, draft_issue: int, staff: None, door: str
) -> None:
    from newsletter.cli import app

    _paused_send(draft_issue)
    assert _states(draft_issue) == (IssueStatus.PAUSED, [DeliveryStatus.QUEUED] * 3)
    runner = CliRunner()
    if door == "api":
        token = json.loads(runner.invoke(app, ["users", "token", ADMIN, "--json"]).stdout)["token"]
        answer = editor.post(
            f"/api/v1/issues/{draft_issue}/cancel", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "cancelled"
    elif door == "editor":
        page = editor.get(paths.editor_issue(draft_issue) + "/cancel")
        answer = editor.post(
            paths.editor_issue(draft_issue) + "/cancel",
            data={"csrf_token": csrf_from(page.text), "confirmed": "yes"},
        )
        assert "3 deliveries not yet handed off were skipped" in answer.text, answer.text[:2000]
    else:
        done = runner.invoke(app, ["issue", "cancel", str(draft_issue), "--json"])
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["skipped"] == 3
    assert _states(draft_issue) == (IssueStatus.CANCELLED, [DeliveryStatus.SKIPPED] * 3)
    with transaction() as session:
        reasons = set(
            session.scalars(select(Delivery.error).where(Delivery.issue_id == draft_issue))
        )
    assert reasons == {sending.CANCELLED_REASON}


def test_the_issue_service_no_longer_cancels_a_send_under_way(draft_issue: int) -> None:
    _paused_send(draft_issue)
    with (
        transaction() as session,
        pytest.raises(issues.IssueError, match="can no longer be cancelled"),
    ):
        issues.cancel(session, draft_issue)

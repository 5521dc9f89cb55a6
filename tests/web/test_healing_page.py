"""The editor's issue page says how once-uncertain deliveries were settled and what the
uncertain ones still wait for (issue 18), as `newsletter issue status` does."""

from __future__ import annotations

from fastapi.testclient import TestClient

from newsletter import paths
from tests.web.conftest import csrf_from, mark_sent
from tests.web.test_resend_uncertain import _uncertain


def test_the_issue_page_shows_what_healing_waits_for_and_how_deliveries_were_settled(
    editor: TestClient, draft_issue: int
) -> None:
    mark_sent(draft_issue)
    _uncertain(draft_issue, "unsure0@example.com", "unsure1@example.com")
    page = editor.get(paths.editor_issue(draft_issue))
    assert page.status_code == 200
    assert "The service heals them by itself" in page.text
    assert (
        "2: waiting for SendGrid&#39;s events to show it took the requests made after this one"
        in page.text
    )
    answer = editor.post(
        paths.editor_issue(draft_issue) + "/uncertain",
        data={"csrf_token": csrf_from(page.text), "outcome": "sent"},
        follow_redirects=True,
    )
    assert "2 uncertain deliveries marked sent" in answer.text
    assert "Settled after an uncertain hand-off: 2 marked sent by hand." in answer.text
    assert 'id="healing-waits"' not in answer.text

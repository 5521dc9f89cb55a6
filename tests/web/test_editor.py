"""Editor pages: the issue list, the editor with its live preview, actions and numbers."""

from __future__ import annotations

import re
from email import message_from_bytes
from pathlib import Path

from fastapi.testclient import TestClient

from tests.web.conftest import EDITOR, csrf_from, mark_sent


def _form(html: str) -> dict[str, list[str]]:
    """The edit form's fields as the browser would send them."""
    form = html.split('action="/admin/issues/', 1)[1]
    form = form[form.index("/edit") :].split("</form>", 1)[0]
    fields: dict[str, list[str]] = {}
    for tag in re.finditer(r"<(input|textarea)([^>]*)>(?:([^<]*)</textarea>)?", form, re.S):
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', tag.group(2)))
        if "name" not in attrs or (
            attrs.get("type") == "checkbox" and " checked" not in tag.group(2)
        ):
            continue
        value = tag.group(3) if tag.group(1) == "textarea" else attrs.get("value", "")
        import html as html_lib

        fields.setdefault(attrs["name"], []).append(html_lib.unescape(value or ""))
    return fields


def test_issue_list_shows_each_issue_with_its_state(editor: TestClient, draft_issue: int) -> None:
    page = editor.get("/admin/issues")
    assert page.status_code == 200
    assert f'href="/admin/issues/{draft_issue}"' in page.text
    assert "status-draft" in page.text


def test_issue_page_has_both_previews_and_the_text_part(
    editor: TestClient, draft_issue: int
) -> None:
    page = editor.get(f"/admin/issues/{draft_issue}").text
    assert 'class="preview preview-desktop"' in page and 'class="preview preview-mobile"' in page
    assert page.count(f'src="/admin/issues/{draft_issue}/preview.html"') == 2
    assert '<pre class="plain"' in page
    preview = editor.get(f"/admin/issues/{draft_issue}/preview.html")
    assert preview.status_code == 200
    assert "<html" in preview.text.lower() and "__NL_TOKEN__" not in preview.text
    # The email runs sandboxed: inline styles allowed, no script, framable only by this site.
    csp = preview.headers["content-security-policy"]
    assert "sandbox" in csp and "script-src" not in csp and "frame-ancestors 'self'" in csp
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"


def test_an_edit_re_renders_the_preview_at_once(editor: TestClient, draft_issue: int) -> None:
    page = editor.get(f"/admin/issues/{draft_issue}").text
    fields = _form(page)
    fields["subject"] = ["Cursor or Copilot? Our panel decides"]
    fields["intro"] = ["A hand-written intro for this week."]
    fields["summary"][0] = "The editor's own summary of the first matchup."
    first_slug = fields["slug"][0]
    fields["excluded"] = [fields["slug"][1]]
    done = editor.post(f"/admin/issues/{draft_issue}/edit", data=fields, follow_redirects=True)
    assert done.status_code == 200
    assert "Saved" in done.text
    assert "Cursor or Copilot? Our panel decides" in done.text
    preview = editor.get(f"/admin/issues/{draft_issue}/preview.html").text
    assert "A hand-written intro for this week." in preview
    assert "The editor&#39;s own summary" in preview or "The editor's own summary" in preview
    text = done.text.split('<pre class="plain"', 1)[1]
    assert "A hand-written intro for this week." in text
    assert "(left out)" in done.text
    assert first_slug in done.text


def test_send_a_test_to_oneself_then_approve(
    editor: TestClient, draft_issue: int, isolated_env: Path
) -> None:
    page = editor.get(f"/admin/issues/{draft_issue}").text
    token = csrf_from(page)
    sent = editor.post(f"/admin/issues/{draft_issue}/test", data={"csrf_token": token})
    assert f"Test sent to {EDITOR}" in sent.text
    mails = list((isolated_env / "outbox").glob("*.eml"))
    assert len(mails) == 1
    message = message_from_bytes(mails[0].read_bytes())
    assert message["To"] == EDITOR
    assert "[Test]" in str(message["Subject"])
    approved = editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    assert "approved" in approved.text
    assert "status-approved" in approved.text
    assert "Approve</button>" not in approved.text


def test_schedule_and_cancel(editor: TestClient, draft_issue: int) -> None:
    token = csrf_from(editor.get(f"/admin/issues/{draft_issue}").text)
    early = editor.post(
        f"/admin/issues/{draft_issue}/schedule",
        data={"csrf_token": token, "at": "2030-01-07T09:00"},
    )
    assert "approve it before scheduling" in early.text  # a draft cannot be scheduled
    editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    page = editor.post(
        f"/admin/issues/{draft_issue}/schedule",
        data={"csrf_token": token, "at": "2030-01-07T09:00"},
    )
    assert "status-scheduled" in page.text
    assert "Mon 07 Jan 2030 09:00" in page.text
    # One click asks first (the GET is the confirmation page); only its button cancels.
    asked = editor.post(f"/admin/issues/{draft_issue}/cancel", data={"csrf_token": token})
    assert "Yes, cancel this issue" in asked.text and "status-scheduled" not in asked.text
    cancelled = editor.post(
        f"/admin/issues/{draft_issue}/cancel", data={"csrf_token": token, "confirmed": "yes"}
    )
    assert "status-cancelled" in cancelled.text


def test_editing_an_approved_issue_withdraws_the_approval(
    editor: TestClient, draft_issue: int
) -> None:
    token = csrf_from(editor.get(f"/admin/issues/{draft_issue}").text)
    editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    fields = _form(editor.get(f"/admin/issues/{draft_issue}").text)
    fields["preheader"] = ["A new preheader"]
    page = editor.post(f"/admin/issues/{draft_issue}/edit", data=fields)
    assert "approval was withdrawn" in page.text
    assert "status-draft" in page.text


def test_a_sent_issue_shows_progress_numbers_and_charts(
    editor: TestClient, draft_issue: int
) -> None:
    mark_sent(draft_issue)
    page = editor.get(f"/admin/issues/{draft_issue}").text
    assert "<progress" in page and "Edit</h2>" not in page
    progress = editor.get(f"/admin/issues/{draft_issue}/progress.json").json()
    assert progress["status"] == "sent" and progress["recipients"] == 0
    stats = editor.get(f"/admin/issues/{draft_issue}/stats")
    assert stats.status_code == 200
    assert "<svg" in stats.text and "Opens over time" in stats.text
    assert "Votes per matchup" in stats.text


def test_pause_outside_a_send_is_refused_with_a_reason(
    editor: TestClient, draft_issue: int
) -> None:
    token = csrf_from(editor.get(f"/admin/issues/{draft_issue}").text)
    page = editor.post(f"/admin/issues/{draft_issue}/pause", data={"csrf_token": token})
    assert "nothing to pause" in page.text


def test_unknown_issue_is_404(editor: TestClient) -> None:
    response = editor.get("/admin/issues/999999", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "There is no issue 999999" in response.text


def test_uncertain_deliveries_are_resolved_one_by_one_or_all(
    editor: TestClient, draft_issue: int
) -> None:
    """A crash can leave a batch SendGrid took beside one it never saw: the editor decides per
    delivery from the activity feed (ticked ones), or for all of them."""
    from sqlalchemy import select

    from newsletter.db import transaction
    from newsletter.sending.models import Delivery, DeliveryStatus
    from subscribers import service as subscribers

    mark_sent(draft_issue)
    with transaction() as session:
        for i in range(3):
            person, _ = subscribers.add_by_admin(session, f"unsure{i}@example.com")
            session.add(
                Delivery(
                    issue_id=draft_issue,
                    subscriber_id=person.id,
                    status=DeliveryStatus.UNCERTAIN,
                    error="timed out after the request went out",
                )
            )
    with transaction() as session:
        ids = list(session.scalars(select(Delivery.id).order_by(Delivery.id)))

    page = editor.get(f"/admin/issues/{draft_issue}").text
    assert all(f'value="{i}"' in page for i in ids)  # one checkbox per uncertain delivery
    token = csrf_from(page)
    ticked = editor.post(
        f"/admin/issues/{draft_issue}/uncertain",
        data={"csrf_token": token, "outcome": "sent", "delivery": [str(ids[0])]},
    )
    assert ticked.status_code == 200 and "1 uncertain deliveries marked sent" in ticked.text
    rest = editor.post(
        f"/admin/issues/{draft_issue}/uncertain",
        data={"csrf_token": token, "outcome": "requeue"},
    )
    assert "2 uncertain deliveries queued again" in rest.text
    with transaction() as session:
        states = {i: s for i, s in session.execute(select(Delivery.id, Delivery.status))}
    assert states == {
        ids[0]: DeliveryStatus.SENT,
        ids[1]: DeliveryStatus.QUEUED,
        ids[2]: DeliveryStatus.QUEUED,
    }

"""The editor at Buttondown's and Ghost's bar: a live preview of the unsaved draft that writes
nothing, send now with the audience count, unschedule, reorder without typing positions, and
the page back where the editor was after a save. Both engines."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.db import transaction
from tests.web.conftest import csrf_from
from tests.web.test_editor import _form


def _snapshot() -> dict[str, Any]:
    """Every row a preview could be tempted to write: links, overrides, order, the issue."""
    from newsletter.issues.models import Issue, IssueLink, IssueMatchup

    with transaction() as session:
        return {
            "links": session.scalar(select(func.count()).select_from(IssueLink)),
            "items": sorted(
                session.execute(
                    select(
                        IssueMatchup.id,
                        IssueMatchup.position,
                        IssueMatchup.position_override,
                        IssueMatchup.summary_override,
                        IssueMatchup.excluded,
                    )
                ).all()
            ),
            "issues": sorted(
                session.execute(
                    select(
                        Issue.id,
                        Issue.status,
                        Issue.subject_override,
                        Issue.intro_override,
                        Issue.rendered_at,
                        Issue.updated_at,
                    )
                ).all()
            ),
        }


def _order(issue_id: int) -> list[tuple[str, int | None]]:
    from newsletter.issues import repository

    with transaction() as session:
        issue = repository.get(session, issue_id)
        assert issue is not None
        matchups = repository.matchups_of(session, issue)
        return [(matchups[i.matchup_id].slug, i.position_override) for i in issue.items]


def test_the_draft_preview_shows_what_is_typed_and_writes_nothing(
    editor: TestClient, draft_issue: int
) -> None:
    page = editor.get(f"/admin/issues/{draft_issue}").text
    before = _snapshot()
    assert before["links"] == 0  # viewing the draft's page recorded no links either
    fields = _form(page)
    fields["subject"] = ["A subject being typed"]
    fields["intro"] = ["An intro being typed, not saved."]
    fields["summary"][0] = "A summary being typed."
    fields["excluded"] = [fields["slug"][1]]
    left_out = fields["slug"][1]
    html = editor.post(f"/admin/issues/{draft_issue}/preview.html", data=fields)
    assert html.status_code == 200
    assert "An intro being typed, not saved." in html.text
    assert "A summary being typed." in html.text
    assert "A subject being typed" in html.text
    assert left_out not in html.text
    csp = html.headers["content-security-policy"]
    assert "sandbox" in csp and "script-src" not in csp
    assert html.headers["x-frame-options"] == "SAMEORIGIN"
    text = editor.post(f"/admin/issues/{draft_issue}/preview.txt", data=fields)
    assert text.headers["content-type"].startswith("text/plain")
    assert "An intro being typed, not saved." in text.text
    assert _snapshot() == before
    saved = editor.get(f"/admin/issues/{draft_issue}/preview.html").text
    assert "An intro being typed" not in saved


def test_the_preview_of_an_approved_issue_with_edits_leaves_it_approved(
    editor: TestClient, draft_issue: int
) -> None:
    token = csrf_from(editor.get(f"/admin/issues/{draft_issue}").text)
    editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    fields = _form(editor.get(f"/admin/issues/{draft_issue}").text)
    before = _snapshot()
    fields["intro"] = ["What it would read like after an edit."]
    html = editor.post(f"/admin/issues/{draft_issue}/preview.html", data=fields).text
    assert "What it would read like after an edit." in html
    assert _snapshot() == before


def test_the_draft_preview_needs_the_csrf_token_and_refuses_bad_forms(
    editor: TestClient, draft_issue: int
) -> None:
    fields = _form(editor.get(f"/admin/issues/{draft_issue}").text)
    no_token = {k: v for k, v in fields.items() if k != "csrf_token"}
    assert (
        editor.post(f"/admin/issues/{draft_issue}/preview.html", data=no_token).status_code == 403
    )
    form = {"content-type": "application/x-www-form-urlencoded"}
    token = fields["csrf_token"][0]
    for body in (
        "subject=a%00b",
        "slug=no-such-matchup&summary=x&original_summary=y",
        "slug=a&slug=b&summary=x&original_summary=y",
        "intro=" + "x" * 6000,
        "slug=x&summary=x&original_summary=x&position=" + "9" * 40 + "&original_position=",
        "slug=x&summary=x&original_summary=x&position=-3&original_position=",
    ):
        for suffix in ("preview.html", "preview.txt", "edit"):
            response = editor.post(
                f"/admin/issues/{draft_issue}/{suffix}",
                content=f"csrf_token={token}&{body}",
                headers=form,
                follow_redirects=False,
            )
            assert response.status_code in (303, 400, 422), (body, suffix, response.status_code)
            if response.status_code == 303:
                assert "error" in str(editor.get(response.headers["location"]).text)
    assert editor.post(f"/admin/issues/{10**30}/preview.html", data=fields).status_code in (
        404,
        422,
    )


def test_send_now_says_how_many_and_starts_only_when_confirmed(
    editor: TestClient, draft_issue: int
) -> None:
    from newsletter.issues.models import IssueStatus
    from newsletter.sending.models import Delivery
    from subscribers import service

    with transaction() as session:
        for n in range(3):
            service.add_by_admin(session, f"reader{n}@example.org", "")
        paused, _ = service.add_by_admin(session, "paused@example.org", "")
        service.set_paused(session, paused.id, True)
    token = csrf_from(editor.get(f"/admin/issues/{draft_issue}").text)
    draft = editor.post(
        f"/admin/issues/{draft_issue}/send", data={"csrf_token": token, "confirmed": 3}
    )
    assert "only an approved or scheduled issue can be sent" in draft.text
    editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    ask = editor.post(f"/admin/issues/{draft_issue}/send", data={"csrf_token": token})
    assert "to 3 subscribers now?" in ask.text
    stale = editor.post(
        f"/admin/issues/{draft_issue}/send", data={"csrf_token": token, "confirmed": 2}
    )
    assert stale.status_code == 409 and "2 then, 3 now" in stale.text
    with transaction() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    sent = editor.post(
        f"/admin/issues/{draft_issue}/send",
        data={"csrf_token": token, "confirmed": 3},
        follow_redirects=False,
    )
    assert sent.headers["location"].endswith(f"/admin/issues/{draft_issue}#actions-h")
    page = editor.get(sent.headers["location"]).text
    assert "to 3 subscribers" in page and "status-sending" in page
    from newsletter.issues import repository

    with transaction() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 3
        issue = repository.get(session, draft_issue)
        assert issue is not None and issue.status is IssueStatus.SENDING
    again = editor.post(
        f"/admin/issues/{draft_issue}/send", data={"csrf_token": token, "confirmed": 3}
    )
    assert "is sending" in again.text


def test_unschedule_goes_back_to_approved_and_says_so(editor: TestClient, draft_issue: int) -> None:
    from newsletter.issues import repository
    from newsletter.issues.models import IssueStatus

    token = csrf_from(editor.get(f"/admin/issues/{draft_issue}").text)
    refused = editor.post(f"/admin/issues/{draft_issue}/unschedule", data={"csrf_token": token})
    assert "not scheduled" in refused.text
    editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    editor.post(
        f"/admin/issues/{draft_issue}/schedule",
        data={"csrf_token": token, "at": "2030-01-07T09:00"},
    )
    page = editor.post(f"/admin/issues/{draft_issue}/unschedule", data={"csrf_token": token})
    assert "back to approved" in page.text and "status-approved" in page.text
    assert "Send now" in page.text
    with transaction() as session:
        issue = repository.get(session, draft_issue)
        assert issue is not None
        assert issue.status is IssueStatus.APPROVED and issue.scheduled_at is None
        assert issue.approved_at is not None and issue.rendered_at is not None


def test_matchups_move_up_and_down_without_typing_positions(
    editor: TestClient, draft_issue: int
) -> None:
    start = _order(draft_issue)
    assert all(pinned is None for _, pinned in start)
    first, second, third = (slug for slug, _ in start)
    fields = _form(editor.get(f"/admin/issues/{draft_issue}").text)
    assert "position" not in fields
    fields["summary"][2] = "Typed before pressing Up: kept."
    moved = editor.post(
        f"/admin/issues/{draft_issue}/edit",
        data={**fields, "move": f"{second} up"},
        follow_redirects=False,
    )
    assert moved.headers["location"].endswith(f"#matchup-{second}")
    assert _order(draft_issue) == [(second, 1), (first, 2), (third, 3)]
    page = editor.get(moved.headers["location"]).text
    assert "Moved up." in page and "Typed before pressing Up: kept." in page
    fields = _form(page)
    editor.post(f"/admin/issues/{draft_issue}/edit", data={**fields, "move": f"{second} down"})
    editor.post(f"/admin/issues/{draft_issue}/edit", data={**fields, "move": f"{second} down"})
    assert [slug for slug, _ in _order(draft_issue)] == [first, third, second]
    # At the bottom already: nothing moves, nothing breaks.
    editor.post(f"/admin/issues/{draft_issue}/edit", data={**fields, "move": f"{second} down"})
    assert [slug for slug, _ in _order(draft_issue)] == [first, third, second]
    back = editor.post(
        f"/admin/issues/{draft_issue}/edit",
        data={**_form(editor.get(f"/admin/issues/{draft_issue}").text), "move": "auto"},
    )
    assert "automatic order" in back.text
    assert _order(draft_issue) == start
    bad = editor.post(f"/admin/issues/{draft_issue}/edit", data={**fields, "move": "sideways"})
    assert bad.status_code == 400


def test_a_save_comes_back_to_the_edit_section(editor: TestClient, draft_issue: int) -> None:
    fields = _form(editor.get(f"/admin/issues/{draft_issue}").text)
    fields["intro"] = ["Saved from the bottom of the page."]
    saved = editor.post(f"/admin/issues/{draft_issue}/edit", data=fields, follow_redirects=False)
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/admin/issues/{draft_issue}#edit-h"
    page = editor.get(saved.headers["location"]).text
    assert 'id="edit-h"' in page


@pytest.mark.parametrize("route", ["send", "unschedule", "preview.html", "preview.txt"])
def test_new_editor_routes_need_a_session(anon: TestClient, draft_issue: int, route: str) -> None:
    response = anon.post(f"/admin/issues/{draft_issue}/{route}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_send_now_without_a_scheduler_says_so_and_skipped_people_are_shown_with_why(
    editor: TestClient, draft_issue: int
) -> None:
    """The web app queues; `python scheduler.py` sends. Until a scheduler has ticked the page
    says nothing goes out; once it has, the warning goes, and people who could no longer be
    mailed are counted as skipped with the reason, on the page, its JSON and the stats."""
    from newsletter.scheduling.runner import Scheduler
    from subscribers import service

    with transaction() as session:
        for n in range(2):
            service.add_by_admin(session, f"reader{n}@example.org", "")
        later, _ = service.add_by_admin(session, "paused.later@example.org", "")
    token = csrf_from(editor.get(f"/admin/issues/{draft_issue}").text)
    editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    editor.post(f"/admin/issues/{draft_issue}/send", data={"csrf_token": token, "confirmed": 3})
    page = editor.get(f"/admin/issues/{draft_issue}").text
    assert 'id="scheduler-idle"' in page and "No scheduler has ever run" in page
    assert "`python scheduler.py`" in page
    with transaction() as session:
        service.set_paused(session, later.id, True)  # after the snapshot, before the send

    Scheduler().tick()

    page = editor.get(f"/admin/issues/{draft_issue}").text
    assert 'id="scheduler-idle"' not in page
    assert "3 of 3 done: 2 sent, 0 failed, 0 uncertain, 1 skipped." in page
    reasons = page.split('id="skipped-reasons"', 1)[1].split("</ul>", 1)[0]
    assert "1 ×" in reasons and "paused" in reasons
    progress = editor.get(f"/admin/issues/{draft_issue}/progress.json").json()
    assert (progress["sent"], progress["skipped"], progress["status"]) == (2, 1, "sent")
    stats = editor.get(f"/admin/issues/{draft_issue}/stats").text
    assert "0 uncertain, 1 skipped" in stats


def test_an_approved_issue_shows_when_the_weekly_run_plans_to_send_it(
    editor: TestClient, draft_issue: int
) -> None:
    from datetime import UTC, datetime, timedelta

    from newsletter.scheduling.models import RunStatus, SchedulerRun

    send_at = datetime(2030, 1, 2, 8, 0, tzinfo=UTC)
    with transaction() as session:
        session.add(
            SchedulerRun(
                run_key="weekly:test",
                week="2030-W01",
                slot_at=send_at - timedelta(days=1),
                status=RunStatus.DONE,
                issue_id=draft_issue,
                send_at=send_at,
            )
        )
    page = editor.get(f"/admin/issues/{draft_issue}").text
    planned = page.split('id="planned-send"', 1)[1].split("</dd>", 1)[0]
    assert "Wed 02 Jan 2030" in planned and "once approved" in planned
    token = csrf_from(page)
    editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    page = editor.get(f"/admin/issues/{draft_issue}").text
    assert "it goes out then on its own" in page
    # Approved and planned, with no scheduler running: the page says nothing will happen.
    assert 'id="scheduler-idle"' in page


def test_reloading_the_send_confirmation_goes_back_to_the_issue_and_sends_nothing(
    editor: TestClient, draft_issue: int
) -> None:
    from newsletter.sending.models import Delivery

    again = editor.get(f"/admin/issues/{draft_issue}/send", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == f"/admin/issues/{draft_issue}#actions-h"
    assert editor.get(again.headers["location"]).status_code == 200
    with transaction() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_send_now_through_sendgrid_without_a_postal_address_is_refused_before_queueing(
    editor: TestClient, draft_issue: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every mail must carry the sender's postal address; without it the page says so at once
    and nothing is queued (before, the deliveries were queued and no worker could send them)."""
    from newsletter.issues import repository
    from newsletter.issues.models import IssueStatus
    from newsletter.sending.models import Delivery
    from newsletter.settings import reset_settings
    from subscribers import service

    with transaction() as session:
        service.add_by_admin(session, "reader@example.org", "")
    token = csrf_from(editor.get(f"/admin/issues/{draft_issue}").text)
    editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "sendgrid")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test")
    monkeypatch.delenv("NEWSLETTER_POSTAL_ADDRESS", raising=False)
    reset_settings()
    refused = editor.post(
        f"/admin/issues/{draft_issue}/send", data={"csrf_token": token, "confirmed": 1}
    )
    assert "needs NEWSLETTER_POSTAL_ADDRESS" in refused.text
    with transaction() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        issue = repository.get(session, draft_issue)
        assert issue is not None and issue.status is IssueStatus.APPROVED

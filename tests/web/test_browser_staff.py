"""The editor's live preview and the admin's bulk actions, pressed in real Chromium."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from newsletter.db import transaction
from subscribers import listing
from tests.web.conftest import ADMIN, EDITOR
from tests.web.test_browser import check, page, server, sign_in  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def test_typing_in_the_editor_updates_both_previews_without_saving(
    server: str,  # noqa: F811
    page: Any,  # noqa: F811
    artifacts: Path,
    staff: None,
    draft_issue: int,
) -> None:
    from newsletter.issues import repository

    errors: list[str] = []
    # Script errors fail the test; a failed request is caught by its URL below (the browser's
    # own /favicon.ico probe is the crawl test's business, not this one's).
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(r.url) if r.status >= 400 else None)
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, server, EDITOR)
    page.goto(f"{server}/admin/issues/{draft_issue}")
    page.frame_locator(".preview-desktop iframe").locator("body").wait_for()
    # At 1280 px the form keeps a usable width beside a full 600 px desktop frame.
    form_box = page.locator("#edit-form").bounding_box()
    frame_box = page.locator(".preview-desktop iframe").bounding_box()
    assert form_box and frame_box, "form and frame laid out"
    assert form_box["width"] >= 500, form_box
    assert frame_box["width"] >= 600 and frame_box["x"] > form_box["x"] + form_box["width"]
    assert page.locator(".preview-mobile").is_hidden()
    page.get_by_label("Intro", exact=True).fill("Typed live, never saved.")
    for frame, switch in (("desktop", "Desktop, 600 px"), ("mobile", "Mobile, 375 px")):
        page.get_by_role("button", name=switch).click()
        assert page.get_by_role("button", name=switch).get_attribute("aria-pressed") == "true"
        located = page.frame_locator(f".preview-{frame} iframe")
        located.get_by_text("Typed live, never saved.").first.wait_for(timeout=10_000)
    assert page.locator(".preview-desktop").is_hidden()
    page.locator("#plain-text", has_text="Typed live, never saved.").wait_for()
    assert "unsaved changes" in page.locator("#preview-status").inner_text()
    check(page, artifacts, "editor-live-preview")
    with transaction() as session:
        issue = repository.get(session, draft_issue)
        assert issue is not None and issue.intro_override is None
    assert not errors, errors

    # Up moves the second matchup first, saves, and the page comes back at that matchup.
    second = page.locator("fieldset[id^=matchup-]").nth(1)
    slug = second.get_attribute("id")
    second.get_by_role("button", name=re.compile("up$")).click()
    page.wait_for_url(re.compile(rf"#{slug}$"))
    assert page.locator("fieldset[id^=matchup-]").first.get_attribute("id") == slug
    page.get_by_text("Moved up.").wait_for()


def test_the_admin_ticks_two_subscribers_and_confirms_unsubscribing_them(
    server: str,  # noqa: F811
    page: Any,  # noqa: F811
    artifacts: Path,
    staff: None,
) -> None:
    from subscribers import service
    from subscribers.models import SubscriberStatus

    with transaction() as session:
        for n in range(4):
            service.add_by_admin(session, f"reader{n}@example.org", f"Reader {n}")
        service.add_by_admin(session, "someone@example.net", "Someone Else")
    sign_in(page, server, ADMIN)
    page.goto(f"{server}/admin/subscribers")
    page.get_by_label("Address or name contains").fill("example.org")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("1–4 of 4 matching").wait_for()
    check(page, artifacts, "admin-subscribers-search")
    page.get_by_label("Choose reader1@example.org").check()
    page.get_by_label("Choose reader2@example.org").check()
    page.get_by_label("do").select_option("unsubscribe")
    page.get_by_role("button", name="Review…").click()
    page.get_by_role("heading", name="Unsubscribe 2 subscribers?").wait_for()
    check(page, artifacts, "admin-bulk-confirm")
    page.get_by_role("button", name="Yes, unsubscribe 2 subscribers").click()
    page.get_by_text("2 of 2 subscribers unsubscribed.").wait_for()
    with transaction() as session:
        found = {s.email: s.status for s in listing.list_subscribers(session, search="example.org")}
    assert found["reader1@example.org"] is SubscriberStatus.UNSUBSCRIBED
    assert found["reader2@example.org"] is SubscriberStatus.UNSUBSCRIBED
    assert found["reader0@example.org"] is SubscriberStatus.ACTIVE
    page.get_by_role("link", name="reader0@example.org").click()
    page.get_by_label("Name as it appears in greetings").fill("Reader Zero")
    page.get_by_role("button", name="Save name").click()
    page.get_by_text("Name saved: Reader Zero.").wait_for()
    check(page, artifacts, "admin-subscriber")

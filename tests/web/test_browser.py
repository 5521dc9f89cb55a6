"""End-to-end flows in real Chromium against the app served by uvicorn on a loopback port.

Each page visited is checked with axe-core (no serious or critical violation) and kept as a
screenshot in tests/artifacts/web/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from newsletter.db import transaction
from tests.sending.test_topics_send import TITLES, week
from tests.web.conftest import ADMIN, EDITOR, PASSWORD
from tests.web.world import free_port, live_server

__all__ = ["week"]  # the fixture of a week whose readers chose topics

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


@pytest.fixture
def server(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from newsletter.settings import reset_settings

    port = free_port()
    monkeypatch.setenv("NEWSLETTER_BASE_URL", f"http://127.0.0.1:{port}")
    reset_settings()
    with live_server(port) as base:
        yield base


@pytest.fixture
def page(browser: Any, artifacts: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


def check(page: Any, artifacts: Path, name: str) -> None:
    """Screenshot, then axe-core: no serious or critical violation on this page."""
    from axe_playwright_python.sync_playwright import Axe

    folder = artifacts / "web"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    results = Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: " + "; ".join(bad)


def sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/admin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/admin/issues"))


def _outbox(folder: Path) -> list[Message]:
    return [message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


def _body(message: Message, subtype: str) -> str:
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{subtype} part")


def test_editor_edits_previews_sends_a_test_and_approves(
    server: str, page: Any, artifacts: Path, staff: None, draft_issue: int, isolated_env: Path
) -> None:
    page.goto(f"{server}/login")
    check(page, artifacts, "login")
    sign_in(page, server, EDITOR)
    check(page, artifacts, "editor-issues")
    page.get_by_role("link", name=re.compile(r"\d{4}-W\d{2}")).first.click()
    desktop = page.frame_locator(".preview-desktop iframe")
    desktop.locator("body").wait_for()
    check(page, artifacts, "editor-issue")

    page.get_by_label("Subject", exact=True).fill("Our panel picks: a browser-tested subject")
    page.get_by_label("Intro", exact=True).fill("An intro typed in a real browser.")
    page.get_by_role("button", name="Save and preview").click()
    page.get_by_text("Saved;").wait_for()
    assert page.locator("#subject-now").inner_text() == "Our panel picks: a browser-tested subject"
    desktop = page.frame_locator(".preview-desktop iframe")
    desktop.get_by_text("An intro typed in a real browser.").first.wait_for()
    page.screenshot(path=str(artifacts / "web" / "editor-issue-edited.png"), full_page=True)
    page.locator(".preview-desktop iframe").screenshot(
        path=str(artifacts / "web" / "editor-preview-desktop.png")
    )
    page.get_by_role("button", name="Mobile, 375 px").click()  # one preview at a time
    mobile = page.frame_locator(".preview-mobile iframe")
    mobile.get_by_text("An intro typed in a real browser.").first.wait_for()
    width = page.locator(".preview-mobile iframe").bounding_box()["width"]
    assert 370 <= width <= 380
    assert "An intro typed in a real browser." in page.locator("pre.plain").inner_text()
    page.locator(".preview-mobile iframe").screenshot(
        path=str(artifacts / "web" / "editor-preview-mobile.png")
    )
    page.get_by_role("button", name="Desktop, 600 px").click()

    # The desktop frame is 600 px inside (an email's width), so the tool cards sit side by side.
    inner = desktop.locator("body").evaluate("() => window.innerWidth")
    assert inner == 600
    cards = desktop.locator(".nl-tool")
    first, second = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
    assert first and second and abs(first["y"] - second["y"]) < 2 and second["x"] > first["x"]

    assert page.get_by_label("Send a test to").input_value() == EDITOR
    page.get_by_role("button", name="Send test").click()
    page.get_by_text(f"Test sent to {EDITOR}.").wait_for()
    mails = _outbox(isolated_env / "outbox")
    assert len(mails) == 1 and mails[0]["To"] == EDITOR
    assert "An intro typed in a real browser." in _body(mails[0], "plain")

    page.get_by_role("button", name="Approve").click()
    page.get_by_text("approved: its content is frozen").wait_for()
    assert page.locator("h1 .status").inner_text() == "approved"
    check(page, artifacts, "editor-issue-approved")


def test_admin_imports_a_csv_and_finds_a_subscriber(
    server: str, page: Any, artifacts: Path, staff: None, tmp_path: Path
) -> None:
    sign_in(page, server, ADMIN)
    page.get_by_role("link", name="Subscribers", exact=True).click()
    check(page, artifacts, "admin-subscribers-empty")
    page.get_by_role("link", name="Import a CSV").click()
    csv_file = tmp_path / "readers.csv"
    rows = ["email,name"] + [f"reader{i}@example.com,Reader {i}" for i in range(40)]
    rows += ["ada.lovelace@example.org,Ada Lovelace", "broken-address,Nobody"]
    csv_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    page.get_by_label(re.compile("CSV file")).set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and check the columns").click()
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_role("heading", name="Report for readers.csv").wait_for()
    assert page.locator("#imported").inner_text() == "41"
    assert page.get_by_role("cell", name="broken-address").is_visible()
    check(page, artifacts, "admin-import-report")

    page.get_by_role("link", name="Subscribers", exact=True).click()
    page.get_by_label("Address or name").fill("lovelace")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="ada.lovelace@example.org").click()
    page.get_by_role("heading", name="ada.lovelace@example.org").wait_for()
    check(page, artifacts, "admin-subscriber")
    for name in ("Suppressions", "Users"):
        page.get_by_role("link", name=name, exact=True).click()
        check(page, artifacts, f"admin-{name.lower()}")


def test_reader_subscribes_confirms_by_mail_and_unsubscribes(
    server: str, page: Any, artifacts: Path, isolated_env: Path, browser: Any
) -> None:
    from subscribers.service import find

    phone = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = phone.new_page()
    page.goto(f"{server}/subscribe")
    check(page, artifacts, "reader-subscribe")
    page.get_by_label(re.compile("^Email", re.I)).fill("reader@example.com")
    page.get_by_role("button", name=re.compile("subscribe", re.I)).click()
    page.wait_for_load_state()
    check(page, artifacts, "reader-check-inbox")

    mails = _outbox(isolated_env / "outbox")
    assert len(mails) == 1 and mails[0]["To"] == "reader@example.com"
    link = re.search(rf"{re.escape(server)}/confirm/[\w.~-]+", _body(mails[0], "plain"))
    assert link, "no confirmation link in the mail"
    page.goto(link.group(0))
    check(page, artifacts, "reader-confirm")
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    check(page, artifacts, "reader-confirmed")
    with transaction() as session:
        subscriber = find(session, "reader@example.com")
        assert subscriber is not None and subscriber.status.value == "active"

    page.get_by_role("link", name=re.compile("preferences", re.I)).first.click()
    page.wait_for_load_state()
    check(page, artifacts, "reader-preferences")
    # The same token opens the unsubscribe page (the visible link at the foot of every issue).
    token = page.url.rsplit("/p/", 1)[1]
    page.goto(f"{server}/u/{token}")
    check(page, artifacts, "reader-unsubscribe")
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_load_state()
    check(page, artifacts, "reader-unsubscribed")
    with transaction() as session:
        subscriber = find(session, "reader@example.com")
        assert subscriber is not None and subscriber.status.value == "unsubscribed"
    phone.close()


def test_public_archive_pages_are_accessible(
    server: str, page: Any, artifacts: Path, draft_issue: int
) -> None:
    from tests.web.conftest import mark_sent

    mark_sent(draft_issue)
    page.goto(f"{server}/issues")
    check(page, artifacts, "reader-archive")
    page.get_by_role("heading", level=2).get_by_role("link").first.click()
    page.wait_for_load_state()
    assert "/issues/" in page.url
    page.screenshot(path=str(artifacts / "web" / "reader-web-version.png"), full_page=True)


def test_reader_ticks_topics_on_the_form_and_changes_them_on_the_preferences_page(
    server: str, page: Any, artifacts: Path, isolated_env: Path
) -> None:
    """The published matchups' categories are the boxes; what a reader ticks is kept."""
    from datetime import timedelta

    from newsletter.matchups.service import categories, import_matchup
    from newsletter.orm import utcnow
    from subscribers.service import find, topics_of
    from tests.issues.helpers import example_pages

    with transaction() as session:
        for data in example_pages():
            import_matchup(session, data, utcnow() - timedelta(hours=1))
        offered = categories(session)
    assert len(offered) >= 2, offered
    first, second = offered[0], offered[1]
    page.goto(f"{server}/subscribe")
    page.get_by_label(re.compile("^Email", re.I)).fill("reader@example.com")
    page.get_by_role("checkbox", name=first).check()
    check(page, artifacts, "reader-subscribe-topics")
    page.get_by_role("button", name=re.compile("subscribe", re.I)).click()
    page.wait_for_load_state()
    mails = _outbox(isolated_env / "outbox")
    link = re.search(rf"{re.escape(server)}/confirm/[\w.~-]+", _body(mails[-1], "plain"))
    assert link, "no confirmation link in the mail"
    page.goto(link.group(0))
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    page.get_by_role("link", name=re.compile("preferences", re.I)).first.click()
    page.wait_for_load_state()
    assert page.get_by_role("checkbox", name=first).is_checked()
    assert not page.get_by_role("checkbox", name=second).is_checked()
    page.get_by_role("checkbox", name=first).uncheck()
    page.get_by_role("checkbox", name=second).check()
    page.get_by_role("button", name="Save topics").click()
    page.wait_for_load_state()
    assert f"you get the matchups in {second}" in page.inner_text("main")
    assert page.get_by_role("checkbox", name=second).is_checked()
    check(page, artifacts, "reader-preferences-topics")
    with transaction() as session:
        subscriber = find(session, "reader@example.com")
        assert subscriber is not None and topics_of(session, subscriber.id) == [second]


def test_editor_previews_the_issue_as_a_reader_of_chosen_topics_gets_it(
    server: str, page: Any, artifacts: Path, staff: None, week: dict[str, Any]
) -> None:
    sign_in(page, server, EDITOR)
    page.goto(f"{server}/admin/issues/{week['issue_id']}")
    desktop = page.frame_locator(".preview-desktop iframe")
    desktop.get_by_text(TITLES["writing"]).first.wait_for()
    form = page.locator("#topic-preview")
    form.get_by_label("Video").check()
    form.get_by_role("button", name="Show what they get").click()
    page.wait_for_url(re.compile(r"topics=Video"))
    status = page.locator("#preview-status").inner_text()
    assert "As readers of Video get it: 2 of 4 matchups" in status
    desktop = page.frame_locator(".preview-desktop iframe")
    desktop.get_by_text(TITLES["video"]).first.wait_for()
    frame_text = desktop.locator("body").inner_text()
    assert TITLES["mixed"] in frame_text and TITLES["writing"] not in frame_text
    assert TITLES["dev"] not in page.locator("pre.plain").inner_text()
    assert page.locator("#topic-preview").get_by_label("Video").is_checked()
    check(page, artifacts, "editor-issue-topic-preview")

    # Typing with the topics ticked: the frames and the text follow, still as those readers
    # get it, and nothing is saved.
    page.get_by_label("Intro", exact=True).fill("Only the video readers' intro, unsaved.")
    desktop.get_by_text("Only the video readers' intro, unsaved.").first.wait_for()
    frame_text = desktop.locator("body").inner_text()
    assert TITLES["video"] in frame_text and TITLES["mixed"] in frame_text
    assert TITLES["writing"] not in frame_text and TITLES["dev"] not in frame_text
    plain = page.locator("pre.plain")
    page.wait_for_function(
        "() => document.querySelector('pre.plain').textContent.includes('unsaved.')"
    )
    assert TITLES["writing"] not in plain.inner_text()
    # Leaving one of their two matchups out shows them the other alone...
    page.locator("fieldset", has_text=TITLES["mixed"]).get_by_label(
        "Leave out of this issue"
    ).check()
    page.wait_for_function(
        "t => !document.querySelector('pre.plain').textContent.includes(t)", arg=TITLES["mixed"]
    )
    assert TITLES["video"] in plain.inner_text()
    desktop.get_by_text(TITLES["video"]).first.wait_for()
    assert TITLES["mixed"] not in desktop.locator("body").inner_text()
    # ...and both out, that they would get no mail this week.
    page.locator("fieldset", has_text=TITLES["video"]).get_by_label(
        "Leave out of this issue"
    ).check()
    desktop.get_by_text("Readers of Video get no mail this week").wait_for()
    page.wait_for_function(
        "() => document.querySelector('pre.plain').textContent.includes('get no mail')"
    )
    page.reload()
    assert "unsaved" not in page.locator("pre.plain").inner_text()
    assert page.get_by_label("Intro", exact=True).input_value() != (
        "Only the video readers' intro, unsaved."
    )

    page.get_by_role("link", name="The whole issue").click()
    page.frame_locator(".preview-desktop iframe").get_by_text(TITLES["writing"]).first.wait_for()


def test_admin_makes_a_segment_acts_on_it_and_an_editor_sends_to_it(
    server: str, browser: Any, artifacts: Path, staff: None, week: dict[str, Any], tmp_path: Path
) -> None:
    """Segments (issue 17) by the buttons: the admin saves one from the form, opens its members
    and pauses them in bulk; an editor makes it the audience of the week's issue."""
    from tests.subscribers.exports import MC_BASE, Export, _mc
    from tests.subscribers.helpers import cli

    export = Export(
        "mailchimp",
        "subscribed_members_export_b1.csv",
        MC_BASE,
        [
            ("active", _mc("ann@mc.example", "Ann", "", '"VIP"')),
            ("active", _mc("bo@mc.example", "Bo", "", '"VIP","Beta"')),
            ("active", _mc("cy@mc.example", "Cy", "", '"Beta"')),
        ],
        bom=True,
    )
    path = tmp_path / export.filename
    path.write_bytes(export.content())
    assert cli("subscribers", "import", str(path)).exit_code == 0

    admin = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(admin, server, ADMIN)
    admin.get_by_role("link", name="Segments", exact=True).click()
    admin.get_by_label("Name").fill("VIPs")
    admin.get_by_label("active", exact=True).check()
    admin.get_by_label("VIP", exact=True).check()
    admin.get_by_role("button", name="Save segment").click()
    admin.get_by_text("Segment “VIPs” saved: 2 subscribers now.").wait_for()
    check(admin, artifacts, "admin-segment")
    admin.get_by_role("link", name="list, export, act on them").click()
    admin.get_by_text("in segment “VIPs”").first.wait_for()
    assert admin.get_by_role("link", name="ann@mc.example").is_visible()
    assert admin.get_by_role("link", name="cy@mc.example").count() == 0
    check(admin, artifacts, "admin-subscribers-segment")
    admin.get_by_label(re.compile("everyone matching")).check()
    admin.get_by_label("do").select_option("pause")
    admin.get_by_role("button", name="Review…").click()
    admin.get_by_role("heading", name="Pause mail to 2 subscribers?").wait_for()
    admin.get_by_role("button", name=re.compile("Yes, pause mail to 2")).click()
    admin.get_by_text("2 of 2 subscribers paused.").wait_for()
    admin.context.close()

    editor = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(editor, server, EDITOR)
    editor.goto(f"{server}/admin/issues/{week['issue_id']}")
    editor.get_by_label("Send to").select_option(label="Segment: VIPs")
    editor.get_by_role("button", name="Change audience").click()
    editor.get_by_text("now goes to segment “VIPs”: 0 subscribers today.").wait_for()
    # Both are paused now: the page says none of the members would get it.
    assert "0 of its members would get it now" in editor.locator("#audience-now").inner_text()
    check(editor, artifacts, "editor-issue-audience")
    editor.context.close()


def test_an_editor_runs_a_subject_test_and_sends_the_winner_by_hand(
    server: str, browser: Any, artifacts: Path, staff: None, week: dict[str, Any]
) -> None:
    """Subject tests (issue 17) by the buttons: the editor gives two subjects and a share on the
    issue's page, approves and sends; the share gets its subjects (by the hash), each reader
    still only their topics' matchups; the editor reads the figures and sends subject 2 to the
    rest. Every reader gets one mail, with the subject their delivery names."""
    import os
    from email import policy

    from newsletter.audience import split
    from newsletter.sending.worker import run_until_done
    from tests.sending.test_topics_send import READERS, _got

    issue_id = week["issue_id"]
    subjects = ["Five verdicts, one winner each", "Which AI tool should you ship this week?"]
    editor = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(editor, server, EDITOR)
    editor.goto(f"{server}/admin/issues/{issue_id}")
    editor.get_by_label("Subject 1", exact=True).fill(subjects[0])
    editor.get_by_label("Subject 2", exact=True).fill(subjects[1])
    editor.get_by_label("Test share (% of the audience)").fill("50")
    editor.get_by_label("Winner chosen after").fill("2h")
    editor.get_by_role("button", name="Start a subject test").click()
    editor.get_by_text("Subject test saved for issue").wait_for()
    assert "approval was withdrawn" in editor.locator(".notice").first.inner_text()
    check(editor, artifacts, "editor-subject-test-set")
    editor.get_by_role("button", name="Approve").click()
    editor.get_by_role("button", name="Send now…").click()
    editor.get_by_text("a test of 2 subjects").wait_for()
    editor.get_by_role("button", name=re.compile("Yes, send to")).click()
    editor.get_by_text("subject test to 50%").wait_for()
    run_until_done(issue_id, worker_id="browser-test-worker")

    with transaction() as session:
        from sqlalchemy import select

        from subscribers.models import Subscriber

        ids = {e: i for e, i in session.execute(select(Subscriber.email, Subscriber.id))}
    mailed = {a for a, (_, gets) in READERS.items() if gets is not None}
    share = {a for a in mailed if split.in_share(issue_id, ids[a], 50)}
    assert share and share != mailed, "the hash should split these readers; pick another share"
    folder = Path(os.environ["NEWSLETTER_OUTBOX_DIR"])

    def outbox() -> dict[str, Any]:
        found: dict[str, Any] = {}
        for path in sorted(folder.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            address = message["To"].addresses[0].addr_spec
            assert address not in found, f"{address} was mailed twice"
            found[address] = message
        return found

    got = outbox()
    assert set(got) == share
    for address, message in got.items():
        number = split.subject_number(issue_id, ids[address], 2)
        assert str(message["Subject"]) == subjects[number - 1]
        assert _got(message) == READERS[address][1], address  # still their topics' matchups

    editor.reload()
    table = editor.locator("#subject-test-figures")
    table.wait_for()
    assert "the 50% share of the audience" in editor.locator("#subject-test-now").inner_text()
    check(editor, artifacts, "editor-subject-test-testing")
    editor.get_by_role("button", name="Send subject 2 to everyone else now").click()
    editor.get_by_text("goes to everyone else").first.wait_for()
    assert "Subject 2 won (chosen by hand)" in editor.locator("#subject-test-now").inner_text()
    run_until_done(issue_id, worker_id="browser-test-worker")
    got = outbox()
    assert set(got) == mailed
    for address, message in got.items():
        number = split.subject_number(issue_id, ids[address], 2) if address in share else 2
        assert str(message["Subject"]) == subjects[number - 1], address
        assert _got(message) == READERS[address][1], address
    editor.reload()
    assert "(winner)" in editor.locator("#subject-test-figures").inner_text()
    check(editor, artifacts, "editor-subject-test-decided")
    editor.context.close()

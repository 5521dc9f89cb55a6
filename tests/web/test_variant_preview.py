"""The editor previews the issue as a reader of some topics gets it (issue 17): in the
service, at the CLI, on the issue page (its frames followed as a browser would) and in
Chromium; before the send it is rendered for the page, after it the variant the send froze,
with the subject each reader was sent."""

from __future__ import annotations

import json
import os
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.matchups.models import Matchup
from newsletter.matchups.service import TopicError
from newsletter.sending.service import start_send
from newsletter.sending.worker import run_until_done
from tests.sending.test_topics_send import READERS, TITLES, _by_reader, week
from tests.subscribers.helpers import cli
from tests.web.world import body, mails, recipient

__all__ = ["week"]  # the fixture, imported for these tests

# Topics as an editor may type them, and the matchups they lead to.
CASES: list[tuple[list[str], set[str]]] = [
    (["Developer Tools"], {"dev"}),
    (["  video "], {"video", "mixed"}),
    (["Ｖｉｄｅｏ", "finance"], {"video", "mixed"}),  # full-width letters, another case
    (["Finance"], {"mixed"}),
    (["Writing", "Developer Tools", "Video"], {"writing", "dev", "video", "mixed"}),
]


def _outbox() -> list[Any]:
    return mails(Path(os.environ["NEWSLETTER_OUTBOX_DIR"]))


def _shown(html: str) -> set[str]:
    return {key for key, title in TITLES.items() if title in unescape(html)}


@pytest.mark.parametrize(("topics", "wanted"), CASES)
def test_before_the_send_each_set_of_topics_shows_its_matchups(
    db: Session, week: dict[str, Any], topics: list[str], wanted: set[str]
) -> None:
    issue_id = week["issue_id"]
    with transaction() as session:
        shown = issues.variant_preview(session, issue_id, topics)
        whole_subject = issues.frozen_content(session, issue_id, tracked=False).subject
    assert _shown(shown.html) == wanted == _shown(shown.text)
    assert len(shown.matchups) == len(wanted)
    assert shown.whole == (wanted == set(TITLES))
    assert "{{" not in shown.html and "{{" not in shown.text  # the preview token is filled
    if shown.whole:
        assert shown.subject == whole_subject
    else:
        assert shown.subject != whole_subject and not shown.frozen
        # Rendered for the page: nothing was frozen or recorded by looking.
        with transaction() as session:
            assert issues.variant_summaries(session, issue_id) == []


def test_a_topic_with_nothing_this_week_shows_no_mail_and_a_stranger_name_is_refused(
    db: Session, week: dict[str, Any]
) -> None:
    issue_id = week["issue_id"]
    _leave_out_writing(issue_id)
    with transaction() as session:
        nothing = issues.variant_preview(session, issue_id, ["writing"])
        assert nothing.empty and nothing.topics == ["Writing"] and nothing.html == ""
        for name in ("Cooking", "Vіdeo", "x" * 300):  # "Vіdeo": a Cyrillic і
            with pytest.raises(TopicError, match=r"is not a topic; the topics are: .*Video"):
                issues.variant_preview(session, issue_id, [name])


def _leave_out_writing(issue_id: int) -> None:
    """Leave the Writing matchup out of the issue: Writing is still a topic (the site published
    it), with nothing in it this week."""
    with transaction() as session:
        slug = session.scalars(select(Matchup.slug).where(Matchup.title == TITLES["writing"]))
        issues.edit_matchup(session, issue_id, slug.one(), excluded=True)


def test_after_the_send_the_preview_is_what_each_reader_was_sent(
    db: Session, week: dict[str, Any]
) -> None:
    issue_id = week["issue_id"]
    with transaction() as session:
        assert start_send(session, issue_id)
    run_until_done(issue_id, worker_id="test:1")
    got = _by_reader()
    for address, (topics, wanted) in READERS.items():
        if wanted is None or not topics:
            continue
        with transaction() as session:
            shown = issues.variant_preview(session, issue_id, topics)
        sent = got[address]
        assert _shown(shown.html) == wanted == _shown(body(sent, "html") or ""), address
        assert shown.subject == str(sent["Subject"]), address
        assert shown.frozen, address


def test_the_cli_writes_a_readers_copy_says_when_there_is_none_and_refuses_a_stranger(
    db: Session, week: dict[str, Any], tmp_path: Path
) -> None:
    issue_id = str(week["issue_id"])
    html, text = tmp_path / "video.html", tmp_path / "video.txt"
    result = cli(
        "issue",
        "preview",
        issue_id,
        "--topic",
        "video",
        "--html",
        str(html),
        "--text",
        str(text),
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["topics"] == ["Video"] and data["whole_issue"] is False
    assert len(data["matchups"]) == 2 and data["frozen"] is False
    assert _shown(html.read_text()) == {"video", "mixed"} == _shown(text.read_text())
    assert [w["path"] for w in data["written"]] == [str(html), str(text)]
    assert data["subject"] and data["subject"] in unescape(html.read_text())

    result = cli("issue", "preview", issue_id, "--topic", "Developer Tools", "--text", str(text))
    assert result.exit_code == 0, result.output
    assert "readers of Developer Tools get 1 matchup(s)" in result.output
    assert _shown(text.read_text()) == {"dev"}

    result = cli("issue", "preview", issue_id, "--topic", "Vіdeo", "--html", str(html))
    assert result.exit_code != 0
    assert "'Vіdeo' is not a topic; the topics are:" in result.output
    assert _shown(html.read_text()) == {"video", "mixed"}  # left as it was


def _frame_sources(page: str) -> list[str]:
    return [unescape(src) for src in re.findall(r'<iframe[^>]* src="([^"]+)"', page)]


@pytest.mark.parametrize(("topics", "wanted"), CASES[:2])
def test_the_issue_page_shows_the_topics_and_its_frames_load_that_readers_copy(
    editor: TestClient, week: dict[str, Any], topics: list[str], wanted: set[str]
) -> None:
    issue_id = week["issue_id"]
    page = editor.get(f"/admin/issues/{issue_id}", params={"topics": topics})
    assert page.status_code == 200
    for name in ("Developer Tools", "Finance", "Video", "Writing"):
        assert f'name="topics" value="{name}"' in page.text
    assert "As readers of" in page.text
    sources = _frame_sources(page.text)
    assert len(sources) == 2 and all("topics=" in s for s in sources)
    for source in sources:
        frame = editor.get(source)  # followed, as the browser loads the frame
        assert frame.status_code == 200 and _shown(frame.text) == wanted
    plain = re.search(r'<pre class="plain"[^>]*>(.*?)</pre>', page.text, re.S)
    assert plain is not None and _shown(plain[1]) == wanted


def test_the_page_and_its_frames_say_when_readers_of_a_topic_get_nothing(
    editor: TestClient, week: dict[str, Any]
) -> None:
    issue_id = week["issue_id"]
    _leave_out_writing(issue_id)
    # Writing is still a topic readers chose: its box is there to tick.
    assert 'name="topics" value="Writing"' in editor.get(f"/admin/issues/{issue_id}").text
    page = editor.get(f"/admin/issues/{issue_id}?topics=Writing")
    assert page.status_code == 200
    assert "Readers of Writing get no mail this week" in page.text
    assert _frame_sources(page.text) == []
    frame = editor.get(f"/admin/issues/{issue_id}/preview.html?topics=Writing")
    assert frame.status_code == 200 and "Readers of Writing get no mail this week" in frame.text
    assert _shown(frame.text) == set()


@pytest.mark.parametrize(
    "query",
    [
        "topics=Vid%00eo",
        "topics=%ED%A0%80",  # a lone surrogate, UTF-8 encoded
        "topics=V%D1%96deo",  # a Cyrillic і
        "topics=" + "v" * 10_000,
        "&".join(["topics=Video"] * 101),
        "topics=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ],
)
def test_what_an_attacker_puts_in_topics_gets_a_400_not_a_500(
    editor: TestClient, week: dict[str, Any], query: str
) -> None:
    issue_id = week["issue_id"]
    for path in (f"/admin/issues/{issue_id}", f"/admin/issues/{issue_id}/preview.html"):
        response = editor.get(f"{path}?{query}", headers={"Accept": "text/html"})
        assert response.status_code in (400, 422), (path, query, response.status_code)
        # The input layer answers NUL and surrogates in JSON before any page runs; a page's
        # own refusal is HTML, with what was typed escaped.
        kind = response.headers["content-type"]
        assert kind.startswith(("text/html", "application/json")), kind
        if kind.startswith("text/html"):
            assert "<script>alert" not in response.text


def test_a_stranger_is_sent_to_sign_in(anon: TestClient, week: dict[str, Any]) -> None:
    response = anon.get(
        f"/admin/issues/{week['issue_id']}/preview.html?topics=Video", follow_redirects=False
    )
    assert response.status_code in (302, 303, 401, 403)


def test_a_test_copy_for_readers_of_a_topic_is_their_copy_at_the_cli_and_on_the_page(
    editor: TestClient, week: dict[str, Any]
) -> None:
    from tests.web.conftest import form_token

    issue_id = week["issue_id"]
    result = cli(
        "issue", "send-test", str(issue_id), "--to", "me@example.com", "--topic", "video", "--json"
    )
    assert result.exit_code == 0, result.output
    with transaction() as session:
        wanted_subject = issues.variant_preview(session, issue_id, ["Video"]).subject
    page = f"/admin/issues/{issue_id}?topics=Finance"
    response = editor.post(
        f"/admin/issues/{issue_id}/test",
        data={
            "csrf_token": form_token(editor, page),
            "to": "you@example.com",
            "topics": ["Finance"],
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/admin/issues/{issue_id}?topics=Finance#")
    back = editor.get(response.headers["location"])
    assert "Test sent to you@example.com (the copy readers of Finance get)." in back.text
    mails = {recipient(m): m for m in _outbox()}
    assert str(mails["me@example.com"]["Subject"]) == f"[Test] {wanted_subject}"
    assert _shown(body(mails["me@example.com"], "html") or "") == {"video", "mixed"}
    assert _shown(body(mails["you@example.com"], "plain") or "") == {"mixed"}

    # Readers of a topic with nothing this week: nothing to test, and the page says so.
    _leave_out_writing(issue_id)
    result = cli(
        "issue", "send-test", str(issue_id), "--to", "me@example.com", "--topic", "Writing"
    )
    assert result.exit_code != 0 and "readers of Writing get no mail this week" in result.output
    response = editor.post(
        f"/admin/issues/{issue_id}/test",
        data={"csrf_token": form_token(editor, page), "to": "you@example.com", "topics": ["Vіdeo"]},
    )
    assert response.status_code == 200, response.text[:300]
    assert "is not a topic; the topics are:" in unescape(response.text)
    assert len(_outbox()) == 2


def test_the_pages_test_copy_for_two_topics_is_the_copy_readers_of_both_get(
    editor: TestClient, week: dict[str, Any]
) -> None:
    from tests.web.conftest import form_token

    issue_id = week["issue_id"]
    page = f"/admin/issues/{issue_id}?topics=Developer+Tools&topics=Finance"
    shown = editor.get(page)
    assert shown.text.count('<input type="hidden" name="topics"') == 2
    response = editor.post(
        f"/admin/issues/{issue_id}/test",
        data={
            "csrf_token": form_token(editor, page),
            "to": "you@example.com",
            "topics": ["Developer Tools", "Finance"],
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "topics=Developer+Tools&topics=Finance" in response.headers["location"]
    [mail] = _outbox()
    assert _shown(body(mail, "html") or "") == {"dev", "mixed"}
    with transaction() as session:
        wanted = issues.variant_preview(session, issue_id, ["Developer Tools", "Finance"])
    assert str(mail["Subject"]) == f"[Test] {wanted.subject}"
    too_many = editor.post(
        f"/admin/issues/{issue_id}/test",
        data={"csrf_token": form_token(editor, page), "topics": ["Finance"] * 101},
    )
    assert too_many.status_code == 400 and len(_outbox()) == 1


def test_a_blank_topic_at_the_cli_is_refused_not_taken_for_every_topic(
    db: Session, week: dict[str, Any], tmp_path: Path
) -> None:
    issue_id = str(week["issue_id"])
    for args in (
        ["issue", "preview", issue_id, "--topic", " ", "--text", str(tmp_path / "t.txt")],
        ["issue", "send-test", issue_id, "--to", "me@example.com", "--topic", ""],
    ):
        result = cli(*args)
        assert result.exit_code != 0 and "--topic names no topic (blank)" in result.output
    assert not (tmp_path / "t.txt").exists() and _outbox() == []


# --- the unsaved edits, as readers of the ticked topics would get them -----------------------


@pytest.mark.parametrize(("topics", "wanted"), CASES)
def test_an_untouched_draft_previews_exactly_what_the_ticked_topics_get(
    db: Session, week: dict[str, Any], topics: list[str], wanted: set[str]
) -> None:
    """The live preview and the page's own are one render: the form as it stands (nothing
    typed) reads, byte for byte, as the copy those readers are sent (proved against the outbox
    by the tests above)."""
    issue_id = week["issue_id"]
    with transaction() as session:
        saved = issues.variant_preview(session, issue_id, topics)
        draft = issues.draft_variant_preview(session, issue_id, issues.Draft(), topics)
    assert (draft.html, draft.text, draft.subject) == (saved.html, saved.text, saved.subject)
    assert (draft.matchups, draft.whole, draft.topics) == (
        saved.matchups,
        saved.whole,
        saved.topics,
    )
    assert _shown(draft.html) == wanted


def _live_urls(page: str) -> tuple[str, str]:
    """Where the edit form posts as the editor types (editor.js reads these attributes)."""
    html = re.search(r'data-live-preview="([^"]+)"', page)
    text = re.search(r'data-live-text="([^"]+)"', page)
    assert html is not None and text is not None, "the form has no live preview"
    return unescape(html[1]), unescape(text[1])


def test_typing_with_topics_ticked_previews_their_copy_of_the_unsaved_edits(
    editor: TestClient, week: dict[str, Any]
) -> None:
    from tests.web.test_editor import _form
    from tests.web.test_editor_live import _snapshot

    issue_id = week["issue_id"]
    page = editor.get(f"/admin/issues/{issue_id}", params={"topics": ["Video"]}).text
    html_url, text_url = _live_urls(page)
    assert "topics=Video" in html_url and "topics=Video" in text_url
    # "Preview without saving" posts the same form to the same place.
    assert f'formaction="{html_url}"'.replace("&", "&amp;") in page
    fields = _form(page)
    fields["intro"] = ["An intro typed for the video readers."]
    before = _snapshot()
    shown = editor.post(html_url, data=fields)
    assert shown.status_code == 200 and "An intro typed for the video readers." in shown.text
    assert _shown(shown.text) == {"video", "mixed"}
    assert "sandbox" in shown.headers["content-security-policy"]
    text = editor.post(text_url, data=fields)
    assert text.headers["content-type"].startswith("text/plain")
    assert "An intro typed for the video readers." in text.text
    assert _shown(text.text) == {"video", "mixed"}
    # Leaving out a matchup they would get; leaving out both: no mail for them this week.
    with transaction() as session:
        slugs = dict(session.execute(select(Matchup.title, Matchup.slug)).tuples().all())
    fields["excluded"] = [slugs[TITLES["mixed"]]]
    assert _shown(editor.post(html_url, data=fields).text) == {"video"}
    fields["excluded"] = [slugs[TITLES["mixed"]], slugs[TITLES["video"]]]
    none = editor.post(html_url, data=fields)
    assert none.status_code == 200 and "Readers of Video get no mail this week" in none.text
    assert "get no mail this week" in editor.post(text_url, data=fields).text
    assert _snapshot() == before
    assert "An intro typed" not in editor.get(f"/admin/issues/{issue_id}/preview.html").text
    # A matchup the saved issue leaves out, brought back in the form (unsaved), is theirs.
    with transaction() as session:
        issues.edit_matchup(session, issue_id, slugs[TITLES["mixed"]], excluded=True)
    page = editor.get(f"/admin/issues/{issue_id}", params={"topics": ["Video"]}).text
    fields = _form(page)
    assert fields["excluded"] == [slugs[TITLES["mixed"]]]
    assert _shown(editor.post(html_url, data=fields).text) == {"video"}
    del fields["excluded"]
    assert _shown(editor.post(html_url, data=fields).text) == {"video", "mixed"}


def test_with_no_mail_for_the_ticked_topics_the_form_has_no_live_preview(
    editor: TestClient, week: dict[str, Any]
) -> None:
    issue_id = week["issue_id"]
    _leave_out_writing(issue_id)
    page = editor.get(f"/admin/issues/{issue_id}?topics=Writing").text
    assert "data-live-preview" not in page and "Preview without saving" not in page
    assert "there is no preview to follow your edits" in page


@pytest.mark.parametrize(
    "query",
    [
        "topics=Vid%00eo",
        "topics=%ED%A0%80",
        "topics=V%D1%96deo",
        "topics=" + "v" * 10_000,
        "&".join(["topics=Video"] * 101),
        "topics=No+such+topic",
        "topics=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ],
)
def test_what_an_attacker_puts_in_the_live_previews_topics_gets_a_400_not_a_500(
    editor: TestClient, week: dict[str, Any], query: str
) -> None:
    from tests.web.test_editor import _form

    issue_id = week["issue_id"]
    fields = _form(editor.get(f"/admin/issues/{issue_id}").text)
    for suffix in ("preview.html", "preview.txt"):
        response = editor.post(
            f"/admin/issues/{issue_id}/{suffix}?{query}",
            data=fields,
            headers={"Accept": "text/html"},
        )
        assert response.status_code in (400, 422), (suffix, query, response.status_code)
        assert "<script>alert" not in response.text
        assert "Traceback" not in response.text


def test_with_a_subject_test_the_preview_names_the_tests_subjects_not_the_variants(
    editor: TestClient, week: dict[str, Any]
) -> None:
    """Readers of a variant get their subject of the test (the share's, or the winner), never
    the variant's own: the CLI, the page and the send's summary say so (they named the
    variant's subject, which nobody got)."""
    from newsletter.audience import subject_tests

    issue_id = week["issue_id"]
    tested = ["Subject A of the test", "Subject B of the test"]
    with transaction() as session:
        own = issues.variant_preview(session, issue_id, ["Video"]).subject
        subject_tests.set_test(session, issue_id, tested, share=100, wait_minutes=60)
        issues.approve(session, issue_id, by="editor@example.com")
    sent = cli("issue", "send", str(issue_id))
    assert sent.exit_code == 0, sent.output
    assert "each their subject of the subject test" in sent.output and own not in sent.output
    got = {recipient(m): str(m["Subject"]) for m in _outbox()}
    video = [e for e, (topics, _) in READERS.items() if "Video" in topics]
    assert video and all(got[e] in tested for e in video)
    assert own not in got.values()
    html = Path(os.environ["NEWSLETTER_OUTBOX_DIR"]).parent / "video.html"
    shown = cli(
        "issue", "preview", str(issue_id), "--topic", "Video", "--html", str(html), "--json"
    )
    assert shown.exit_code == 0, shown.output
    about = json.loads(shown.stdout)
    assert about["frozen"] is True
    assert (about["subject"], about["subject_test_subjects"]) == (None, tested)
    text = cli("issue", "preview", str(issue_id), "--topic", "Video", "--html", str(html)).output
    assert f"subject: by the subject test: 1. {tested[0]} / 2. {tested[1]}" in text
    page = unescape(editor.get(f"/admin/issues/{issue_id}", params={"topics": ["Video"]}).text)
    assert f"each with their subject of the subject test (“{tested[0]}”, “{tested[1]}”)" in page
    assert f"subject “{own}”" not in page
    numbers = json.loads(cli("stats", str(issue_id), "--json").stdout)
    assert own not in json.dumps(numbers)

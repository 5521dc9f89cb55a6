"""Subject tests on the issue's page (issue 17), on both engines: the editor's form, what a bad
form gets (the page says what is wrong, nothing is saved), the figures once the share is sent,
the winner picked by the button, and every link of the section answering."""

from __future__ import annotations

from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import IssueStatus, SubjectTest
from tests.audience.test_subject_tests import READERS, SUBJECTS, _ledger, _outbox, issue_id
from tests.subscribers.helpers import cli
from tests.web.conftest import csrf_from
from tests.web.world import hrefs

__all__ = ["issue_id"]  # the fixture


def _post(client: TestClient, url: str, issue: int, data: dict[str, str]) -> str:
    page = client.get(f"/admin/issues/{issue}")
    assert page.status_code == 200
    sent = client.post(
        url, data={"csrf_token": csrf_from(page.text), **data}, follow_redirects=False
    )
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"].endswith("#subject-test-h")
    shown = client.get(sent.headers["location"])
    assert shown.status_code == 200
    return unescape(shown.text)


def _form(*subjects: str, share: str = "20", wait: str = "4h") -> dict[str, str]:
    fields = {f"subject{n}": s for n, s in enumerate(subjects, start=1)}
    return {**fields, "share": share, "wait": wait}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_form("Only one"), "needs 2 to 4 subjects, 1 given"),
        (_form("", ""), "needs 2 to 4 subjects, 0 given"),
        (_form("Ship it", "SHIP   it"), "subjects 1 and 2 are the same"),
        (_form("A", "B" * 151), "subject 2 is 151 characters: at most 150"),
        (_form("A", "\x01\x02"), "subject 2 has no printable text"),
        (_form("A", "B", share="lots"), "the test share 'lots' is not a whole number of percent"),
        (_form("A", "B", share="-5"), "1 to 100 percent, not -5"),
        (_form("A", "B", wait="4"), "has no unit: write 4m for minutes or 4h for hours"),
        (_form("\u200b", "B"), "subject 1 has no printable text"),
        (_form("A", "B", share="9" * 30), "1 to 100 percent, not 999,999"),
        (_form("A", "B", share="12abc"), "is not a whole number of percent"),
        (_form("A", "B", share="0"), "1 to 100 percent, not 0"),
        (_form("A", "B", share="٣٠"), "is not a whole number of percent"),  # Arabic-Indic digits
        (_form("A", "B", wait="soon"), "is not a duration"),
        (_form("A", "B", wait=""), "is not a duration"),
        (_form("A", "B", wait="9999d"), "1 to 10,080 minutes, not 14,398,560"),
    ],
)
def test_a_bad_form_says_what_is_wrong_and_saves_nothing(
    db: Session, issue_id: int, editor: TestClient, data: dict[str, str], message: str
) -> None:
    assert cli("issue", "approve", str(issue_id)).exit_code == 0
    shown = _post(editor, f"/admin/issues/{issue_id}/subject-test", issue_id, data)
    assert message in shown
    with transaction() as session:
        assert session.get(SubjectTest, issue_id) is None
        assert issues.require(session, issue_id).status is IssueStatus.APPROVED


def test_an_overlong_field_is_refused_without_a_server_error(
    db: Session, issue_id: int, editor: TestClient
) -> None:
    page = editor.get(f"/admin/issues/{issue_id}")
    answered = editor.post(
        f"/admin/issues/{issue_id}/subject-test",
        data={"csrf_token": csrf_from(page.text), **_form("A", "B" * 5000)},
        follow_redirects=False,
    )
    assert 400 <= answered.status_code < 500
    # A NUL is refused at the door, naming the field.
    nul = editor.post(
        f"/admin/issues/{issue_id}/subject-test",
        data={"csrf_token": csrf_from(page.text), **_form("A", "B\x00C")},
        follow_redirects=False,
    )
    assert nul.status_code == 400 and "'subject2' contains a NUL character" in nul.text
    with transaction() as session:
        assert session.get(SubjectTest, issue_id) is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("subject1=Al%ED%A0%80pha&subject2=B", "subject1"),  # a lone surrogate's bytes
        ("subject1=A&subject2=%FF%FE", "subject2"),  # no UTF-8 at all
        ("subject1=A&subject2=B&share=2%C0", "share"),  # a truncated sequence
        ("subject1=A&subject2=B&wait%ED%A0%80=4h", "wait\ufffd\ufffd\ufffd"),
    ],
)
def test_bytes_that_are_no_text_are_refused_at_the_door_not_stored_as_replacement_marks(
    db: Session, issue_id: int, editor: TestClient, raw: str, field: str
) -> None:
    """The form parser would have turned them into U+FFFD and saved "Al\ufffd\ufffd\ufffdpha" as
    a subject the CLI and the API refuse."""
    page = editor.get(f"/admin/issues/{issue_id}")
    answered = editor.post(
        f"/admin/issues/{issue_id}/subject-test",
        content=f"csrf_token={csrf_from(page.text)}&share=20&wait=4h&{raw}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert answered.status_code == 400, answered.text
    assert f"form field {field!r} is not valid UTF-8 text" in answered.json()["detail"]
    with transaction() as session:
        assert session.get(SubjectTest, issue_id) is None
    # Real text in any script still goes through.
    fine = editor.post(
        f"/admin/issues/{issue_id}/subject-test",
        content=f"csrf_token={csrf_from(page.text)}&share=20&wait=4h"
        "&subject1=%C3%89mile+gagne&subject2=%E6%9D%B1%E4%BA%AC+%F0%9F%9A%80",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert fine.status_code == 303, fine.text
    with transaction() as session:
        saved = session.get(SubjectTest, issue_id)
        assert saved is not None and list(saved.subjects) == ["Émile gagne", "東京 🚀"]


def test_the_editor_sets_a_test_reads_its_figures_and_sends_the_winner(
    db: Session, issue_id: int, editor: TestClient
) -> None:
    page = editor.get(f"/admin/issues/{issue_id}")
    assert "One subject for everyone." in page.text
    assert "Start a subject test" in page.text
    with transaction() as session:
        subject = issues.content(session, issues.require(session, issue_id)).subject
    # The first field starts with the issue's own subject.
    assert f'id="subject1" name="subject1" type="text" maxlength="2000" value="{subject}"' in (
        unescape(page.text)
    )
    assert cli("issue", "approve", str(issue_id)).exit_code == 0
    shown = _post(
        editor,
        f"/admin/issues/{issue_id}/subject-test",
        issue_id,
        _form(SUBJECTS[0], SUBJECTS[1], "", "", share=" 40 % ", wait="1h30m"),
    )
    assert "Subject test saved for issue" in shown and "approval was withdrawn" in shown
    assert "40% of the audience get one of 2 subjects when the send starts" in shown
    assert "1h30m after it" in shown
    with transaction() as session:
        test = session.get(SubjectTest, issue_id)
        assert test is not None and test.subjects == SUBJECTS
        assert (test.share, test.wait_minutes, test.created_by) == (40, 90, "editor@example.com")
    # Picking a winner before the send is refused, saying why.
    early = _post(
        editor, f"/admin/issues/{issue_id}/subject-test/winner", issue_id, {"winner": "1"}
    )
    assert "its subject test has not started (it starts with the send)" in early
    # Removed, then set again.
    gone = _post(editor, f"/admin/issues/{issue_id}/subject-test/remove", issue_id, {})
    assert "has one subject again" in gone
    again = _post(editor, f"/admin/issues/{issue_id}/subject-test/remove", issue_id, {})
    assert "has no subject test" in again
    _post(
        editor,
        f"/admin/issues/{issue_id}/subject-test",
        issue_id,
        _form(*SUBJECTS, share="40", wait="1h"),
    )
    assert cli("issue", "approve", str(issue_id)).exit_code == 0
    assert cli("issue", "send", str(issue_id)).exit_code == 0
    in_test = len(_ledger(issue_id))
    mails = len(_outbox())

    page = editor.get(f"/admin/issues/{issue_id}")
    text = unescape(page.text)
    assert f"Testing: {in_test} people, the 40% share of the audience" in text
    assert 'id="subject-test-form"' not in text  # fixed once the send started
    assert text.count("Send this one to the rest") == 2
    for url in hrefs(page.text):
        if url.startswith("/admin") or url.startswith("/archive"):
            assert editor.get(url).status_code == 200, url
    for bad, message in (
        ("abc", "'abc' is not a subject's number"),
        ("3", "subjects 1 to 2, not 3"),
        ("0", "subjects 1 to 2, not 0"),
    ):
        refused = _post(
            editor, f"/admin/issues/{issue_id}/subject-test/winner", issue_id, {"winner": bad}
        )
        assert message in refused
    assert len(_outbox()) == mails
    picked = _post(
        editor, f"/admin/issues/{issue_id}/subject-test/winner", issue_id, {"winner": "2"}
    )
    assert f"Subject 2 (“{SUBJECTS[1]}”) goes to everyone else: {READERS - in_test:,} more" in (
        picked
    )
    assert "Subject 2 won (chosen by hand), decided by editor editor@example.com" in picked
    assert "Send this one to the rest" not in picked  # decided: nothing left to pick
    twice = _post(
        editor, f"/admin/issues/{issue_id}/subject-test/winner", issue_id, {"winner": "1"}
    )
    assert "decided already" in twice
    ledger = _ledger(issue_id)
    assert len(ledger) == READERS
    assert sum(1 for n in ledger.values() if n == 2) >= READERS - in_test


def test_the_api_sets_reads_and_decides_a_subject_test(
    db: Session, issue_id: int, editor: TestClient
) -> None:
    from newsletter.accounts.service import find, issue_api_token
    from tests.web.conftest import EDITOR

    with transaction() as session:
        bearer = {"Authorization": f"Bearer {issue_api_token(session, find(session, EDITOR))}"}
    url = f"/api/v1/issues/{issue_id}/subject-test"
    assert editor.get(url, headers=bearer).status_code == 404
    assert editor.get("/api/v1/issues/999999/subject-test", headers=bearer).status_code == 404
    assert editor.put(url, json={"subjects": SUBJECTS}).status_code == 401  # no token
    for body in (
        {"subjects": ["one"]},
        # A misspelt field, loose types: refused, never a default or a 1% test.
        {"subjects": SUBJECTS, "wait": "1m"},
        {"subjects": SUBJECTS, "share": "20"},
        {"subjects": SUBJECTS, "share": True},
        {"subjects": SUBJECTS, "extra": 1},
        {"subjects": ["", "B"]},
        {"subjects": ["A", "A\u200b"]},
        {"subjects": ["a", "b", "c", "d", "e"]},
        {"subjects": SUBJECTS, "share": 0},
        {"subjects": SUBJECTS, "share": 10**40},
        {"subjects": SUBJECTS, "wait_minutes": -1},
        {"subjects": ["same", "SAME"]},
        {"subjects": "not a list"},
        {"subjects": [["deep", ["er"]], "b"]},
    ):
        refused = editor.put(url, json=body, headers=bearer)
        assert refused.status_code == 422, (body, refused.text)
        assert isinstance(refused.json()["detail"], list)
    # A lone surrogate, as JSON escapes it.
    surrogate = editor.put(
        url,
        content=b'{"subjects": ["ok", "bad \\ud800 one"]}',
        headers={**bearer, "Content-Type": "application/json"},
    )
    assert surrogate.status_code == 400
    assert "body.subjects[1] contains a lone surrogate" in surrogate.json()["detail"]
    with transaction() as session:
        assert session.get(SubjectTest, issue_id) is None
    made = editor.put(
        url, json={"subjects": SUBJECTS, "share": 50, "wait_minutes": 30}, headers=bearer
    )
    assert made.status_code == 200, made.text
    assert made.json()["phase"] == "set" and made.json()["wait"] == "30m"
    for loose in ({"winner": "2"}, {"winner": True}, {"winner": 1, "by": "me"}):
        assert editor.post(f"{url}/winner", json=loose, headers=bearer).status_code == 422
    early = editor.post(f"{url}/winner", json={"winner": 1}, headers=bearer)
    assert early.status_code == 409 and "has not started" in early.json()["detail"]
    assert cli("issue", "approve", str(issue_id)).exit_code == 0
    assert cli("issue", "send", str(issue_id)).exit_code == 0
    late = editor.put(url, json={"subjects": SUBJECTS}, headers=bearer)
    assert late.status_code == 409 and "too late" in late.json()["detail"]
    shown = editor.get(url, headers=bearer).json()
    assert shown["phase"] == "testing" and [f["number"] for f in shown["test"]] == [1, 2]
    in_test = sum(f["deliveries"] for f in shown["test"])
    picked = editor.post(f"{url}/winner", json={"winner": None}, headers=bearer)
    assert picked.status_code == 200, picked.text
    assert picked.json()["winner"] == 1 and picked.json()["rest"] == READERS - in_test
    assert picked.json()["decided_by"] == f"api {EDITOR}"
    again = editor.post(f"{url}/winner", json={"winner": 2}, headers=bearer)
    assert again.status_code == 409 and "decided already" in again.json()["detail"]
    assert editor.delete(url, headers=bearer).status_code == 409


def test_a_form_field_past_its_length_gets_a_page_naming_it(
    db: Session, issue_id: int, editor: TestClient
) -> None:
    """A browser's form that breaks a field's declared bound gets a page, not JSON; the API
    keeps its JSON list of field errors."""
    page = editor.get(f"/admin/issues/{issue_id}")
    refused = editor.post(
        f"/admin/issues/{issue_id}/subject-test",
        data={"csrf_token": csrf_from(page.text), **_form("A", "B", share="9" * 41)},
        headers={"Accept": "text/html,application/xhtml+xml"},
        follow_redirects=False,
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("text/html")
    text = unescape(refused.text)
    assert "Check the form" in text and "share: String should have at most 40 characters" in text
    assert "9" * 41 not in text  # what was typed is not echoed
    with transaction() as session:
        assert session.get(SubjectTest, issue_id) is None
    api = editor.post(
        f"/admin/issues/{issue_id}/subject-test",
        data={"csrf_token": csrf_from(page.text), **_form("A", "B", share="9" * 41)},
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    assert api.status_code == 422 and isinstance(api.json()["detail"], list)

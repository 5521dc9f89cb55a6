"""Segments in the web app and the API (issue 17): the admin makes one with the form, follows
its links to its members, acts on them and exports them; an editor sends an issue to it from
the issue's page; the API does the same with a token. Bad input is refused with what is wrong,
and nothing is written."""

from __future__ import annotations

import csv
import io
import re
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.accounts.service import find, issue_api_token
from newsletter.audience.models import Segment
from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import IssueStatus
from subscribers.models import Subscriber
from tests.audience.test_segments import (
    IMPORTED,
    _delivered_to,
    _this_weeks_issue,
    world,
)
from tests.web.conftest import ADMIN, EDITOR, csrf_from
from tests.web.world import hrefs

__all__ = ["world"]  # the fixture


def _segments() -> int:
    with transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Segment)) or 0)


def _form(client: TestClient, url: str) -> str:
    return csrf_from(client.get(url).text)


def _emails_on(html: str) -> set[str]:
    return set(re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', html))


@pytest.fixture
def signed_in(
    db: Session, world: dict[str, Any], admin: TestClient, editor: TestClient
) -> dict[str, Any]:
    return {"admin": admin, "editor": editor, **world}


def test_the_admin_makes_a_segment_and_works_with_its_members(signed_in: dict[str, Any]) -> None:
    admin: TestClient = signed_in["admin"]
    page = admin.get("/admin/segments")
    assert page.status_code == 200 and "No segment yet" in page.text
    # The tags on the form are the ones the list has.
    assert 'value="VIP"' in page.text and 'value="Early bird"' in page.text
    made = admin.post(
        "/admin/segments",
        data={
            "csrf_token": csrf_from(page.text),
            "name": "  Imported  VIPs ",
            "statuses": ["active"],
            "tags": ["VIP"],
            "sources": "import",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    shown = admin.get(made.headers["location"])
    assert "Segment “Imported VIPs” saved: 2 subscribers now." in unescape(shown.text)
    assert "active; tagged VIP; from import" in shown.text
    # Every link of its page and of the list leads somewhere that answers.
    for url in {*hrefs(shown.text), *hrefs(admin.get("/admin/segments").text)}:
        if url.startswith("/") and not url.startswith("/static"):
            assert admin.get(url).status_code == 200, url
    # Its members: the list under the segment, reached from its page's link.
    members_link = next(u for u in hrefs(shown.text) if "segment=" in u)
    listed = admin.get(unescape(members_link))
    assert _emails_on(listed.text) == {"ann@mc.example", "bo@mc.example"}
    assert "in segment “Imported VIPs”" in unescape(listed.text)
    # The list's export link, followed: the members only.
    export = next(u for u in hrefs(listed.text) if u.startswith("/admin/subscribers/export.csv"))
    rows = list(csv.DictReader(io.StringIO(admin.get(unescape(export)).text)))
    assert {r["email"] for r in rows} == {"ann@mc.example", "bo@mc.example"}
    # A bulk action on "everyone matching": asked first with the count, then done.
    segment_id = re.search(r'name="segment" value="(\d+)"', listed.text)
    assert segment_id
    fields = {
        "csrf_token": csrf_from(listed.text),
        "action": "pause",
        "scope": "filter",
        "segment": segment_id[1],
    }
    asked = admin.post("/admin/subscribers/bulk", data=fields)
    assert asked.status_code == 200 and "Pause mail to 2 subscribers?" in asked.text
    assert "in segment “Imported VIPs”" in unescape(asked.text)
    done = admin.post(
        "/admin/subscribers/bulk",
        data={**fields, "csrf_token": csrf_from(asked.text), "confirmed": "2"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].endswith(f"segment={segment_id[1]}")
    with transaction() as session:
        paused = set(session.scalars(select(Subscriber.email).where(Subscriber.paused)))
    assert paused == {"ann@mc.example", "bo@mc.example"}
    # Renamed and narrowed from its page; the old rule is replaced whole.
    changed = admin.post(
        made.headers["location"],
        data={"csrf_token": csrf_from(shown.text), "name": "Early birds", "tags": ["early bird"]},
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert "saved: 1 subscribers now" in unescape(admin.get(changed.headers["location"]).text)
    with transaction() as session:
        segment = session.scalars(select(Segment)).one()
        assert (segment.name, segment.rule) == ("Early birds", {"tags": ["Early bird"]})


BAD_FORMS: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "the segment needs a name"),
    ({"name": "x" * 101}, "longer than 100 characters"),
    ({"name": "tab\there"}, "control character"),
    ({"name": "ok", "engaged_in_last": "99999999999999999999"}, "rule.engaged_in_last"),
    ({"name": "ok", "engaged_in_last": "0"}, "rule.engaged_in_last: at least 1"),
    ({"name": "ok", "engaged_in_last": "53"}, "at most 52"),
    ({"name": "ok", "not_engaged_in_last": "-1"}, "rule.not_engaged_in_last"),
    ({"name": "ok", "not_engaged_in_last": "٣"}, "rule.not_engaged_in_last"),  # Arabic-Indic 3
    ({"name": "ok", "statuses": ["gone"]}, "not a status"),
    ({"name": "ok", "topics": ["Cooking"]}, "rule.topics"),
    # "VIP" with a Cyrillic "Р" for the Latin P: a look-alike, not the tag.
    ({"name": "ok", "tags_typed": "VIР"}, "nobody has the tag"),
    ({"name": "ok", "joined_after": "2026-02-30"}, "rule.joined_after"),
    ({"name": "ok", "joined_after": "2026-03-01", "joined_before": "2026-02-01"}, "joined_after"),
    ({"name": "ok", "sources": "x" * 65}, "rule.sources"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_FORMS)
def test_a_bad_segment_form_is_refused_with_what_is_wrong_and_nothing_saved(
    signed_in: dict[str, Any], fields: dict[str, Any], message: str
) -> None:
    admin: TestClient = signed_in["admin"]
    answer = admin.post(
        "/admin/segments", data={"csrf_token": _form(admin, "/admin/segments"), **fields}
    )
    assert answer.status_code == 400, answer.text
    assert message in unescape(answer.text)
    assert 'id="segment-error"' in answer.text
    assert _segments() == 0


@pytest.mark.parametrize("value", ["a\x00b", "x" * 100_000])
def test_unstorable_text_never_reaches_the_segments(signed_in: dict[str, Any], value: str) -> None:
    admin: TestClient = signed_in["admin"]
    token = _form(admin, "/admin/segments")
    for field in ("name", "tags_typed", "sources"):
        answer = admin.post(
            "/admin/segments", data={"csrf_token": token, "name": "ok", field: value}
        )
        assert 400 <= answer.status_code < 500, (field, answer.status_code)
    assert _segments() == 0
    # A lone surrogate has no UTF-8 form to post; in JSON it is an escape.
    with transaction() as session:
        bearer = {"Authorization": f"Bearer {issue_api_token(session, find(session, ADMIN))}"}
    for body in (
        b'{"name": "x\\ud800"}',
        b'{"name": "ok", "rule": {"tags": ["\\udfff"]}}',
        b'{"name": "ok", "rule": {"sources": ["a\\u0000b"]}}',
    ):
        answer = admin.post(
            "/api/v1/segments",
            content=body,
            headers={**bearer, "Content-Type": "application/json"},
        )
        assert 400 <= answer.status_code < 500, (body, answer.status_code)
    assert _segments() == 0


def test_an_editor_sends_an_issue_to_a_segment_from_its_page(signed_in: dict[str, Any]) -> None:
    admin: TestClient = signed_in["admin"]
    editor: TestClient = signed_in["editor"]
    # Segments are the admin's; an editor only chooses one.
    assert editor.get("/admin/segments").status_code == 403
    admin.post(
        "/admin/segments",
        data={
            "csrf_token": _form(admin, "/admin/segments"),
            "name": "Imported",
            "sources": "import",
        },
    )
    issue_id = _this_weeks_issue()
    page = editor.get(f"/admin/issues/{issue_id}")
    assert "Goes to every active subscriber" in page.text
    option = re.search(r'<option value="(\d+)">Segment: Imported</option>', page.text)
    assert option, "the segment is not offered"
    # A crafted id for a segment that does not exist: refused, nothing changed.
    for bad in ("999999", "9" * 19, "1; DROP TABLE issues", "١"):
        answer = editor.post(
            f"/admin/issues/{issue_id}/audience",
            data={"csrf_token": csrf_from(page.text), "segment": bad},
        )
        assert answer.status_code in (200, 400), (bad, answer.status_code)
        if answer.status_code == 200:
            assert "no segment with id" in answer.text
    with transaction() as session:
        assert issues.require(session, issue_id).segment_id is None
    chosen = editor.post(
        f"/admin/issues/{issue_id}/audience",
        data={"csrf_token": csrf_from(page.text), "segment": option[1]},
    )
    assert chosen.status_code == 200
    assert "now goes to segment “Imported”: 3 subscribers today." in unescape(chosen.text)
    assert "3 of its members would get it now" in chosen.text
    approved = editor.post(
        f"/admin/issues/{issue_id}/approve", data={"csrf_token": csrf_from(chosen.text)}
    )
    asked = editor.post(
        f"/admin/issues/{issue_id}/send", data={"csrf_token": csrf_from(approved.text)}
    )
    assert asked.status_code == 200
    assert "Send issue" in asked.text and "to 3 subscribers now?" in asked.text
    assert "the members of segment “Imported”" in unescape(asked.text)
    sent = editor.post(
        f"/admin/issues/{issue_id}/send",
        data={"csrf_token": csrf_from(asked.text), "confirmed": "3"},
    )
    assert "to 3 subscribers of segment “Imported”" in unescape(sent.text)
    assert _delivered_to(issue_id) == sorted(IMPORTED)
    after = editor.get(f"/admin/issues/{issue_id}")
    assert "Sent to segment “Imported” (from import): 3 subscribers" in unescape(after.text)
    assert f'action="/admin/issues/{issue_id}/audience"' not in after.text


def test_the_api_makes_lists_and_sends_to_segments(signed_in: dict[str, Any]) -> None:
    client: TestClient = signed_in["admin"]
    with transaction() as session:
        admin_token = issue_api_token(session, find(session, ADMIN))
        editor_token = issue_api_token(session, find(session, EDITOR))
    as_admin = {"Authorization": f"Bearer {admin_token}"}
    as_editor = {"Authorization": f"Bearer {editor_token}"}
    refused = client.post(
        "/api/v1/segments", json={"name": "x", "rule": {"tags": ["vip"]}}, headers=as_editor
    )
    assert refused.status_code == 403
    bad = client.post(
        "/api/v1/segments",
        json={"name": "x", "rule": {"engaged_in_last": 2**63}},
        headers=as_admin,
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:3] == [
        "body",
        "rule",
        "engaged_in_last",
    ]
    unknown = client.post(
        "/api/v1/segments", json={"name": "x", "rule": {"tags": ["nobody's"]}}, headers=as_admin
    )
    assert unknown.status_code == 422 and "nobody has the tag" in unknown.text
    nested: Any = {"tags": []}
    for _ in range(200):
        nested = {"rule": nested}
    deep = client.post("/api/v1/segments", json={"name": "x", "rule": nested}, headers=as_admin)
    assert deep.status_code == 422
    assert _segments() == 0

    made = client.post(
        "/api/v1/segments", json={"name": "VIPs", "rule": {"tags": ["vip"]}}, headers=as_admin
    )
    assert made.status_code == 201, made.text
    segment = made.json()
    assert (segment["members"], segment["mailable"], segment["rule"]) == (2, 2, {"tags": ["VIP"]})
    twice = client.post("/api/v1/segments", json={"name": "vips"}, headers=as_admin)
    assert twice.status_code == 409 and "exists already" in twice.text
    listed = client.get("/api/v1/segments", headers=as_editor).json()
    assert [s["name"] for s in listed] == ["VIPs"]
    people = client.get(f"/api/v1/segments/{segment['id']}/subscribers?limit=1", headers=as_admin)
    first = people.json()
    assert len(first["items"]) == 1 and first["next_before"] is not None
    rest = client.get(
        f"/api/v1/segments/{segment['id']}/subscribers?before={first['next_before']}",
        headers=as_admin,
    ).json()
    assert {p["email"] for p in first["items"] + rest["items"]} == {
        "ann@mc.example",
        "bo@mc.example",
    }

    issue_id = _this_weeks_issue()
    with transaction() as session:
        issues.approve(session, issue_id, by=EDITOR)
    moved = client.put(
        f"/api/v1/issues/{issue_id}/audience",
        json={"segment_id": segment["id"]},
        headers=as_editor,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "id": issue_id,
        "segment_id": segment["id"],
        "segment": "VIPs",
        "would_be_mailed": 2,
        "approval_withdrawn": True,
    }
    with transaction() as session:
        assert issues.require(session, issue_id).status is IssueStatus.DRAFT
    gone = client.delete(f"/api/v1/segments/{segment['id']}", headers=as_admin)
    assert gone.status_code == 409 and "audience of issue" in gone.text
    missing = client.put(
        f"/api/v1/issues/{issue_id}/audience", json={"segment_id": 2**62}, headers=as_editor
    )
    assert missing.status_code == 404
    back = client.put(
        f"/api/v1/issues/{issue_id}/audience", json={"segment_id": None}, headers=as_editor
    )
    assert back.json()["segment"] is None and back.json()["approval_withdrawn"] is False
    assert client.delete(f"/api/v1/segments/{segment['id']}", headers=as_admin).status_code == 200
    assert _segments() == 0

"""The admin's CSV upload: the detected format and mapping first, then the import and its
report; a hostile upload is a clear 4xx page, never a 500, and nothing is half-written."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.db import transaction
from subscribers.models import Subscriber, SubscriberStatus
from tests.subscribers.exports import KIT
from tests.web.conftest import csrf_from

_ACTION = re.compile(r'action="(/admin/subscribers/import/[A-Za-z0-9_-]{32})"')


def _upload(admin: TestClient, name: str, body: bytes, **form: str) -> tuple[int, str]:
    token = csrf_from(admin.get("/admin/subscribers/import").text)
    page = admin.post(
        "/admin/subscribers/import",
        data={"csrf_token": token, **form},
        files={"file": (name, body, "text/csv")},
    )
    return page.status_code, page.text


def _chosen(html: str) -> dict[str, str]:
    """Each mapping select and the column it has selected, as the page shows them."""
    chosen = {}
    for field, options in re.findall(
        r'<select id="map_(\w+)" name="map_\w+">(.*?)</select>', html, re.S
    ):
        selected = re.search(r'<option value="([^"]*)" selected>', options)
        chosen[field] = selected.group(1) if selected else ""
    return chosen


def _run(admin: TestClient, html: str, action: str, **changes: str | bytes) -> tuple[int, str]:
    url = _ACTION.search(html)
    assert url, html
    fields = {f"map_{k}": v for k, v in _chosen(html).items()}
    fmt = re.search(r'<option value="(\w+)" selected>', html.split('id="format"', 1)[1])
    assert fmt
    data = {
        "csrf_token": csrf_from(html),
        "format": fmt.group(1),
        "action": action,
        **fields,
        **changes,
    }
    # Encoded by hand, so a value may be bytes that are not UTF-8 (a lone surrogate's).
    body = urlencode({k: v.encode() if isinstance(v, str) else v for k, v in data.items()})
    page = admin.post(
        url.group(1),
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    return page.status_code, page.text


def _people() -> dict[str, tuple[str, str]]:
    with transaction() as session:
        return {s.email: (s.name, s.status.value) for s in session.scalars(select(Subscriber))}


def test_upload_shows_the_format_and_mapping_then_imports(admin: TestClient) -> None:
    status, page = _upload(admin, KIT.filename, KIT.content())
    assert status == 200
    assert "Recognised as <strong>Kit / ConvertKit" in page
    assert _chosen(page) == {
        "email": "email_address",
        "name": "",
        "first_name": "first_name",
        "last_name": "",
        "status": "state",
        "tags": "tags",
        "signup_at": "created_at",
    }
    assert _people() == {}  # nothing written before the admin says so
    status, checked = _run(admin, page, "check")
    assert status == 200 and "Dry run for kit-subscribers.csv: nothing was written" in checked
    assert 'id="kept-out">3<' in checked and _people() == {}
    status, done = _run(admin, checked, "import")
    assert status == 200 and 'id="imported">3<' in done and 'id="kept-out">3<' in done
    assert _people()["cancelled@kit.example"][1] == "unsubscribed"
    # The upload is gone once imported.
    again = admin.post(
        _ACTION.search(page).group(1), data={"csrf_token": csrf_from(page), "action": "import"}
    )  # type: ignore[union-attr]
    assert again.status_code == 404


def test_the_admin_changes_the_mapping_and_the_format(admin: TestClient) -> None:
    body = b"Mail,Alias,Nom,Etat\nal@x.example,Big Al,Al,cancelled\nbo@x.example,Bobby,Bo,active\n"
    status, page = _upload(admin, "people.csv", body)
    # No column is called anything like "email": the page says how to map one.
    assert status == 200 and "Recognised as <strong>a CSV file" in page
    assert _chosen(page)["email"] == "Mail" and _chosen(page)["status"] == ""
    status, page = _run(admin, page, "detect", format="kit")
    assert "Recognised as <strong>Kit / ConvertKit" in page
    status, done = _run(admin, page, "import", map_name="Nom", map_status="Etat")
    assert status == 200, done
    assert _people() == {"al@x.example": ("Al", "unsubscribed"), "bo@x.example": ("Bo", "active")}


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        (
            "x.csv",
            b"foo,bar\n1,2\n",
            "no email column in the header (found &#39;foo&#39;, &#39;bar&#39;)",
        ),
        ("big-header.csv", b"email," + b"h" * 200_000 + b"\n", "field larger than field limit"),
        ("u32.csv", b"\xff\xfe\x00\x00", "UTF-32"),
        ("empty.csv", b"", "the file is empty"),
    ],
)
def test_an_unreadable_upload_is_refused_with_the_reason(
    admin: TestClient, name: str, body: bytes, message: str
) -> None:
    status, page = _upload(admin, name, body)
    assert status == 400
    assert "was not imported" in page and message in page


def test_hostile_names_and_fields_never_reach_a_500(admin: TestClient) -> None:
    long_name = "n" * 300 + ".csv"
    status, page = _upload(admin, long_name, "email,name\nzoë@example.com,Zoë\n".encode("utf-16"))
    assert status == 200
    assert "n" * 250 in page and "n" * 256 not in page  # shown cut to 255
    status, done = _run(admin, page, "import")
    assert status == 200 and 'id="imported">1<' in done
    with transaction() as session:
        source = session.scalar(select(Subscriber.source))
    assert source is not None and source.startswith("import:nnn") and len(source) == 64

    status, page = _upload(admin, "a\x00b.csv", b"email\nok@example.com\n")
    assert status == 200
    for field in ("map_email", "map_name", "format"):
        status, refused = _run(admin, page, "import", **{field: b"E\x00mail\xed\xa0\x80"})
        assert status in (400, 422), refused
    status, refused = _run(admin, page, "import", map_email="")
    assert status == 400 and "no email column" in refused
    bad = admin.post(
        "/admin/subscribers/import/..%2F..%2Fetc", data={"csrf_token": csrf_from(page)}
    )
    assert bad.status_code == 404
    with transaction() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1
        assert session.scalar(select(Subscriber.status)) == SubscriberStatus.ACTIVE


def test_an_uploads_tags_that_name_a_category_become_topics(admin: TestClient) -> None:
    from datetime import timedelta

    from newsletter.matchups.service import import_matchup
    from newsletter.orm import utcnow
    from subscribers.service import find, topics_of
    from tests.issues.helpers import example_pages

    with transaction() as session:
        for data in example_pages():
            import_matchup(session, data, utcnow() - timedelta(hours=1))
    body = b"email,name,tags\nvi@x.example,Vi,video;VIP\nno@x.example,No,VIP\n"
    status, page = _upload(admin, "list.csv", body)
    assert status == 200
    status, done = _run(admin, page, "import")
    assert status == 200 and 'id="given-topics">1<' in done
    with transaction() as session:
        vi = find(session, "vi@x.example")
        no = find(session, "no@x.example")
        assert vi is not None and no is not None
        assert topics_of(session, vi.id) == ["Video"] and topics_of(session, no.id) == []

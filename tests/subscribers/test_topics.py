"""Topics a reader chooses (issue 17): the site's categories, at every door that takes them.

A reader signs up with topics ticked on the form, confirms from the mail, and later changes
them on the preferences page the welcome mail links to; an admin sets them from the CLI and the
API; `subscribers list --json` and the person's export carry them; erasure forgets them. A name
that is not one of the published categories is refused, naming it and the topics there are,
and nothing is written.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.accounts.models import Role
from newsletter.accounts.service import create_user, find, issue_api_token
from newsletter.db import transaction
from subscribers import service
from subscribers.models import SubscriberStatus, SubscriberTopic
from tests.subscribers.helpers import cli, client, confirmation_link, outbox, path_of
from tests.support.arrange import make_matchup

CATEGORIES = ("Developer Tools", "Design Tools", "Productivity")


@pytest.fixture
def published(db: Session) -> None:
    """Two matchups on the site: one of developer tools, one of a design and a productivity
    tool."""
    week_ago = datetime.now(UTC) - timedelta(days=1)
    first = make_matchup("cursor-vs-windsurf", "Cursor", "Windsurf", published_at=week_ago)
    for tool in first.tools:
        tool.category = "Developer Tools"
    second = make_matchup("figma-vs-notion", "Figma AI", "Notion AI", published_at=week_ago)
    second.tools[0].category = "Design Tools"
    second.tools[1].category = "Productivity"
    db.add_all([first, second])
    db.commit()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def _form(**fields: list[str]) -> bytes:
    """A form body as a browser (or a script) sends it; a lone surrogate goes as the bytes a
    broken encoder writes for it (ED B2 80), which no client library would produce."""
    return "&".join(
        f"{key}={quote(value, errors='surrogatepass')}"
        for key, values in fields.items()
        for value in values
    ).encode()


def _topic_rows(db: Session) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(SubscriberTopic)) or 0


def _topics(email: str) -> list[str]:
    with transaction() as session:
        subscriber = service.find(session, email)
        assert subscriber is not None
        return service.topics_of(session, subscriber.id)


def _link(message: object, kind: str) -> str:
    text = message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    found = re.findall(rf"https?://\S+/{kind}/\S+", text)
    assert found, text
    return path_of(found[0])


def test_a_reader_ticks_topics_when_signing_up_and_changes_them_from_the_welcome_mail(
    db: Session, published: None
) -> None:
    web = client()
    form = web.get("/subscribe")
    # The form offers the site's categories, by the names the site gives them.
    offered = re.findall(r'name="topic" value="([^"]+)"', form.text)
    assert offered == sorted(CATEGORIES)
    answer = web.post(
        "/subscribe",
        data={"email": "reader@example.com", "topic": ["design tools", "Productivity"]},
    )
    assert answer.status_code == 200
    assert _topics("reader@example.com") == ["Design Tools", "Productivity"]

    [confirmation] = outbox()
    confirm_page = path_of(confirmation_link(confirmation))
    assert web.post(confirm_page).status_code == 200
    with transaction() as session:
        subscriber = service.find(session, "reader@example.com")
        assert subscriber is not None and subscriber.status is SubscriberStatus.ACTIVE
    welcome = outbox()[-1]
    preferences = _link(welcome, "p")

    page = web.get(preferences)
    assert page.status_code == 200
    ticked = re.findall(r'value="([^"]+)" checked', page.text)
    assert ticked == ["Design Tools", "Productivity"]

    saved = web.post(preferences + "/topics", data={"topic": ["Developer Tools"]})
    assert saved.status_code == 200  # followed the redirect back to the page
    assert "you get the matchups in Developer Tools" in saved.text
    assert re.findall(r'value="([^"]+)" checked', saved.text) == ["Developer Tools"]
    assert _topics("reader@example.com") == ["Developer Tools"]

    # Nothing ticked: every topic again.
    cleared = web.post(preferences + "/topics", data={})
    assert "you get every topic" in cleared.text
    assert _topics("reader@example.com") == []
    assert "You read every topic" in cleared.text


@pytest.mark.parametrize(
    "bad",
    [
        "Cooking",
        "Developer T\u043e\u043els",  # Cyrillic o's: looks the same, is not the category
        "Developer Tools\x00",
        "\udc80",
        "x" * 10_000,
    ],
)
def test_a_topic_that_is_not_a_category_is_refused_everywhere_and_nothing_is_written(
    db: Session, published: None, bad: str
) -> None:
    with transaction() as session:
        subscriber, _ = service.add_by_admin(session, "reader@example.com", "")
        service.set_topics(session, subscriber.id, ["Productivity"])
        token = service.subscriber_token(subscriber.public_id)
        subscriber_id = subscriber.id
    # A NUL, a lone surrogate in JSON, and a form's bytes that are no UTF-8 (the surrogate as
    # a broken encoder writes it) are refused before any route reads the body, naming the
    # field (newsletter/web/textinput.py).
    said = "NUL character" if "\x00" in bad else "is not a topic"
    if "\udc80" in bad:
        said = "form field 'topic' is not valid UTF-8 text"
    said_json = "lone surrogate" if "\udc80" in bad else said
    web = client()
    page = web.post(f"/p/{token}/topics", content=_form(topic=["Design Tools", bad]), headers=FORM)
    assert page.status_code == 400 and said in page.text
    if "\x00" not in bad and "\udc80" not in bad:
        listed = "is not a topic; the topics are: Design Tools, Developer Tools, Productivity"
        assert listed in page.text
    signup = web.post(
        "/subscribe", content=_form(email=["new@example.com"], topic=[bad]), headers=FORM
    )
    assert signup.status_code == 400 and said in signup.text
    api = web.post(
        "/api/subscribe",
        content=json.dumps({"email": "new2@example.com", "topics": [bad]}),
        headers=JSON,
    )
    assert api.status_code in (400, 422) and said_json in api.text
    with transaction() as session:
        assert service.find(session, "new@example.com") is None
        assert service.find(session, "new2@example.com") is None
    result = cli("subscribers", "topics", "reader@example.com", "--set", bad)
    assert result.exit_code == 1 and "is not a topic" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    with transaction() as session:
        create_user(session, "admin@example.com", "correct horse battery staple", Role.ADMIN)
        bearer = issue_api_token(session, find(session, "admin@example.com"))
    put = web.put(
        f"/api/v1/subscribers/{subscriber_id}/topics",
        headers={"Authorization": f"Bearer {bearer}", **JSON},
        content=json.dumps({"topics": [bad]}),
    )
    assert put.status_code in (400, 422) and said_json in put.text
    if said_json == "is not a topic":
        [error] = put.json()["detail"]
        assert error["loc"] == ["body", "topics"] and "is not a topic" in error["msg"]
    assert _topics("reader@example.com") == ["Productivity"]
    assert _topic_rows(db) == 1


def test_the_admin_sets_topics_from_the_cli_and_the_list_shows_them(
    db: Session, published: None
) -> None:
    with transaction() as session:
        service.add_by_admin(session, "a@example.com", "A")
        service.add_by_admin(session, "b@example.com", "B")
    shown = cli("subscribers", "topics", "a@example.com")
    assert shown.exit_code == 0, shown.output
    assert "a@example.com: every topic (none chosen)" in shown.output
    assert "topics: Design Tools, Developer Tools, Productivity" in shown.output

    # Case, spacing and full-width letters aside, a name names its category; twice is once.
    done = cli(
        "subscribers", "topics", "A@Example.com",
        "--set", "developer  tools", "--set", "\uff24esign Tools", "--set", "Developer Tools",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "a@example.com: Design Tools, Developer Tools" in done.output

    listed = cli("subscribers", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["email"]: row["topics"] for row in json.loads(listed.stdout)}
    assert rows == {"a@example.com": ["Design Tools", "Developer Tools"], "b@example.com": []}

    as_json = cli("subscribers", "topics", "a@example.com", "--json")
    assert json.loads(as_json.stdout) == {
        "email": "a@example.com",
        "topics": ["Design Tools", "Developer Tools"],
        "available": sorted(CATEGORIES),
    }
    assert (
        "topics            Design Tools, Developer Tools"
        in cli("subscribers", "show", "a@example.com").output
    )

    both = cli("subscribers", "topics", "a@example.com", "--set", "Productivity", "--clear")
    assert both.exit_code == 1 and "choose one" in both.output
    cleared = cli("subscribers", "topics", "a@example.com", "--clear")
    assert cleared.exit_code == 0 and "every topic (none chosen)" in cleared.output
    assert _topics("a@example.com") == []
    nobody = cli("subscribers", "topics", "nobody@example.com", "--set", "Productivity")
    assert nobody.exit_code == 1 and "not on the list" in nobody.output


def test_the_api_lists_topics_sets_them_and_shows_them_on_the_list(
    db: Session, published: None
) -> None:
    anon = client()
    with transaction() as session:
        create_user(session, "admin@example.com", "correct horse battery staple", Role.ADMIN)
        headers = {
            "Authorization": f"Bearer {issue_api_token(session, find(session, 'admin@example.com'))}"
        }
        subscriber, _ = service.add_by_admin(session, "api@example.com", "")
        subscriber_id = subscriber.id
    assert anon.get("/api/v1/topics", headers=headers).json() == {"topics": sorted(CATEGORIES)}
    assert anon.get("/api/topics").json() == {"topics": sorted(CATEGORIES)}
    put = anon.put(
        f"/api/v1/subscribers/{subscriber_id}/topics",
        headers=headers,
        json={"topics": ["productivity", "Design Tools"]},
    )
    assert put.status_code == 200
    assert put.json() == {"id": subscriber_id, "topics": ["Design Tools", "Productivity"]}
    page = anon.get("/api/v1/subscribers", headers=headers).json()
    assert page["items"][0]["topics"] == ["Design Tools", "Productivity"]
    # The admin's page of the person says it too.
    login = anon.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token
    signed_in = anon.post(
        "/login",
        data={
            "email": "admin@example.com",
            "password": "correct horse battery staple",
            "csrf_token": token.group(1),
        },
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    admin_page = anon.get(f"/admin/subscribers/{subscriber_id}")
    assert "<dt>Topics</dt><dd>Design Tools, Productivity</dd>" in admin_page.text
    for missing in (subscriber_id + 1, 2**63 - 1):
        gone = anon.put(
            f"/api/v1/subscribers/{missing}/topics", headers=headers, json={"topics": []}
        )
        assert gone.status_code == 404
    for huge in (2**63, -1, "x"):
        odd = anon.put(f"/api/v1/subscribers/{huge}/topics", headers=headers, json={"topics": []})
        assert odd.status_code in (404, 422)
    too_many = anon.put(
        f"/api/v1/subscribers/{subscriber_id}/topics",
        headers=headers,
        json={"topics": ["Productivity"] * 51},
    )
    assert too_many.status_code == 422
    assert (
        anon.put(f"/api/v1/subscribers/{subscriber_id}/topics", json={"topics": []}).status_code
        == 401
    )
    assert _topics("api@example.com") == ["Design Tools", "Productivity"]


def test_a_strangers_sign_up_does_not_change_what_a_subscriber_reads(
    db: Session, published: None
) -> None:
    with transaction() as session:
        subscriber, _ = service.add_by_admin(session, "reader@example.com", "")
        service.set_topics(session, subscriber.id, ["Productivity"])
    answer = client().post(
        "/subscribe", data={"email": "reader@example.com", "topic": ["Developer Tools"]}
    )
    assert answer.status_code == 200
    assert _topics("reader@example.com") == ["Productivity"]


def test_a_category_the_site_stopped_publishing_stays_until_the_reader_unticks_it(
    db: Session, published: None
) -> None:
    with transaction() as session:
        subscriber, _ = service.add_by_admin(session, "reader@example.com", "")
        service.set_topics(session, subscriber.id, ["Retired Topic", "Productivity"])
        token = service.subscriber_token(subscriber.public_id)
    web = client()
    page = web.get(f"/p/{token}")
    assert re.findall(r'value="([^"]+)" checked', page.text) == ["Productivity", "Retired Topic"]
    kept = web.post(f"/p/{token}/topics", data={"topic": ["Retired Topic", "Design Tools"]})
    assert kept.status_code == 200
    assert _topics("reader@example.com") == ["Design Tools", "Retired Topic"]
    web.post(f"/p/{token}/topics", data={"topic": ["Design Tools"]})
    assert _topics("reader@example.com") == ["Design Tools"]
    assert "Retired Topic" not in web.get(f"/p/{token}").text


def test_the_export_carries_the_topics_and_erasure_forgets_them(
    db: Session, published: None
) -> None:
    with transaction() as session:
        subscriber, _ = service.add_by_admin(session, "reader@example.com", "")
        service.set_topics(session, subscriber.id, ["Productivity"])
        token = service.subscriber_token(subscriber.public_id)
    web = client()
    export = web.get(f"/p/{token}/export.json")
    assert export.status_code == 200 and export.json()["topics"] == ["Productivity"]
    erase_page = web.get(f"/p/{token}/erase")
    assert erase_page.status_code == 200
    erased = web.post(f"/p/{token}/erase", data={"confirm": "yes"})
    assert erased.status_code == 200, erased.text
    assert _topic_rows(db) == 0


def test_an_imports_tags_that_name_a_category_become_the_new_peoples_topics(
    db: Session, published: None, tmp_path: Path
) -> None:
    """A Mailchimp export whose tags name the site's categories, and our own export's `topics`
    column: the new people read those topics; someone already on the list keeps theirs."""
    from tests.subscribers.exports import MC_BASE, Export, _mc

    with transaction() as session:
        old, _ = service.add_by_admin(session, "old@mc.example", "")
        service.set_topics(session, old.id, ["Productivity"])
    export = Export(
        "mailchimp",
        "subscribed_members_export_9z.csv",
        MC_BASE,
        [
            ("active", _mc("ann@mc.example", "Ann", "", '"developer tools","VIP"')),
            ("active", _mc("bo@mc.example", "Bo", "", '"VIP"')),
            ("active", _mc("old@mc.example", "Old", "", '"Design Tools"')),
        ],
        bom=True,
    )
    path = tmp_path / export.filename
    path.write_bytes(export.content())
    dry = cli("subscribers", "import", str(path), "--dry-run", "--json")
    assert json.loads(dry.stdout)["given_topics"] == 0 and _topic_rows(db) == 1
    done = cli("subscribers", "import", str(path))
    assert done.exit_code == 0, done.output
    assert "1 new people got topics from their tags" in done.output
    assert _topics("ann@mc.example") == ["Developer Tools"]
    assert _topics("bo@mc.example") == []
    assert _topics("old@mc.example") == ["Productivity"]

    own = tmp_path / "ours.csv"
    own.write_text("email,name,status,topics\ncy@x.example,Cy,active,Productivity;Design Tools\n")
    report = json.loads(cli("subscribers", "import", str(own), "--json").stdout)
    assert report["given_topics"] == 1
    assert _topics("cy@x.example") == ["Design Tools", "Productivity"]

"""Header injection and HTML/script in every field that reaches an email or a page.

Every field a stranger or an editor can fill (matchup pages, subscriber names and addresses,
the editor's subject, preheader, intro and summaries) is either refused or comes out inert:
escaped in the email's HTML, the web pages and the Atom feed, and on one line in headers.
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app as cli
from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.matchups.models import Lens
from newsletter.matchups.schemas import MatchupData, ReviewData, ToolData
from newsletter.matchups.service import import_matchup
from newsletter.orm import utcnow
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus
from tests.support.sendgrid_server import SendGridServer
from tests.web.conftest import EDITOR, mark_sent

SCRIPT = '<script>alert("pwned")</script>'
IMG = "<img src=x onerror=alert(1)>"
HOSTILE = f"{SCRIPT}{IMG}"
CRLF_NAME = "Eve\r\nBcc: victim@example.com"
ATOM = "{http://www.w3.org/2005/Atom}"
runner = CliRunner()


def assert_inert(markup: str, where: str) -> None:
    lowered = markup.lower()
    assert "<script>alert" not in lowered, f"script tag came through in {where}"
    assert "<img src=x" not in lowered, f"img tag came through in {where}"
    assert "alert(" in markup, f"the hostile text should still be shown (escaped) in {where}"


def tool(name: str) -> ToolData:
    return ToolData(
        name=name,
        category=f"Coding {HOSTILE}",
        tagline=f"Tagline {HOSTILE}",
        panel_ship_pct=70,
        community_pct=None,
        entry=f"Free {HOSTILE}",
        description=f"Description {HOSTILE}",
    )


@pytest.fixture
def hostile_issue(db_url: str) -> int:
    """A draft whose matchup is hostile in every field, edited with hostile overrides."""
    evil = f"Evil{SCRIPT}"
    data = MatchupData(
        title=f"{evil} vs Good",
        tools=(tool(evil), tool("Good")),
        reviews=(
            ReviewData(1, Lens.BUILDER, 0, f"The primitive is {HOSTILE}"),
            ReviewData(1, Lens.BUILDER, 1, f"The primitive too {HOSTILE}"),
        ),
    )
    with transaction() as session:
        import_matchup(session, data, utcnow() - timedelta(hours=1))
        issue = issues.build_issue(session)
        issues.edit_issue(
            session,
            issue.id,
            subject=f"Verdicts {SCRIPT}\r\nBcc: victim@example.com",
            preheader=f"Pre {HOSTILE}",
            intro=f"Intro {HOSTILE}",
        )
        issues.edit_matchup(session, issue.id, data.slug, summary=f"Summary {HOSTILE}")
        return issue.id


def test_hostile_matchup_fields_and_overrides_are_escaped_in_the_email(
    hostile_issue: int,
) -> None:
    with transaction() as session:
        issues.approve(session, hostile_issue, by=EDITOR)
        for tracked in (True, False):
            rendered = issues.frozen_content(session, hostile_issue, tracked=tracked)
            assert_inert(rendered.html, f"the email HTML (tracked={tracked})")
            # The subject is a header: one line, whatever the editor typed.
            assert "\r" not in rendered.subject and "\n" not in rendered.subject
            assert "Bcc: victim" in rendered.subject  # kept as text, on the same line


def test_hostile_fields_are_escaped_in_the_editor_archive_web_version_and_atom_feed(
    hostile_issue: int, editor: TestClient, anon: TestClient
) -> None:
    page = editor.get(f"/admin/issues/{hostile_issue}")
    assert page.status_code == 200
    assert_inert(page.text, "the editor's issue page")
    preview = editor.get(f"/admin/issues/{hostile_issue}/preview.html")
    assert_inert(preview.text, "the preview")
    mark_sent(hostile_issue)
    with transaction() as session:
        issue = issues.require(session, hostile_issue)
        week, subject = issue.week, issue.rendered_subject
    assert_inert(anon.get("/issues").text, "the archive")
    assert_inert(anon.get(f"/issues/{week}").text, "the web version")
    feed = anon.get("/issues/feed.atom")
    assert feed.status_code == 200
    assert "<script>alert" not in feed.text
    entries = ET.fromstring(feed.content).findall(f"{ATOM}entry")  # well-formed XML
    assert entries[0].findtext(f"{ATOM}title") == subject


def test_hostile_subscriber_names_are_escaped_on_admin_and_preferences_pages(
    db_url: str, admin: TestClient, anon: TestClient
) -> None:
    from subscribers import service

    with transaction() as session:
        subscriber, _ = service.add_by_admin(session, "eve@example.com", f"Eve {HOSTILE}")
        token = service.subscriber_token(subscriber.public_id)
    listing = admin.get("/admin/subscribers", params={"q": "eve"})
    assert_inert(listing.text, "the subscriber list")
    assert_inert(admin.get(f"/admin/subscribers/{subscriber.id}").text, "the subscriber page")
    preferences = anon.get(f"/p/{token}")
    assert preferences.status_code == 200
    assert "<script>alert" not in preferences.text.lower()


def test_names_with_line_breaks_are_one_line_from_every_way_in(
    db_url: str, anon: TestClient, tmp_path: Path
) -> None:
    from subscribers import service
    from subscribers.importer import import_csv

    with transaction() as session:
        service.add_by_admin(session, "one@example.com", CRLF_NAME)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(f'email,name\ntwo@example.com,"{CRLF_NAME}"\n', encoding="utf-8")
    report = import_csv(csv_file)
    assert report.imported == 1
    anon.post("/subscribe", data={"email": "three@example.com", "name": CRLF_NAME})
    with transaction() as session:
        names = dict(session.execute(select(Subscriber.email, Subscriber.name)).all())
    assert len(names) == 3
    for address, name in names.items():
        assert name == "Eve Bcc: victim@example.com", address


@pytest.mark.parametrize(
    "address",
    ["eve@example.com\r\nBcc: victim@example.com", "eve@example.com\nX-Evil: 1", "<a>@b.com"],
)
def test_addresses_with_line_breaks_or_markup_are_refused(
    db_url: str, anon: TestClient, address: str, tmp_path: Path
) -> None:
    from subscribers import service
    from subscribers.addresses import InvalidAddress
    from subscribers.importer import import_csv

    with pytest.raises(InvalidAddress), transaction() as session:
        service.add_by_admin(session, address)
    answer = anon.post("/api/subscribe", json={"email": address})
    assert 400 <= answer.status_code < 500
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email\n" + json.dumps(address) + "\n", encoding="utf-8")
    report = import_csv(csv_file)
    assert report.imported == 0 and len(report.invalid) == 1
    with transaction() as session:
        assert session.scalar(select(Subscriber.id)) is None


def _raw_subscriber(session: Session, address: str, name: str) -> None:
    """A row as an older version (or a direct SQL import) may have left it: the name raw."""
    now = utcnow()
    session.execute(
        insert(Subscriber).values(
            email=address,
            email_hash=address_hash(address),
            name=name,
            status=SubscriberStatus.ACTIVE,
            source="test",
            consent_method="test",
            paused=False,
            tracking_opt_out=False,
            created_at=now,
            updated_at=now,
        )
    )


def test_a_line_break_in_a_stored_name_cannot_add_a_header_or_stop_the_send_outbox(
    hostile_issue: int, tmp_path: Path
) -> None:
    with transaction() as session:
        _raw_subscriber(session, "eve@example.com", CRLF_NAME)
        _raw_subscriber(session, "bob@example.com", "Bob")
        issues.approve(session, hostile_issue, by=EDITOR)
    result = runner.invoke(cli, ["issue", "send", str(hostile_issue), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["sent"], summary["uncertain"]) == (2, 0)  # nobody's mail was stopped
    messages = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (tmp_path / "outbox").glob("*.eml")
    ]
    assert len(messages) == 2
    for message in messages:
        assert message["Bcc"] is None
        assert "victim" not in (message["Cc"] or "")
        assert "\n" not in str(message["Subject"]) and "\n" not in str(message["To"])
        html = message.get_body(("html",))
        assert html is not None
        assert_inert(html.get_content(), "the outbox mail")
    eve = next(m for m in messages if "eve@example.com" in str(m["To"]))
    assert eve["To"].addresses[0].display_name == "Eve Bcc: victim@example.com"


def test_a_line_break_in_a_stored_name_never_reaches_the_sendgrid_payload(
    hostile_issue: int, sendgrid: SendGridServer
) -> None:
    with transaction() as session:
        _raw_subscriber(session, "eve@example.com", CRLF_NAME)
        issues.approve(session, hostile_issue, by=EDITOR)
    result = runner.invoke(cli, ["issue", "send", str(hostile_issue), "--json"])
    assert result.exit_code == 0, result.output
    [request] = sendgrid.accepted
    payload = request.payload
    assert payload is not None
    [personalization] = payload["personalizations"]
    assert personalization["to"][0]["name"] == "Eve Bcc: victim@example.com"
    assert "\n" not in payload["subject"] and "\r" not in payload["subject"]
    assert_inert(payload["content"][1]["value"], "the SendGrid HTML")

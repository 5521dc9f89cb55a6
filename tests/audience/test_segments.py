"""Segments (issue 17): saved, named filters over the list, counted live, through the doors an
admin and an editor use (the CLI, the admin's pages, the API), and an issue sent to one.

The world: last week's issue went to six readers, who read it through the links of their mail
(a click, a vote, a person's open, a mail scanner's open, nothing); a Mailchimp export brings
tagged people and one who had unsubscribed; one reader chose a topic, one joined long ago. Every
condition of a rule is checked against the people it must keep, by their addresses in the
segment's CSV export, on both engines.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.audience.models import Segment
from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import Issue, IssueStatus
from newsletter.matchups.service import import_matchup
from newsletter.orm import utcnow
from newsletter.sending.models import Delivery
from newsletter.sending.service import SendError, start_send
from newsletter.web.app import create_app
from subscribers.models import Subscriber
from tests.issues.helpers import EXAMPLES, page
from tests.subscribers.exports import MC_BASE, Export, _mc
from tests.subscribers.helpers import cli
from tests.support import arrange
from tests.support.arrange import SentIssue
from tests.tracking.conftest import BROWSER
from tests.web.world import mails, recipient

SCANNER = "Mozilla/5.0"  # Apple Mail Privacy Protection's proxy: a machine's open


@pytest.fixture
def world(db: Session, tmp_path: Path) -> Iterator[dict[str, Any]]:
    sent_at = datetime.now(UTC) - timedelta(days=2)
    with transaction() as session:
        last_week = arrange.add_sent_issue(session, readers=6, sent_at=sent_at)
    with TestClient(create_app(), headers={"User-Agent": BROWSER}) as reader:
        # What each reader of last week's mail did, through its links.
        assert reader.get(f"/c/{last_week.token(0)}/m0", follow_redirects=False).status_code in (
            302,
            303,
        )
        voted = reader.post(f"/v/{last_week.token(1)}/{last_week.slugs[0]}/0")
        assert voted.status_code == 200, voted.text
        assert reader.get(f"/o/{last_week.token(2)}.gif").status_code == 200
        scanned = reader.get(f"/o/{last_week.token(3)}.gif", headers={"User-Agent": SCANNER})
        assert scanned.status_code == 200
    # A Mailchimp export: two tagged people (the tag's case as Mailchimp wrote it) and, in the
    # unsubscribed file, one who left there.
    export = Export(
        "mailchimp",
        "subscribed_members_export_7q.csv",
        MC_BASE,
        [
            ("active", _mc("ann@mc.example", "Ann", "", '"VIP","Early bird"')),
            ("active", _mc("bo@mc.example", "Bo", "", '"vip"')),
            ("active", _mc("cy@mc.example", "Cy", "", "")),
        ],
        bom=True,
    )
    path = tmp_path / export.filename
    path.write_bytes(export.content())
    imported = cli("subscribers", "import", str(path))
    assert imported.exit_code == 0, imported.output
    assert cli("subscribers", "add", "gone@mc.example").exit_code == 0
    assert cli("subscribers", "unsubscribe", "gone@mc.example").exit_code == 0
    # reader4 chose a topic (the category last week's matchups are in); reader5 joined in 2024.
    chose = cli("subscribers", "topics", "reader4@example.com", "--set", "coding")
    assert chose.exit_code == 0, chose.output
    with transaction() as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == "reader5@example.com")
            .values(created_at=datetime(2024, 3, 1, 12, tzinfo=UTC))
        )
    yield {"last_week": last_week}


READERS = {f"reader{i}@example.com" for i in range(6)}
IMPORTED = {"ann@mc.example", "bo@mc.example", "cy@mc.example"}


def members(name: str) -> set[str]:
    """The segment's members as its CSV export lists them."""
    done = cli("segments", "export", name)
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    return {row["email"] for row in rows}


def add(name: str, *options: str) -> dict[str, Any]:
    done = cli("segments", "add", name, *options, "--json")
    assert done.exit_code == 0, done.output
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_each_condition_keeps_exactly_its_people(db: Session, world: dict[str, Any]) -> None:
    everyone = READERS | IMPORTED | {"gone@mc.example"}
    cases: list[tuple[str, list[str], set[str]]] = [
        ("whole list", [], everyone),
        ("active", ["--status", "active"], everyone - {"gone@mc.example"}),
        ("left", ["--status", "unsubscribed", "--status", "bounced"], {"gone@mc.example"}),
        (
            "clicked or voted",
            ["--engaged-in-last", "1"],
            {"reader0@example.com", "reader1@example.com"},
        ),
        (
            "silent",
            ["--not-engaged-in-last", "4", "--status", "active"],
            everyone - {"gone@mc.example", "reader0@example.com", "reader1@example.com"},
        ),
        ("vip", ["--tag", "VIP"], {"ann@mc.example", "bo@mc.example"}),
        ("early", ["--tag", "early BIRD"], {"ann@mc.example"}),
        ("coding readers", ["--topic", "Coding"], {"reader4@example.com"}),
        ("imported", ["--source", "import"], IMPORTED),
        ("old hands", ["--joined-before", "2025-01-01"], {"reader5@example.com"}),
        ("new", ["--joined-after", "2025-01-01", "--source", "import"], IMPORTED),
        (
            "vip and clicked",
            ["--tag", "vip", "--engaged-in-last", "2"],
            set(),
        ),
    ]
    for name, options, expected in cases:
        summary = add(name, *options)
        assert members(name) == expected, (name, summary)
        assert summary["members"] == len(expected), name
    # Only reader2 opened as a person: reader3's open was a scanner's (a machine), and a click
    # or a vote is not an open.
    add("never opened any", "--never-opened")
    assert members("never opened any") == everyone - {"reader2@example.com"}
    # The counts move with the list: a new vote by reader4 makes them engaged, live.
    last_week: SentIssue = world["last_week"]
    with TestClient(create_app(), headers={"User-Agent": BROWSER}) as reader:
        assert reader.post(f"/v/{last_week.token(4)}/{last_week.slugs[1]}/1").status_code == 200
    assert members("clicked or voted") == {f"reader{i}@example.com" for i in (0, 1, 4)}
    shown = json.loads(cli("segments", "show", "CLICKED OR VOTED", "--json").stdout)
    assert shown["members"] == 3 and shown["rule"] == {"engaged_in_last": 1}
    assert shown["described"] == "clicked or voted in the last issue"
    listed = json.loads(cli("segments", "list", "--json").stdout)
    assert [s["name"] for s in listed] == sorted((s["name"] for s in listed), key=str.casefold)


def _this_weeks_issue() -> int:
    with transaction() as session:
        for name in ("01_quillmate_vs_proseforge", "04_stackwise_vs_patchpilot"):
            import_matchup(session, page(EXAMPLES / f"{name}.txt"), utcnow() - timedelta(hours=1))
        return issues.build_issue(session).id


def _outbox() -> list[str]:
    return sorted(recipient(m) for m in mails(Path(os.environ["NEWSLETTER_OUTBOX_DIR"])))


def _delivered_to(issue_id: int) -> list[str]:
    with transaction() as session:
        return sorted(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.issue_id == issue_id)
            )
        )


def test_an_issue_sent_to_a_segment_reaches_its_mailable_members_only(
    db: Session, world: dict[str, Any]
) -> None:
    issue_id = _this_weeks_issue()
    add("Engaged", "--engaged-in-last", "1")
    assert cli("issue", "approve", str(issue_id)).exit_code == 0
    moved = cli("issue", "audience", str(issue_id), "--segment", "engaged", "--json")
    assert moved.exit_code == 0, moved.output
    shown = json.loads(moved.stdout)
    assert shown["segment"] == "Engaged" and shown["would_be_mailed"] == 2
    # A new audience takes a new approval: the editor approved it for everyone.
    assert shown["approval_withdrawn"] is True
    assert "approve it again" in moved.stderr
    with transaction() as session:
        assert issues.require(session, issue_id).status is IssueStatus.DRAFT
    assert cli("issue", "approve", str(issue_id)).exit_code == 0
    # A door that forgot the audience cannot send it to everyone.
    with transaction() as session, pytest.raises(SendError, match="segment"):
        start_send(session, issue_id)
    with transaction() as session:
        assert issues.require(session, issue_id).status is IssueStatus.APPROVED
    # While it is to go there, the segment cannot be deleted.
    refused = cli("segments", "delete", "Engaged")
    assert refused.exit_code == 1 and "audience of issue" in refused.output
    # reader1 leaves before the send: a member, no longer mailable.
    assert cli("subscribers", "unsubscribe", "reader1@example.com").exit_code == 0

    sent = cli("issue", "send", str(issue_id))
    assert sent.exit_code == 0, sent.output
    assert _outbox() == ["reader0@example.com"]
    assert _delivered_to(issue_id) == ["reader0@example.com"]
    after = json.loads(cli("issue", "audience", str(issue_id), "--json").stdout)
    assert after["sent_to"] == {
        "segment_id": after["sent_to"]["segment_id"],
        "segment": "Engaged",
        "rule": {"engaged_in_last": 1},
        "described": "clicked or voted in the last issue",
        "recipients": 1,
    }
    too_late = cli("issue", "audience", str(issue_id), "--everyone")
    assert too_late.exit_code == 1 and "too late" in too_late.output
    # Sent: the segment may go, and the issue still says what it went to.
    assert cli("segments", "delete", "Engaged").exit_code == 0
    with transaction() as session:
        assert session.scalars(select(Segment)).all() == []
    kept = json.loads(cli("issue", "audience", str(issue_id), "--json").stdout)
    assert kept["sent_to"]["segment"] == "Engaged" and kept["sent_to"]["recipients"] == 1


def test_the_scheduler_sends_a_scheduled_issue_to_its_segment(
    db: Session, world: dict[str, Any]
) -> None:
    from newsletter.scheduling.clock import ManualClock
    from newsletter.scheduling.runner import Scheduler

    issue_id = _this_weeks_issue()
    segment = add("VIPs", "--tag", "vip")
    with transaction() as session:
        issues.set_segment(session, issue_id, segment["id"])
        issues.approve(session, issue_id, by="editor@example.com")
        at = utcnow() + timedelta(minutes=5)
        issues.schedule(session, issue_id, at)
    Scheduler(clock=ManualClock(at + timedelta(minutes=1))).tick()
    assert _outbox() == ["ann@mc.example", "bo@mc.example"]
    with transaction() as session:
        issue = session.get(Issue, issue_id)
        assert issue is not None and issue.status is IssueStatus.SENT
        assert issue.audience is not None and issue.audience["segment"] == "VIPs"


def test_a_send_to_everyone_records_whom_it_went_to(db: Session, world: dict[str, Any]) -> None:
    issue_id = _this_weeks_issue()
    assert cli("issue", "approve", str(issue_id)).exit_code == 0
    assert cli("issue", "send", str(issue_id)).exit_code == 0
    mailable = READERS | IMPORTED
    # reader4 reads Coding only, and this week has none: their delivery is skipped, counted.
    assert set(_outbox()) == mailable - {"reader4@example.com"}
    shown = json.loads(cli("issue", "audience", str(issue_id), "--json").stdout)
    assert shown["sent_to"] == {"segment": None, "recipients": len(mailable)}

"""Each reader gets the week's matchups in their topics (issue 17), read from the outbox.

Four matchups: Writing, Developer Tools, Video, and one of a Video and a Finance tool. The
readers chose nothing (the whole issue), one topic, two, every topic of the week (the whole
issue again), only a topic with nothing this week (no mail, and the ledger says why), or a
topic and no tracking. Each mail in the outbox carries exactly their matchups, with a subject
made from those; each distinct set of matchups is rendered once, however many combinations of
topics lead to it; the variant is fixed in the ledger when the send starts, so a change of
topics afterwards, a second worker or a restart never changes what anyone gets.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import IssueVariant
from newsletter.matchups.service import import_matchup
from newsletter.orm import utcnow
from newsletter.sending.models import Delivery, DeliveryStatus
from newsletter.sending.service import NOTHING_IN_THEIR_TOPICS, start_send
from newsletter.sending.worker import run_until_done
from subscribers import service as subscribers
from subscribers.models import Subscriber
from tests.issues.helpers import EXAMPLES, page, renamed
from tests.subscribers.helpers import cli, client
from tests.web.world import body, links_in, mails, recipient

TITLES = {
    "writing": "Quillmate vs Proseforge",
    "dev": "Stackwise vs Patchpilot",
    "video": "Loomtide vs Framecast",
    "mixed": "Ledgerly AI vs Tallybot",
}

READERS: dict[str, tuple[list[str], set[str] | None]] = {
    # address: (topics, the matchups they get; None: no mail)
    "all@example.com": ([], {"writing", "dev", "video", "mixed"}),
    "dev@example.com": (["Developer Tools"], {"dev"}),
    "video@example.com": (["Video"], {"video", "mixed"}),
    "vidfin@example.com": (["Video", "Finance"], {"video", "mixed"}),
    "fin@example.com": (["Finance"], {"mixed"}),
    "every@example.com": (
        ["Writing", "Developer Tools", "Video"],
        {"writing", "dev", "video", "mixed"},
    ),
    "gone@example.com": (["Cooking"], None),  # a topic the site no longer publishes
    "quiet@example.com": (["Video"], {"video", "mixed"}),  # and tracking off
}


@pytest.fixture
def week(db: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "3")
    from newsletter.settings import reset_settings

    reset_settings()
    renders: list[frozenset[str] | None] = []
    real = issues.content

    def counting(session: Session, issue: Any, *, categories: frozenset[str] | None = None) -> Any:
        renders.append(categories)
        return real(session, issue, categories=categories)

    monkeypatch.setattr(issues, "content", counting)
    files = ["01_quillmate_vs_proseforge", "04_stackwise_vs_patchpilot", "05_loomtide_vs_framecast"]
    pages = [page(EXAMPLES / f"{name}.txt") for name in files]
    ledgerly = page(EXAMPLES / "06_ledgerly_ai_vs_tallybot.txt")
    pages.append(renamed(ledgerly, "Ledgerly AI", "Tallybot", category="Video"))
    with transaction() as session:
        for data in pages:
            import_matchup(session, data, utcnow() - timedelta(hours=1))
        issue_id = issues.build_issue(session).id
        for address, (topics, _) in READERS.items():
            subscriber, _ = subscribers.add_by_admin(session, address, "", source="test")
            subscribers.set_topics(session, subscriber.id, topics)
            if address.startswith("quiet"):
                subscribers.set_tracking_opt_out(session, subscriber.id, True)
        issues.approve(session, issue_id, by="editor@example.com")
    return {"issue_id": issue_id, "renders": renders}


def _got(message: EmailMessage) -> set[str]:
    html = body(message, "html") or ""
    text = body(message, "plain") or ""
    got = {key for key, title in TITLES.items() if title in html}
    assert got == {key for key, title in TITLES.items() if title in text}, "html and text differ"
    return got


def _by_reader() -> dict[str, EmailMessage]:
    found: dict[str, EmailMessage] = {}
    for message in mails(Path(os.environ["NEWSLETTER_OUTBOX_DIR"])):
        address = recipient(message)
        assert address not in found, f"{address} was mailed twice"
        found[address] = message
    return found


def test_each_reader_gets_the_matchups_in_their_topics_and_one_render_per_set(
    db: Session, week: dict[str, Any]
) -> None:
    issue_id = week["issue_id"]
    renders = week["renders"]
    renders.clear()
    with transaction() as session:
        assert start_send(session, issue_id)
    # One render for each distinct set of matchups, tracked and untracked: {dev}, {video,
    # mixed} (Video, and Video with Finance), {mixed}. Every topic of the week is the whole
    # issue, frozen at approval.
    assert len(renders) == 6
    assert set(renders) == {
        frozenset({"Developer Tools"}),
        frozenset({"Video"}),
        frozenset({"Finance"}),
    }
    run_until_done(issue_id, worker_id="test:1")

    got = _by_reader()
    assert set(got) == {a for a, (_, wanted) in READERS.items() if wanted is not None}
    whole_subject = str(got["all@example.com"]["Subject"])
    for address, message in got.items():
        wanted = READERS[address][1]
        assert _got(message) == wanted, address
    with transaction() as session:
        expected = issues.content(
            session, issues.require(session, issue_id), categories=frozenset({"Developer Tools"})
        ).subject
    assert str(got["dev@example.com"]["Subject"]) == expected != whole_subject
    assert str(got["every@example.com"]["Subject"]) == whole_subject
    # The same set reached by two combinations of topics is the same mail.
    assert str(got["video@example.com"]["Subject"]) == str(got["vidfin@example.com"]["Subject"])
    # Tracking off: the same matchups, no pixel.
    assert "/o/" not in (body(got["quiet@example.com"], "html") or "")
    assert "/o/" in (body(got["video@example.com"], "html") or "")

    db.expire_all()
    rows = {
        email: (status, variant, error)
        for email, status, variant, error in db.execute(
            select(Subscriber.email, Delivery.status, Delivery.variant, Delivery.error).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        )
    }
    assert rows["gone@example.com"] == (DeliveryStatus.SKIPPED, 0, NOTHING_IN_THEIR_TOPICS)
    assert rows["all@example.com"][1] is None and rows["every@example.com"][1] is None
    assert rows["video@example.com"][1] != rows["vidfin@example.com"][1]
    assert {status for status, _, _ in rows.values()} == {
        DeliveryStatus.SENT,
        DeliveryStatus.SKIPPED,
    }
    variants = db.scalars(select(IssueVariant).where(IssueVariant.issue_id == issue_id)).all()
    assert {v.categories for v in variants} == {
        "Developer Tools",
        "Video",
        "Finance",
        "Finance; Video",
    }

    # Every link of a variant's mail works: its click redirects were recorded with it (GETs
    # only: no button is pressed, so nothing is voted or unsubscribed).
    web = client()
    base = "http://localhost:8000"
    followed = 0
    for address in ("dev@example.com", "fin@example.com", "quiet@example.com"):
        ours = [u for u in links_in(got[address]) if u.startswith(base)]
        assert any("/c/" in u for u in ours) == (address != "quiet@example.com"), address
        for url in ours:
            answer = web.get(url[len(base) :], follow_redirects=False)
            assert answer.status_code < 400, (address, url, answer.status_code)
            followed += 1
    assert followed > 15

    # The operator reads who got what from `issue status`.
    shown = cli("issue", "status", str(issue_id))
    assert shown.exit_code == 0, shown.output
    assert "2 get the whole issue" in shown.output
    assert "1 skipped: nothing in their topics this week" in shown.output
    assert f"1 get 1 matchups in Developer Tools: {expected!r}" in shown.output
    assert "2 get 2 matchups in Video:" in shown.output  # video@ and quiet@
    as_json = json.loads(cli("issue", "status", str(issue_id), "--json").stdout)
    assert sum(v["deliveries"] for v in as_json["variants"]) == len(READERS)


def test_topics_changed_after_the_start_and_two_workers_change_nothing_anyone_gets(
    db: Session, week: dict[str, Any]
) -> None:
    issue_id = week["issue_id"]
    with transaction() as session:
        assert start_send(session, issue_id)
        # The reader changes their mind once the send has started: this issue is already
        # theirs as it was (the ledger names its variant); the next follows the new choice.
        dev = subscribers.find(session, "dev@example.com")
        assert dev is not None
        subscribers.set_topics(session, dev.id, ["Finance"])
    workers = [
        threading.Thread(target=run_until_done, args=(issue_id,), kwargs={"worker_id": f"w{n}"})
        for n in range(2)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    got = _by_reader()
    assert _got(got["dev@example.com"]) == {"dev"}
    for address, message in got.items():
        assert _got(message) == READERS[address][1], address

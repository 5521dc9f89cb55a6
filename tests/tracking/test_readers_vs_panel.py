"""Readers against the panel, end to end: last week's issue is sent to the outbox, readers follow
the vote links in their own copies over HTTP (a link scanner follows some too), and this week's
issue opens with what the people voted beside the panel's picks; the vote page shows each
reader their own record; the web version and the archive show the same block."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.issues import repository as issues_repository
from newsletter.issues import service as issues
from newsletter.issues.weeks import week_bounds, week_of
from newsletter.votes.panel import ReadersVsPanel as Block
from newsletter.votes.panel import ReaderVote, Tally, reader_record, readers_summary
from newsletter.web.app import create_app
from tests.issues.helpers import add_matchups, generated, path_of, send_week, text_of, vote_links
from tests.subscribers.helpers import cli, outbox
from tests.tracking.conftest import BROWSER

SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel URL scanner)"
ZONE = ZoneInfo("Europe/Paris")


@pytest.fixture
def machine_window_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # The mail was sent a moment ago: without this, every hit falls in the scanners' window.
    from newsletter.settings import reset_settings

    monkeypatch.setenv("NEWSLETTER_MACHINE_WINDOW_SECONDS", "0")
    reset_settings()


def test_this_weeks_issue_opens_with_how_readers_voted_against_the_panel(
    db: Session, machine_window_off: None
) -> None:
    now = datetime.now(UTC)
    this_week = week_of(now, ZONE)
    last_week = week_of(now - timedelta(days=7), ZONE)
    last_start, _ = week_bounds(last_week, ZONE)
    add_matchups(
        db,
        [
            generated("Alpha", "Beta", (100, 25)),  # readers will go against the panel
            generated("Gamma", "Delta", (75, 50)),  # readers side with it
            generated("Eta", "Theta", (50, 50)),  # a level panel: nothing to side with
        ],
        last_start + timedelta(hours=2),
    )
    for i in range(4):
        assert cli("subscribers", "add", f"reader{i}@example.com").exit_code == 0
    send_week(db, last_week, now)
    copies = {str(m["To"]): vote_links(m) for m in outbox()}
    assert len(copies) == 4

    web = TestClient(create_app())
    people = {
        "reader0@example.com": ["Beta", "Gamma", "Eta"],
        "reader1@example.com": ["Beta", "Gamma"],
        "reader2@example.com": ["Alpha", "Delta"],
    }
    for reader, picks in people.items():
        for name in picks:
            page = web.get(path_of(copies[reader][name]), headers={"User-Agent": BROWSER})
            assert page.status_code == 200 and "your vote is in" in page.text
    # A scanner opening reader3's links votes for everything: none of it may count.
    for url in copies["reader3@example.com"].values():
        page = web.get(path_of(url), headers={"User-Agent": SCANNER})
        assert "Confirm your vote" in page.text

    # The vote page shows the reader their own record against the panel.
    again = web.get(path_of(copies["reader0@example.com"]["Beta"]), headers={"User-Agent": BROWSER})
    assert "You against the panel" in again.text
    assert "You have sided with the panel on 1 of 2 matchups (50%) over 1 issue." in again.text
    assert re.search(rf"<th scope=\"row\">{last_week}</th>\s*<td>3</td>\s*<td>1</td>", again.text)

    # Alpha vs Beta: panel Alpha, people 2–1 for Beta (the scanner's Alpha vote is not counted).
    # Gamma vs Delta: panel Gamma, people 2–1 for Gamma. Eta vs Theta: level panel.
    expected = (
        "Last week you sided with the panel on 1 of 2; the widest gap: Alpha vs Beta, where the "
        "panel picked Alpha (100% to 25%) and 67% of you would ship Beta."
    )
    add_matchups(db, [generated("Iota", "Kappa", (75, 50))], now - timedelta(minutes=1))
    this_id = send_week(db, this_week, now)
    [text] = [
        text_of(m) for m in outbox() if m["To"] == "reader1@example.com" and this_week in text_of(m)
    ]
    [mine] = [m for m in outbox() if text_of(m) == text]
    html = mine.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f"READERS AGAINST THE PANEL\n{expected}" in text
    assert "Eta vs Theta: the panel was level at 50%; 100% of you picked Eta (1 vote)." in text
    assert "Readers against the panel" in html and expected.replace("'", "&#39;") in html
    # It comes before the week's own matchups.
    assert html.index("Readers against the panel") < html.index("This week at a glance")

    # The web version and the archive show the same block.
    public = web.get(f"/issues/{this_week}")
    assert public.status_code == 200 and "Readers against the panel" in public.text
    archive = web.get("/issues")
    assert "Readers sided with the panel on 1 of 2" in archive.text
    db.expire_all()
    issue = issues_repository.get(db, this_id)
    assert issue is not None and "Readers against the panel" in (issue.rendered_html or "")


def test_no_block_when_nobody_voted(db: Session) -> None:
    now = datetime.now(UTC)
    last_week = week_of(now - timedelta(days=7), ZONE)
    last_start, _ = week_bounds(last_week, ZONE)
    add_matchups(db, [generated("Alpha", "Beta", (100, 25))], last_start + timedelta(hours=2))
    assert cli("subscribers", "add", "quiet@example.com").exit_code == 0
    send_week(db, last_week, now)
    add_matchups(db, [generated("Iota", "Kappa", (75, 50))], now - timedelta(minutes=1))
    issue = issues.build_issue(db, week_of(now, ZONE), now=now)
    assert issues.content(db, issue).readers is None


def _tally(panel: tuple[int, int], votes: tuple[int, int], name: str = "A") -> Tally:
    return Tally(1, name.lower(), (name, "B"), panel, votes)


@pytest.mark.parametrize(
    ("tallies", "summary"),
    [
        (
            [_tally((75, 50), (3, 1)), _tally((75, 50), (9, 1), "C")],
            "Last week you sided with the panel on both; the widest gap: A vs B, where 75% of "
            "you backed the panel's pick, A.",
        ),
        (
            [_tally((75, 50), (1, 3))],
            "Last week you went against the panel on the one matchup; the widest gap: A vs B, "
            "where the panel picked A (75% to 50%) and 75% of you would ship B.",
        ),
        (
            [_tally((75, 50), (4, 1))],
            "Last week you sided with the panel; the widest gap: A vs B, where 80% of you backed "
            "the panel's pick, A.",
        ),
        (
            [_tally((50, 50), (4, 1)), _tally((75, 50), (2, 2), "C")],
            "Last week (2026-W09) there was no panel pick for your votes to side with or against.",
        ),
    ],
)
def test_readers_summary_cases(tallies: list[Tally], summary: str) -> None:
    assert readers_summary(Block("2026-W09", tuple(tallies))) == summary


def test_a_readers_record_over_time() -> None:
    record = reader_record(
        [
            ReaderVote("2026-W09", 0, (75, 50)),
            ReaderVote("2026-W08", 1, (75, 50)),
            ReaderVote("2026-W09", 1, (50, 50)),
            ReaderVote("2026-W09", 1, (25, 50)),
        ]
    )
    assert [(w.week, w.voted, w.compared, w.agreed) for w in record.weeks] == [
        ("2026-W08", 1, 1, 0),
        ("2026-W09", 3, 2, 2),
    ]
    assert record.summary == (
        "You have sided with the panel on 2 of 3 matchups (67%) over 2 issues."
    )

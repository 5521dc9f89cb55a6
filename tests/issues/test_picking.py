"""Which matchups an issue carries, in what order, and what survives a rebuild (both DBs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.issues import repository, service
from newsletter.issues.models import Issue, IssueStatus
from newsletter.security.delivery_tokens import TOKEN_PLACEHOLDER
from newsletter.settings import reset_settings
from tests.issues.helpers import add_matchups, example_pages, seed_pages

PARIS = ZoneInfo("Europe/Paris")
# 2026-W10 runs Monday 2 March to Sunday 8 March 2026 (Paris time).
W10_MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=PARIS)


def _slugs(session: Session, issue: Issue) -> list[str]:
    return list(service.to_json(session, issue)["matchups"])


def test_most_decisive_first_and_one_issue_per_week(db: Session) -> None:
    add_matchups(db, seed_pages(), W10_MONDAY)
    now = W10_MONDAY + timedelta(days=2)
    issue = service.build_issue(db, "2026-W10", now=now)
    db.commit()
    slugs = _slugs(db, issue)
    assert len(slugs) == 5
    # The two 100%-to-50% matchups lead, the 75%-to-50% ones follow.
    assert set(slugs[:2]) == {
        "claude-haiku-open-weights-vs-mistral-3-small-24b",
        "claude-haiku-open-weights-vs-mistral-medium-3",
    }
    again = service.build_issue(db, "2026-W10", now=now + timedelta(hours=1))
    db.commit()
    assert again.id == issue.id
    assert db.scalar(select(func.count()).select_from(Issue)) == 1


def test_week_boundaries_follow_the_newsletter_time_zone(db: Session) -> None:
    pages = example_pages()
    sunday_late = datetime(2026, 3, 8, 23, 30, tzinfo=PARIS)  # still W10 in Paris
    monday_early = datetime(2026, 3, 9, 0, 30, tzinfo=PARIS)  # W11 in Paris, Sunday in UTC
    add_matchups(db, pages[:1], sunday_late)
    add_matchups(db, pages[1:2], monday_early)
    late = datetime(2026, 3, 20, tzinfo=UTC)
    w10 = service.build_issue(db, "2026-W10", now=late)
    db.commit()
    assert _slugs(db, w10) == [pages[0].slug]
    w11 = service.build_issue(db, "2026-W11", now=late)
    db.commit()
    assert _slugs(db, w11) == [pages[1].slug]


def test_next_issue_starts_at_the_previous_cut_off(db: Session) -> None:
    pages = example_pages()
    add_matchups(db, pages[:2], W10_MONDAY)
    w10 = service.build_issue(db, "2026-W10", now=W10_MONDAY + timedelta(days=1))
    db.commit()
    # Published after W10 was built, still inside W10: it goes to the next issue, not lost.
    add_matchups(db, pages[2:3], W10_MONDAY + timedelta(days=3))
    add_matchups(db, pages[3:4], W10_MONDAY + timedelta(days=8))
    w11 = service.build_issue(db, "2026-W11", now=W10_MONDAY + timedelta(days=9))
    db.commit()
    assert sorted(_slugs(db, w10)) == sorted(p.slug for p in pages[:2])
    assert sorted(_slugs(db, w11)) == sorted(p.slug for p in pages[2:4])


def test_matchups_of_a_sent_issue_are_never_picked_again(db: Session) -> None:
    pages = example_pages()
    add_matchups(db, pages[:2], W10_MONDAY)
    w11 = service.build_issue(db, "2026-W11", now=W10_MONDAY + timedelta(days=8))
    repository.transition(db, w11.id, (IssueStatus.DRAFT,), IssueStatus.SENT)
    db.commit()
    # An older week built afterwards has no earlier cut-off, yet skips what was sent.
    w10 = service.build_issue(db, "2026-W10", now=W10_MONDAY + timedelta(days=9))
    db.commit()
    assert _slugs(db, w10) == []
    again = service.build(db, "2026-W11", now=W10_MONDAY + timedelta(days=9))
    assert not again.refreshed and again.issue.status is IssueStatus.SENT


def test_cap_moves_the_rest_to_more_this_week(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_MAX_MATCHUPS", "3")
    reset_settings()
    add_matchups(db, example_pages(), W10_MONDAY)
    issue = service.build_issue(db, "2026-W10", now=W10_MONDAY + timedelta(days=1))
    db.commit()
    data = service.to_json(db, issue)
    assert len(data["featured"]) == 3 and len(data["more_this_week"]) == 4
    service.approve(db, issue.id, by="editor@example.com")  # freezes: renders and links
    tracked = service.frozen_content(db, issue.id, tracked=True)
    more = tracked.text.split("MORE THIS WEEK", 1)[1]
    key_of = {link.url: link.key for link in repository.links_of(db, issue.id)}
    html, text = service.preview(db, issue.id)
    for slug in data["more_this_week"]:
        # The subscriber's tracked copy goes through the click redirect to the recorded URL;
        # the editor's preview opens the matchup itself (the redirect knows only deliveries).
        url = f"https://aitoolverdicts.example/matchups/{slug}"
        assert f"/c/{TOKEN_PLACEHOLDER}/{key_of[url]}" in more
        assert url in text.split("MORE THIS WEEK", 1)[1] and url in html
    assert TOKEN_PLACEHOLDER not in html and TOKEN_PLACEHOLDER not in text


def test_editor_overrides_survive_a_rebuild(db: Session) -> None:
    pages = example_pages()
    add_matchups(db, pages[:4], W10_MONDAY)
    now = W10_MONDAY + timedelta(days=1)
    issue = service.build_issue(db, "2026-W10", now=now)
    service.edit_issue(db, issue.id, subject="Edited\r\nBcc: x@example.com", intro="Hello.")
    service.edit_matchup(db, issue.id, pages[3].slug, position=1, summary="Our own words.")
    service.edit_matchup(db, issue.id, pages[0].slug, excluded=True)
    db.commit()
    add_matchups(db, pages[4:], W10_MONDAY + timedelta(days=2))
    rebuilt = service.build_issue(db, "2026-W10", now=now + timedelta(days=2))
    db.commit()
    slugs = _slugs(db, rebuilt)
    assert slugs[0] == pages[3].slug
    assert pages[0].slug not in slugs
    assert {p.slug for p in pages[4:]} <= set(slugs)
    content = service.content(db, rebuilt)
    assert content.subject == "Edited Bcc: x@example.com"
    assert content.intro == "Hello."
    assert content.featured[0].summary == "Our own words."
    service.edit_matchup(db, rebuilt.id, pages[0].slug, excluded=False)
    db.commit()
    assert pages[0].slug in _slugs(db, rebuilt)


def test_approve_freezes_and_an_edit_withdraws_the_approval(db: Session) -> None:
    add_matchups(db, example_pages(), W10_MONDAY)
    issue = service.build_issue(db, "2026-W10", now=W10_MONDAY + timedelta(days=1))
    approved = service.approve(db, issue.id, by="editor@example.com")
    db.commit()
    assert approved.status is IssueStatus.APPROVED and approved.rendered_html
    frozen = service.frozen_content(db, issue.id, tracked=True)
    untracked = service.frozen_content(db, issue.id, tracked=False)
    assert frozen.html == approved.rendered_html
    assert "/o/" + TOKEN_PLACEHOLDER not in untracked.html
    with pytest.raises(service.IssueError, match="only a draft can be approved"):
        service.approve(db, issue.id, by="x")
    for key in {link.key for link in repository.links_of(db, issue.id)}:
        assert repository.link_for(db, issue.id, key) is not None
    scheduled = service.schedule(
        db, issue.id, datetime(2026, 3, 3, 9, tzinfo=PARIS), now=W10_MONDAY
    )
    db.commit()
    assert scheduled.status is IssueStatus.SCHEDULED
    assert [i.id for i in repository.due_issues(db, datetime(2026, 3, 3, 9, tzinfo=UTC))] == [
        issue.id
    ]
    assert service.edit_issue(db, issue.id, subject="Better")
    db.commit()
    reopened = service.require(db, issue.id)
    assert reopened.status is IssueStatus.DRAFT and reopened.rendered_html is None


def test_cli_build_json_and_refusals(db_url: str) -> None:
    runner = CliRunner()
    from newsletter.db import transaction

    with transaction() as session:
        add_matchups(session, example_pages(), datetime.now(UTC) - timedelta(minutes=5))
    result = runner.invoke(app, ["issue", "build", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"id", "week", "matchups"}
    assert len(data["matchups"]) == 7
    bad = runner.invoke(app, ["issue", "build", "--week", "2026-W54"])
    assert bad.exit_code != 0 and "2026 has no week 54" in bad.stderr
    missing = runner.invoke(app, ["issue", "matchup", str(data["id"]), "nope", "--exclude"])
    assert missing.exit_code != 0 and "matchup 'nope' is not in issue" in missing.stderr


def test_cli_editing_reports_json_and_the_preview_writes_files(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    from newsletter.db import transaction

    with transaction() as session:
        add_matchups(session, example_pages(), datetime.now(UTC) - timedelta(minutes=5))
    built = json.loads(runner.invoke(app, ["issue", "build", "--json"]).stdout)
    issue_id, last = str(built["id"]), built["matchups"][-1]

    edited = runner.invoke(app, ["issue", "edit", issue_id, "--subject", "Hand-written", "--json"])
    assert edited.exit_code == 0, edited.output
    assert json.loads(edited.stdout)["subject"] == "Hand-written"

    moved = runner.invoke(app, ["issue", "matchup", issue_id, last, "--position", "1", "--json"])
    assert moved.exit_code == 0, moved.output
    report = json.loads(moved.stdout)
    assert report["matchups"][0] == last
    assert report["overrides"]["matchups"][last]["position"] == 1

    html, text = tmp_path / "p.html", tmp_path / "p.txt"
    preview = runner.invoke(
        app, ["issue", "preview", issue_id, "--html", str(html), "--text", str(text), "--json"]
    )
    assert preview.exit_code == 0, preview.output
    written = json.loads(preview.stdout)["written"]
    assert [w["path"] for w in written] == [str(html), str(text)]
    assert written[0]["bytes"] == len(html.read_bytes())
    assert "Hand-written" in html.read_text()

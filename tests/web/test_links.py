"""Links from the mail the service really sends (read back from the outbox .eml files) and from
its public pages, followed through the app, on SQLite and PostgreSQL. The crawl in real Chromium
is tests/web/test_journeys.py; these pin each broken path of issue 13 on both engines."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from newsletter import paths
from newsletter.db import transaction
from newsletter.settings import get_settings
from tests.web.conftest import EDITOR
from tests.web.world import body, hrefs, links_in, mails, recipient, send_issue

READERS = ["ada@example.com", "bob@example.com"]


def _path(url: str) -> str:
    base = get_settings().newsletter_base_url.rstrip("/")
    assert url.startswith(base), f"{url} does not point at this service"
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _ours(urls: list[str]) -> list[str]:
    base = get_settings().newsletter_base_url.rstrip("/")
    return [u for u in urls if u.startswith(base)]


def test_a_reader_who_was_sent_an_issue_downloads_their_data(
    anon: TestClient, draft_issue: int, isolated_env: Path
) -> None:
    send_issue(draft_issue, READERS)
    [mail] = [m for m in mails(isolated_env / "outbox") if recipient(m) == READERS[0]]
    preferences = next(u for u in links_in(mail) if "/p/" in u)
    page = anon.get(_path(preferences))
    assert page.status_code == 200
    export = anon.get(_path(preferences) + "/export.json")
    assert export.status_code == 200, export.text
    data = export.json()
    assert data["email"] == READERS[0]
    [delivery] = data["deliveries"]
    assert delivery["issue_id"] == draft_issue and delivery["status"] == "sent"
    assert delivery["sent_at"].endswith("+00:00")  # an ISO 8601 moment with its offset


def test_the_ready_for_review_mail_opens_the_issue_for_the_editor(
    editor: TestClient, db_url: str, isolated_env: Path, monkeypatch: object
) -> None:
    import os
    from datetime import timedelta

    from newsletter.matchups.page_parser import decode_page, parse_page
    from newsletter.matchups.service import import_matchup
    from newsletter.orm import utcnow
    from newsletter.scheduling.weekly import run_weekly_job
    from newsletter.settings import reset_settings
    from tests.conftest import SEEDS

    os.environ["NEWSLETTER_EDITOR_EMAILS"] = EDITOR
    try:
        reset_settings()
        with transaction() as session:
            path = sorted(SEEDS.glob("*.txt"))[0]
            data = parse_page(decode_page(path.read_bytes()), path.name)
            import_matchup(session, data, utcnow() - timedelta(hours=1))
        report = run_weekly_job(now=utcnow())
    finally:
        del os.environ["NEWSLETTER_EDITOR_EMAILS"]
        reset_settings()
    [notice] = mails(isolated_env / "outbox")
    [link] = _ours(links_in(notice))
    assert _path(link) == paths.editor_issue(report.issue_id or 0)
    # One click in the HTML part too: the URL is a link there, not text to copy.
    html_part = body(notice, "html") or ""
    assert link in _ours(hrefs(html_part))
    page = editor.get(_path(link))
    assert page.status_code == 200
    assert "Save and preview" in page.text and report.week in page.text


def test_the_web_version_carries_nobodys_links_and_offers_a_subscription(
    anon: TestClient, draft_issue: int, isolated_env: Path
) -> None:
    send_issue(draft_issue, READERS)
    archive = anon.get(paths.ARCHIVE)
    [web_version] = [h for h in hrefs(archive.text) if h.startswith("/issues/20")]
    page = anon.get(web_version)
    assert page.status_code == 200
    links = hrefs(page.text)
    personal = [u for u in links if any(f"/{k}/" in u for k in ("u", "p", "v", "c", "o"))]
    assert personal == []
    assert "because you subscribed" not in page.text
    assert any(urlsplit(u).path == paths.SUBSCRIBE for u in links)
    votes = [u for u in links if "/vote/" in u]
    assert len(votes) >= 2
    for vote in votes:
        answer = anon.get(_path(vote.split("#")[0]))
        assert answer.status_code == 200, vote
        assert "Which would you ship?" in answer.text
        assert 'action="/subscribe"' in answer.text
    # Each subscriber's own copy still carries their own links.
    [mail] = [m for m in mails(isolated_env / "outbox") if recipient(m) == READERS[0]]
    assert "because you subscribed" in (body(mail, "plain") or "")


def test_a_public_vote_page_for_an_unknown_matchup_or_week_is_a_404(
    anon: TestClient, draft_issue: int
) -> None:
    from tests.web.conftest import mark_sent

    mark_sent(draft_issue)
    with transaction() as session:
        from newsletter.issues import repository

        issue = repository.get(session, draft_issue)
        assert issue is not None
        week = issue.week
    for path in (
        paths.public_vote(week, "no-such-matchup"),
        paths.public_vote("2001-W01", "x"),
        f"/issues/{week}/vote/%00%ED%A0%80",  # NUL and a lone surrogate, as bytes on the wire
        f"/issues/{week}/vote/" + "9" * 5000,
        paths.public_vote("é" * 5000, "x"),
    ):
        answer = anon.get(path)
        # A NUL or lone surrogate is refused before routing (newsletter/web/textinput.py).
        assert answer.status_code == (400 if "%00" in path else 404), path
        assert "Traceback" not in answer.text


def test_test_copies_go_to_several_addresses_and_every_link_works_and_records_nothing(
    anon: TestClient, draft_issue: int, isolated_env: Path
) -> None:
    from newsletter.cli import app
    from newsletter.tracking.models import TrackingEvent
    from newsletter.votes.models import Vote

    send_issue(draft_issue, ["reader@example.com"])
    for old in (isolated_env / "outbox").glob("*.eml"):
        old.unlink()
    result = CliRunner().invoke(
        app,
        [
            "issue",
            "send-test",
            str(draft_issue),
            "--to",
            "One@Example.com",
            "--to",
            "two@example.com, three@example.com",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [r["to"] for r in report["results"]] == [
        "one@example.com",
        "two@example.com",
        "three@example.com",
    ]
    copies = mails(isolated_env / "outbox")
    assert sorted(recipient(m) for m in copies) == [
        "one@example.com",
        "three@example.com",
        "two@example.com",
    ]
    with transaction() as session:
        events_before = session.query(TrackingEvent).count()
        votes_before = session.query(Vote).count()
    for link in _ours(links_in(copies[0])):
        page = anon.get(_path(link))
        assert page.status_code == 200, link
    one_click = next(
        u for u in links_in(copies[0]) if u == str(copies[0]["List-Unsubscribe"]).strip("<>")
    )
    posted = anon.post(_path(one_click), data={"List-Unsubscribe": "One-Click"})
    assert posted.status_code == 200 and "test copy" in posted.text
    with transaction() as session:
        assert session.query(TrackingEvent).count() == events_before
        assert session.query(Vote).count() == votes_before
    from subscribers.service import find

    with transaction() as session:
        reader = find(session, "reader@example.com")
        assert reader is not None and reader.status.value == "active"


def test_a_test_send_refuses_bad_or_too_many_addresses_naming_them(draft_issue: int) -> None:
    from newsletter.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["issue", "send-test", str(draft_issue), "--to", "a@example.com,nope"])
    assert bad.exit_code != 0 and "'nope' is not an email address" in bad.output
    nul = runner.invoke(app, ["issue", "send-test", str(draft_issue), "--to", "a\x00@example.com"])
    assert nul.exit_code != 0 and "not an email address" in nul.output
    many = ",".join(f"r{i}@example.com" for i in range(11))
    over = runner.invoke(app, ["issue", "send-test", str(draft_issue), "--to", many])
    assert over.exit_code != 0 and "at most 10" in over.output
    empty = runner.invoke(app, ["issue", "send-test", str(draft_issue), "--to", " , "])
    assert empty.exit_code != 0 and "at least one address" in empty.output


def test_the_editor_sends_a_test_to_addresses_of_their_choosing(
    editor: TestClient, draft_issue: int, isolated_env: Path
) -> None:
    from tests.web.conftest import csrf_from

    page = editor.get(paths.editor_issue(draft_issue))
    sent = editor.post(
        f"/admin/issues/{draft_issue}/test",
        data={"csrf_token": csrf_from(page.text), "to": "me@example.com, you@example.com"},
    )
    assert "Test sent to me@example.com, you@example.com." in sent.text
    assert sorted(recipient(m) for m in mails(isolated_env / "outbox")) == [
        "me@example.com",
        "you@example.com",
    ]
    # A lone surrogate and a NUL, as bytes on the wire (a client library would refuse them).
    refused = editor.post(
        f"/admin/issues/{draft_issue}/test",
        content=f"csrf_token={csrf_from(sent.text)}&to=x%40example.com%2C%ED%A0%80%00%40bad",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    # Refused before the route (newsletter/web/textinput.py), naming the field; nothing sent.
    assert refused.status_code == 400 and "to" in refused.text
    assert len(mails(isolated_env / "outbox")) == 2


def test_home_is_the_public_front_page(anon: TestClient, draft_issue: int) -> None:
    from tests.web.conftest import mark_sent

    empty = anon.get(paths.HOME)
    assert empty.status_code == 200 and 'action="/subscribe"' in empty.text
    mark_sent(draft_issue)
    home = anon.get(paths.HOME)
    assert home.status_code == 200
    links = hrefs(home.text)
    assert any(u.startswith("/issues/20") for u in links) and paths.ARCHIVE in links
    for link in links:
        if link.startswith("/"):
            assert anon.get(link).status_code == 200, link


def test_one_send_time_rule_everywhere_and_past_times_refused(
    editor: TestClient, draft_issue: int, staff: None
) -> None:
    """A time without a zone is in NEWSLETTER_TIMEZONE (Europe/Paris) in the CLI, the web app
    and the API alike; a time in the past is refused with the reason; times shown name it."""
    from newsletter.cli import app
    from newsletter.issues import repository
    from newsletter.issues.service import approve
    from tests.web.conftest import ADMIN, csrf_from

    with transaction() as session:
        approve(session, draft_issue, by=EDITOR)

    def scheduled_utc() -> str:
        with transaction() as session:
            issue = repository.get(session, draft_issue)
            assert issue is not None and issue.scheduled_at is not None
            return issue.scheduled_at.isoformat()

    runner = CliRunner()
    cli = runner.invoke(app, ["issue", "schedule", str(draft_issue), "--at", "2030-01-07T09:00"])
    assert cli.exit_code == 0, cli.output
    assert "Mon 07 Jan 2030 09:00 CET (Europe/Paris)" in cli.output
    assert scheduled_utc() == "2030-01-07T08:00:00+00:00"
    past = runner.invoke(app, ["issue", "schedule", str(draft_issue), "--at", "2020-01-06T09:00"])
    assert past.exit_code != 0 and "is in the past" in past.output
    gap = runner.invoke(app, ["issue", "schedule", str(draft_issue), "--at", "2030-03-31T02:30"])
    assert gap.exit_code != 0 and "does not exist in Europe/Paris" in gap.output
    junk = runner.invoke(app, ["issue", "schedule", str(draft_issue), "--at", "tomorrow\x00"])
    assert junk.exit_code != 0 and "not a date and time" in junk.output

    token = csrf_from(editor.get(paths.editor_issue(draft_issue)).text)
    web = editor.post(
        f"/admin/issues/{draft_issue}/schedule",
        data={"csrf_token": token, "at": "2030-07-01T09:00"},
    )
    assert "Mon 01 Jul 2030 09:00 CEST (Europe/Paris)" in web.text
    assert scheduled_utc() == "2030-07-01T07:00:00+00:00"
    refused = editor.post(
        f"/admin/issues/{draft_issue}/schedule",
        data={"csrf_token": token, "at": "2020-07-01T09:00"},
    )
    assert "is in the past" in refused.text
    assert scheduled_utc() == "2030-07-01T07:00:00+00:00"  # unchanged

    api_token = json.loads(runner.invoke(app, ["users", "token", ADMIN, "--json"]).stdout)["token"]
    auth = {"Authorization": f"Bearer {api_token}"}
    api = editor.post(
        f"/api/v1/issues/{draft_issue}/schedule", json={"at": "2030-01-07T10:00"}, headers=auth
    )
    assert api.status_code == 200, api.text
    assert scheduled_utc() == "2030-01-07T09:00:00+00:00"
    api_past = editor.post(
        f"/api/v1/issues/{draft_issue}/schedule", json={"at": "2020-01-07T10:00"}, headers=auth
    )
    assert api_past.status_code == 409 and "is in the past" in api_past.json()["detail"]
    # Found by the route property test: a moment at the edge of the calendar was a 500.
    for edge in ("0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "0001-01-01T00:00"):
        odd = editor.post(f"/api/v1/issues/{draft_issue}/schedule", json={"at": edge}, headers=auth)
        assert odd.status_code == 409, (edge, odd.text)
        assert "is not a send time (years 2000 to 9998)" in odd.json()["detail"]
        page = editor.post(
            f"/admin/issues/{draft_issue}/schedule", data={"csrf_token": token, "at": edge}
        )
        assert page.status_code == 200 and "is not a send time" in page.text
    assert scheduled_utc() == "2030-01-07T09:00:00+00:00"  # unchanged


def test_an_issue_with_no_matchups_is_refused_at_every_door(
    editor: TestClient, draft_issue: int, staff: None
) -> None:
    from newsletter.cli import app
    from newsletter.issues.service import edit_matchup, to_json
    from tests.web.conftest import ADMIN, csrf_from

    with transaction() as session:
        from newsletter.issues import repository

        issue = repository.get(session, draft_issue)
        assert issue is not None
        for slug in to_json(session, issue)["matchups"]:
            edit_matchup(session, draft_issue, slug, excluded=True)
    runner = CliRunner()
    cli = runner.invoke(app, ["issue", "approve", str(draft_issue)])
    assert cli.exit_code != 0 and "has no matchups to send" in cli.output
    token = csrf_from(editor.get(paths.editor_issue(draft_issue)).text)
    web = editor.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": token})
    assert "has no matchups to send" in web.text
    api_token = json.loads(runner.invoke(app, ["users", "token", ADMIN, "--json"]).stdout)["token"]
    api = editor.post(
        f"/api/v1/issues/{draft_issue}/approve", headers={"Authorization": f"Bearer {api_token}"}
    )
    assert api.status_code == 409 and "has no matchups to send" in api.json()["detail"]
    send = runner.invoke(app, ["issue", "send", str(draft_issue)])
    assert send.exit_code != 0


def test_a_new_staff_user_is_an_editor_unless_asked(db_url: str) -> None:
    from newsletter.accounts.repository import list_all
    from newsletter.cli import app

    made = CliRunner().invoke(
        app, ["users", "add", "new@example.com", "--password-stdin"], input="a long password 1\n"
    )
    assert made.exit_code == 0, made.output
    with transaction() as session:
        assert [(u.email, u.role.value) for u in list_all(session)] == [
            ("new@example.com", "editor")
        ]


def test_our_own_log_lines_hold_no_link_token_and_no_readers_address(
    anon: TestClient,
    draft_issue: int,
    isolated_env: Path,
    caplog: object,
    request: pytest.FixtureRequest,
) -> None:
    """Everything the service logs while it sends an issue and a reader follows every link of
    it (opens, clicks, votes, preferences, the data export, unsubscribing, erasure), at DEBUG:
    no line holds a whole token (they allow export and erasure) or the reader's address."""
    import logging

    assert isinstance(caplog, pytest.LogCaptureFixture)
    caplog.set_level(logging.DEBUG)
    # uvicorn's logging config (applied by any live-server test before this one) stops its
    # loggers from propagating to the root, where caplog listens: listen on them directly.
    uvicorn_loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error")]
    for logger in uvicorn_loggers:
        logger.addHandler(caplog.handler)
        caplog.set_level(logging.DEBUG, logger=logger.name)
    request.addfinalizer(lambda: [lg.removeHandler(caplog.handler) for lg in uvicorn_loggers])
    for name in ("newsletter", "subscribers", "uvicorn"):
        logging.getLogger(f"{name}.probe").debug("capture works")
    send_issue(draft_issue, READERS)
    [mail] = [m for m in mails(isolated_env / "outbox") if recipient(m) == READERS[0]]
    links = _ours(links_in(mail))
    tokens = {
        segment
        for link in links
        for segment in urlsplit(link).path.split("/")
        if len(segment) > 20 and "." in segment
    }
    assert tokens, links
    for link in links:
        anon.get(_path(link), follow_redirects=False)
        if "/v/" in link:
            anon.post(_path(link))
    preferences = next(u for u in links if "/p/" in u)
    anon.get(_path(preferences) + "/export.json")
    unsubscribe = next(u for u in links if "/u/" in u)
    anon.post(_path(unsubscribe))
    anon.post(_path(preferences) + "/erase", data={"confirmed": "yes"})
    # The test's own HTTP client (httpx) logs the URLs it asks for; the service is the rest.
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    messages = [record.getMessage() for record in ours]
    messages += [str(record.args) for record in ours if record.args]
    probes = {r.name for r in caplog.records if r.getMessage() == "capture works"}
    assert len(probes) == 3, f"the service's loggers are not all captured: {probes}"
    for token in tokens:
        assert not any(token in line for line in messages), token
        assert not any(token.split(".")[0] in line for line in messages), token
    assert not any(READERS[0] in line.lower() for line in messages)

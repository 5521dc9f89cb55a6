"""Readers' pages: the archive of sent issues, its Atom feed, and each issue's web version."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from fastapi.testclient import TestClient

from newsletter.db import transaction
from tests.web.conftest import mark_sent

ATOM = "{http://www.w3.org/2005/Atom}"


def test_drafts_are_not_published(anon: TestClient, draft_issue: int) -> None:
    assert "No issue has been sent yet" in anon.get("/issues").text
    with transaction() as session:
        from newsletter.issues.repository import get

        issue = get(session, draft_issue)
        assert issue is not None
        week = issue.week
    # The address a preview's "view in browser" link names answers, without the content.
    coming = anon.get(f"/issues/{week}")
    assert coming.status_code == 200 and "is not out yet" in coming.text
    assert "Read the full matchup" not in coming.text
    assert anon.get("/issues/2001-W01").status_code == 404
    feed = ET.fromstring(anon.get("/issues/feed.atom").content)
    assert feed.findall(f"{ATOM}entry") == []


def test_a_sent_issue_is_in_the_archive_the_feed_and_on_the_web(
    anon: TestClient, draft_issue: int
) -> None:
    from newsletter.issues.repository import get
    from newsletter.tracking.models import TrackingEvent

    mark_sent(draft_issue)
    with transaction() as session:
        issue = get(session, draft_issue)
        assert issue is not None
        week, subject = issue.week, issue.rendered_subject
    archive = anon.get("/issues").text
    assert f'href="/issues/{week}"' in archive
    response = anon.get("/issues/feed.atom")
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 1
    assert entries[0].findtext(f"{ATOM}title") == subject
    assert entries[0].find(f"{ATOM}link").get("href").endswith(f"/issues/{week}")
    page = anon.get(f"/issues/{week}")
    assert page.status_code == 200
    assert "__NL_TOKEN__" not in page.text
    assert "/o/" not in page.text  # the untracked render: no open pixel
    assert "sandbox" in page.headers["content-security-policy"]
    with transaction() as session:
        assert session.query(TrackingEvent).count() == 0


def test_head_answers_like_get_without_a_body(anon: TestClient, draft_issue: int) -> None:
    """Feed readers and link checkers send HEAD."""
    mark_sent(draft_issue)
    for path in ("/issues", "/issues/feed.atom", "/subscribe", "/login"):
        got, head = anon.get(path), anon.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert "content-security-policy" in head.headers


def test_head_on_a_tracking_url_records_nothing(anon: TestClient, draft_issue: int) -> None:
    """A link checker's HEAD is no reader's open, click or vote."""
    from newsletter.security.delivery_tokens import delivery_token
    from newsletter.tracking.models import TrackingEvent
    from newsletter.votes.models import Vote

    token = delivery_token(1, "nobody")
    for path in (f"/o/{token}.gif", f"/c/{token}/l0", f"/v/{token}/any/0"):
        assert anon.head(path).status_code in (404, 405), path
    with transaction() as session:
        assert session.query(TrackingEvent).count() == 0
        assert session.query(Vote).count() == 0

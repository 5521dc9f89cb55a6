"""The open pixel, the click redirect and the community vote, as a reader (or a scanner) hits them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueLink, IssueStatus
from newsletter.people import erasure
from newsletter.security.delivery_tokens import delivery_token
from newsletter.security.signing import sign
from newsletter.settings import reset_settings
from newsletter.tracking.models import EventType, TrackingEvent
from newsletter.votes.models import Vote
from newsletter.votes.service import community_split
from newsletter.web.tracking import PIXEL_GIF
from subscribers.models import Subscriber
from tests.tracking.conftest import World, build_world, make_matchup

SAFELINKS = "Mozilla/5.0 (compatible; Microsoft-SafeLinks/1.0)"


def events(db: Session) -> list[TrackingEvent]:
    db.expire_all()
    return list(db.scalars(select(TrackingEvent).order_by(TrackingEvent.id)))


def votes(db: Session) -> list[Vote]:
    db.expire_all()
    return list(db.scalars(select(Vote).order_by(Vote.id)))


def forgeries(world: World) -> list[str]:
    good = world.token(0)
    payload, _, signature = good.rpartition(".")
    other = world.token(1).partition(".")[0]
    return [
        "nonsense",
        f"{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",  # altered signature
        f"{other}.{signature}",  # another delivery's id under this signature
        sign("confirm", str(world.deliveries[0])),  # a real token made for another purpose
        delivery_token(987654, "nobody"),  # genuine signature, no such delivery
    ]


# --- the pixel --------------------------------------------------------------------------------


def test_the_pixel_is_a_tiny_uncached_gif_and_records_a_human_open(
    client: TestClient, world: World, db: Session
) -> None:
    response = client.get(f"/o/{world.token(0)}.gif")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL_GIF and len(PIXEL_GIF) == 43
    assert "no-store" in response.headers["cache-control"]
    [open_] = events(db)
    assert (open_.type, open_.delivery_id, open_.issue_id, open_.machine) == (
        EventType.OPENED,
        world.deliveries[0],
        world.issue_id,
        False,
    )


def test_forged_tokens_are_refused_everywhere_and_record_nothing(
    client: TestClient, world: World, db: Session
) -> None:
    for token in forgeries(world):
        for url in (f"/o/{token}.gif", f"/c/{token}/m0", f"/v/{token}/{world.slugs[0]}/0"):
            response = client.get(url, follow_redirects=False)
            assert response.status_code == 404, (url, response.status_code)
            assert "not valid" in response.text
        assert client.post(f"/v/{token}/{world.slugs[0]}/0").status_code == 404
    assert events(db) == []
    assert votes(db) == []


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0",  # Apple Mail Privacy Protection's proxy
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "Barracuda Sentinel (EE)",
        SAFELINKS,
        "",
    ],
)
def test_proxy_and_scanner_opens_are_kept_but_flagged(
    agent: str, client: TestClient, world: World, db: Session
) -> None:
    assert client.get(f"/o/{world.token(0)}.gif", headers={"User-Agent": agent}).status_code == 200
    [open_] = events(db)
    assert open_.machine is True


def test_a_hit_seconds_after_sending_is_a_machine(client: TestClient, db: Session) -> None:
    world = build_world(db, sent_at=datetime.now(UTC))
    client.get(f"/o/{world.token(0)}.gif")
    client.get(f"/c/{world.token(0)}/m0", follow_redirects=False)
    assert [e.machine for e in events(db)] == [True, True]


# --- the click redirect -----------------------------------------------------------------------


def test_a_click_redirects_to_the_issues_link_and_counts_for_its_matchup(
    client: TestClient, world: World, db: Session
) -> None:
    response = client.get(f"/c/{world.token(1)}/m1", follow_redirects=False)
    assert response.status_code == 302
    assert (
        response.headers["location"] == f"https://aitoolverdicts.example/matchups/{world.slugs[1]}"
    )
    [click] = events(db)
    assert (click.type, click.link_key, click.matchup_id, click.machine) == (
        EventType.CLICKED,
        "m1",
        world.matchups[1],
        False,
    )


def test_no_open_redirect_only_the_issues_own_links(
    client: TestClient, world: World, db: Session
) -> None:
    other = Issue(week="2026-W11", status=IssueStatus.SENT, cutoff_at=datetime.now(UTC))
    db.add(other)
    db.flush()
    db.add(IssueLink(issue_id=other.id, key="evil", url="https://evil.example/", label="x"))
    db.commit()
    for key in ("evil", "nope", "https:%2F%2Fevil.example"):
        response = client.get(f"/c/{world.token(0)}/{key}", follow_redirects=False)
        assert response.status_code == 404
        assert "location" not in response.headers
    assert events(db) == []


# --- votes ------------------------------------------------------------------------------------


def test_a_vote_thanks_the_reader_and_shows_the_community_split(
    client: TestClient, world: World, db: Session
) -> None:
    slug = world.slugs[0]
    client.get(f"/v/{world.token(0)}/{slug}/0")
    client.get(f"/v/{world.token(1)}/{slug}/0")
    page = client.get(f"/v/{world.token(2)}/{slug}/1")
    assert page.status_code == 200
    assert "Thanks" in page.text and "Windsurf" in page.text
    assert "67%" in page.text and "33%" in page.text and "3 votes" in page.text
    assert community_split(db, world.matchups[0]) == (67, 3)
    assert community_split(db, world.matchups[1]) == (None, 0)


def test_the_latest_vote_of_a_reader_is_the_one_that_counts(
    client: TestClient, world: World, db: Session
) -> None:
    slug = world.slugs[1]
    client.get(f"/v/{world.token(0)}/{slug}/0")
    client.get(f"/v/{world.token(0)}/{slug}/1")
    client.get(f"/v/{world.token(0)}/{slug}/1")
    assert [(v.delivery_id, v.tool) for v in votes(db)] == [(world.deliveries[0], 1)]
    assert community_split(db, world.matchups[1]) == (0, 1)


def test_a_scanner_vote_is_stored_flagged_uncounted_until_a_person_confirms(
    client: TestClient, world: World, db: Session
) -> None:
    url = f"/v/{world.token(0)}/{world.slugs[0]}/1"
    page = client.get(url, headers={"User-Agent": SAFELINKS})
    assert page.status_code == 200
    assert "Confirm your vote" in page.text and 'method="post"' in page.text
    [vote] = votes(db)
    assert vote.machine is True
    assert community_split(db, world.matchups[0]) == (None, 0)

    confirmed = client.post(url)
    assert "Thanks" in confirmed.text
    assert community_split(db, world.matchups[0]) == (0, 1)


def test_a_scanner_never_overwrites_a_persons_vote(
    client: TestClient, world: World, db: Session
) -> None:
    slug = world.slugs[0]
    client.get(f"/v/{world.token(0)}/{slug}/0")
    client.get(f"/v/{world.token(0)}/{slug}/1", headers={"User-Agent": SAFELINKS})
    assert [(v.tool, v.machine) for v in votes(db)] == [(0, False)]
    assert community_split(db, world.matchups[0]) == (100, 1)


def test_votes_only_for_the_issues_matchups_and_real_tools(
    client: TestClient, world: World, db: Session
) -> None:
    other = make_matchup("a-vs-b", "A", "B")
    db.add(other)
    db.commit()
    assert client.get(f"/v/{world.token(0)}/a-vs-b/0").status_code == 404
    assert client.get(f"/v/{world.token(0)}/{world.slugs[0]}/2").status_code == 404
    assert client.get(f"/v/{world.token(0)}/no-such-matchup/0").status_code == 404
    assert votes(db) == []


def test_an_erased_subscribers_vote_stays_counted(
    client: TestClient, world: World, db: Session
) -> None:
    client.get(f"/v/{world.token(0)}/{world.slugs[0]}/1")
    client.get(f"/v/{world.token(1)}/{world.slugs[0]}/0")
    erasure.erase(db, world.subscribers[0])
    db.commit()
    assert db.get(Subscriber, world.subscribers[0]) is None
    assert community_split(db, world.matchups[0]) == (50, 2)
    assert [v.subscriber_id for v in votes(db)] == [None, world.subscribers[1]]


def test_an_erased_subscribers_vote_link_is_dead_and_records_nothing(
    client: TestClient, world: World, db: Session
) -> None:
    """Their preferences and unsubscribe links answer "not valid"; so does their vote link,
    as a page and as the button's POST, and no vote, event or count appears for nobody."""
    client.get(f"/v/{world.token(0)}/{world.slugs[0]}/1")
    erasure.erase(db, world.subscribers[0])
    db.commit()

    def state() -> list[tuple[object, ...]]:
        return [(v.id, v.tool, v.voted_at) for v in votes(db)] + [(e.id,) for e in events(db)]

    before = state()
    for method in ("get", "post"):
        response = getattr(client, method)(f"/v/{world.token(0)}/{world.slugs[0]}/0")
        assert response.status_code == 404, method
        assert "not valid" in response.text and "Count my vote" not in response.text
    assert state() == before
    assert community_split(db, world.matchups[0]) == (0, 1)  # the old vote, anonymous
    # Another reader's link on the same issue still works.
    assert client.post(f"/v/{world.token(1)}/{world.slugs[0]}/0").status_code == 200


# --- tracking switched off --------------------------------------------------------------------


def _hit_everything(client: TestClient, world: World) -> None:
    assert client.get(f"/o/{world.token(0)}.gif").content == PIXEL_GIF
    click = client.get(f"/c/{world.token(0)}/site", follow_redirects=False)
    assert click.headers["location"] == "https://aitoolverdicts.example/"
    assert "Thanks" in client.get(f"/v/{world.token(0)}/{world.slugs[0]}/1").text


def test_an_opted_out_reader_leaves_no_open_or_click_but_their_vote_counts(
    client: TestClient, world: World, db: Session
) -> None:
    db.execute(
        update(Subscriber)
        .where(Subscriber.id == world.subscribers[0])
        .values(tracking_opt_out=True)
    )
    db.commit()
    _hit_everything(client, world)
    assert events(db) == []
    assert community_split(db, world.matchups[0]) == (0, 1)


def test_tracking_off_records_no_open_or_click(
    client: TestClient, world: World, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_TRACKING", "off")
    reset_settings()
    _hit_everything(client, world)
    assert events(db) == []
    assert community_split(db, world.matchups[0]) == (0, 1)


def test_pixel_click_and_refusals_carry_the_security_headers(
    client: TestClient, world: World
) -> None:
    # They are answered ahead of the router (newsletter/web/tracking_middleware.py), still inside
    # the security headers middleware.
    for url in (f"/o/{world.token(0)}.gif", f"/c/{world.token(0)}/m0", "/c/nonsense/m0"):
        response = client.get(url, follow_redirects=False)
        assert response.headers["x-content-type-options"] == "nosniff", url
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], url
        assert "no-store" in response.headers["cache-control"], url
        assert "set-cookie" not in response.headers, url


def test_other_methods_on_tracking_urls_record_nothing(
    client: TestClient, world: World, db: Session
) -> None:
    assert client.post(f"/o/{world.token(0)}.gif").status_code in (404, 405)
    assert client.delete(f"/c/{world.token(0)}/m0").status_code in (404, 405)
    assert events(db) == []

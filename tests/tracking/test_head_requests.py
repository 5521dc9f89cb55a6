"""HEAD on the pixel and on a tracked link is what link checkers and monitors send: it is
answered like the GET (so the link does not look broken) and is never an open or a click."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.tracking.models import TrackingEvent
from tests.tracking.conftest import World


def _events(db: Session) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(TrackingEvent)) or 0)


def test_head_on_the_pixel_answers_like_get_and_records_no_open(
    client: TestClient, world: World, db: Session
) -> None:
    url = f"/o/{world.token(0)}.gif"
    head = client.head(url)
    assert head.status_code == 200
    assert head.headers["content-type"] == "image/gif"
    assert "no-store" in head.headers["cache-control"]
    assert head.content == b""
    assert _events(db) == 0
    # A forged token is refused to HEAD as to GET.
    assert client.head("/o/forged.x.gif").status_code == 404
    assert client.get(url).status_code == 200
    assert _events(db) == 1


def test_head_on_a_tracked_link_redirects_like_get_and_records_no_click(
    client: TestClient, world: World, db: Session
) -> None:
    url = f"/c/{world.token(1)}/m0"
    head = client.head(url, follow_redirects=False)
    assert head.status_code == 302
    got = client.get(url, follow_redirects=False)
    assert head.headers["location"] == got.headers["location"]
    assert _events(db) == 1  # the GET alone
    assert client.head(f"/c/{world.token(1)}/no-such-link").status_code == 404

"""Pixel and click hits under concurrency: group commit loses nothing it acknowledged, and one
failing hit fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.tracking import hits
from newsletter.tracking.models import EventType, TrackingEvent
from newsletter.web.app import create_app
from tests.tracking.conftest import BROWSER, World

T = TypeVar("T")


def run_in_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own: Playwright's sync API (the session-wide browser
    fixture) keeps an event loop running in the main thread for the rest of the test session."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _count(db: Session, event_type: EventType) -> int:
    db.expire_all()
    stmt = select(func.count()).where(TrackingEvent.type == event_type)
    return int(db.scalar(stmt) or 0)


def test_concurrent_hits_are_each_answered_and_each_recorded(world: World, db: Session) -> None:
    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"User-Agent": BROWSER}
        ) as client:
            urls = [
                f"/o/{world.token(i % 3)}.gif" if i % 2 else f"/c/{world.token(i % 3)}/m{i % 2}"
                for i in range(120)
            ]
            return await asyncio.gather(*(client.get(url) for url in urls))

    responses = run_in_own_loop(burst())
    assert sorted({r.status_code for r in responses}) == [200, 302]
    assert _count(db, EventType.OPENED) == 60
    assert _count(db, EventType.CLICKED) == 60


def _open_row(delivery_id: int, issue_id: int) -> dict[str, object]:
    at = datetime.now(UTC)
    return {
        "type": EventType.OPENED,
        "source": "first_party",
        "provider_type": "pixel",
        "delivery_id": delivery_id,
        "issue_id": issue_id,
        "machine": False,
        "occurred_at": at,
        "received_at": at,
    }


def test_a_failing_hit_fails_alone_and_the_others_in_its_batch_are_committed(
    world: World, db: Session
) -> None:
    release = threading.Event()

    def hold_the_writer(connection: Connection) -> tuple[None, None]:
        # While the writer waits here, the hits below queue up and are taken as one batch.
        release.wait(10)
        return None, None

    def good(connection: Connection, delivery_id: int) -> tuple[int, dict[str, object]]:
        return delivery_id, _open_row(delivery_id, world.issue_id)

    def broken(connection: Connection) -> tuple[int, dict[str, object]]:
        raise RuntimeError("this hit is broken")

    def unstorable(connection: Connection) -> tuple[int, dict[str, object]]:
        # A row the table refuses (no source: NOT NULL), so the batch's INSERT fails. Events
        # have no foreign keys since 0017_events, or a missing delivery would have done.
        return 0, {**_open_row(world.deliveries[0], world.issue_id), "source": None}

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(hits.run(hold_the_writer))
        await asyncio.sleep(0.05)
        rest = [
            asyncio.ensure_future(hits.run(good, world.deliveries[1])),
            asyncio.ensure_future(hits.run(broken)),
            asyncio.ensure_future(hits.run(unstorable)),
            asyncio.ensure_future(hits.run(good, world.deliveries[2])),
        ]
        await asyncio.sleep(0.05)
        release.set()
        await first
        return await asyncio.gather(*rest, return_exceptions=True)

    ok1, failed, refused, ok2 = run_in_own_loop(scenario())
    assert (ok1, ok2) == (world.deliveries[1], world.deliveries[2])
    assert isinstance(failed, RuntimeError)
    assert isinstance(refused, IntegrityError)
    db.expire_all()
    recorded = db.scalars(select(TrackingEvent.delivery_id).order_by(TrackingEvent.delivery_id))
    assert list(recorded) == [world.deliveries[1], world.deliveries[2]]


@pytest.mark.parametrize("key", ["m0", "site"])
def test_a_hit_is_committed_before_it_is_answered(world: World, db: Session, key: str) -> None:
    async def one() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"User-Agent": BROWSER}
        ) as client:
            return await client.get(f"/c/{world.token(0)}/{key}")

    assert run_in_own_loop(one()).status_code == 302
    # Read from another connection right after the answer: already there.
    assert _count(db, EventType.CLICKED) == 1

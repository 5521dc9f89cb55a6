"""Where pixel and click hits touch the database: a writer thread per process, group commit.

A hit is answered only after the transaction holding it has committed, so nothing acknowledged
is ever lost when a process dies. What is shared is the transaction: the writer takes every hit
that arrived while it was busy, decides each (its own SELECT: delivery, opt-out, link), then
writes all their events in one INSERT and one COMMIT. Under load a commit, a connection checkout
and a thread hand-off are paid per batch rather than per hit; and SQLite's write lock is taken
only for that INSERT and COMMIT (pysqlite begins the transaction at the first write), so two
worker processes rarely meet at it (a writer that finds it taken sleeps in SQLite's busy handler
for milliseconds). If a batch fails, each of its hits is retried in a transaction of its own, so
one bad hit fails alone. The hits have their own thread rather than the web server's shared
pool so a burst of opens cannot starve the editor's pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection

from newsletter.db import get_engine, is_sqlite
from newsletter.settings import get_settings
from newsletter.tracking import service
from newsletter.tracking.service import HitEvent

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)

# Bounds one transaction (and so the wait of the first hit in it) under a flood.
MAX_BATCH = 64
POSTGRES_WRITERS = 4


@dataclass(slots=True)
class _Hit:
    decide: Callable[[Connection], tuple[Any, HitEvent | None]]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    outcome: tuple[bool, Any] = field(default=(False, None))


class _Writer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: queue.SimpleQueue[_Hit] = queue.SimpleQueue()
        # SQLite takes one writer at a time: a second thread would only wait on its lock.
        # PostgreSQL takes several, and each batch waits on network round trips and a WAL
        # flush: a few threads, each with its own batch, overlap those waits.
        for _ in range(1 if is_sqlite(url) else POSTGRES_WRITERS):
            threading.Thread(target=self._serve, name="tracking-hits", daemon=True).start()

    def _serve(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)
            _answer(batch)

    def _commit(self, batch: list[_Hit]) -> None:
        try:
            with get_engine(self.url).begin() as connection:
                decided = [hit.decide(connection) for hit in batch]
                events = [event for _, event in decided if event is not None]
                service.store_hit_events(connection, events)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].outcome = (False, exc)
                return
            log.warning("tracking hits: a batch of %d failed (%s); one at a time", len(batch), exc)
            for hit in batch:
                self._commit([hit])
            return
        for hit, (answer, _) in zip(batch, decided, strict=True):
            hit.outcome = (True, answer)


def _answer(batch: list[_Hit]) -> None:
    # One wake-up per event loop (uvicorn has one per process; test clients have their own).
    by_loop: dict[asyncio.AbstractEventLoop, list[_Hit]] = {}
    for hit in batch:
        by_loop.setdefault(hit.loop, []).append(hit)
    for loop, hits in by_loop.items():
        # A closed loop's requests are gone (they were never answered).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, hits)


def _settle(hits: list[_Hit]) -> None:
    for hit in hits:
        if hit.future.cancelled():
            continue
        ok, value = hit.outcome
        if ok:
            hit.future.set_result(value)
        else:
            hit.future.set_exception(value)


_writers: dict[str, _Writer] = {}
_lock = threading.Lock()


def _writer(url: str) -> _Writer:
    with _lock:
        writer = _writers.get(url)
        if writer is None:
            writer = _writers[url] = _Writer(url)
        return writer


async def run(
    decide: Callable[Concatenate[Connection, P], tuple[T, HitEvent | None]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """The answer `decide(connection, ...)` gives, once the event it returns is committed (with
    those of whatever other hits share its transaction); its exception if it failed alone."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def call(connection: Connection) -> tuple[T, HitEvent | None]:
        return decide(connection, *args, **kwargs)

    _writer(get_settings().database_url).queue.put(_Hit(call, loop, future))
    return await future

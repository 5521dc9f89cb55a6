"""Where pixel and click hits touch the database: a small thread pool of this process's own.

Each hit is one transaction on a bare Core connection (one SELECT, at most one INSERT, COMMIT),
committed before the reader gets an answer, so nothing acknowledged is ever lost. The pool is
the hits' own rather than the web server's shared one so a burst of opens cannot starve the
editor's pages, and on SQLite it has a single thread: SQLite takes one writer at a time, and
threads racing for its lock would sleep in its busy handler (milliseconds each) instead of
queueing in order (microseconds).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection

from newsletter.db import get_engine, is_sqlite
from newsletter.settings import get_settings

P = ParamSpec("P")
T = TypeVar("T")

# PostgreSQL takes concurrent writers; a few threads overlap their network round trips.
POSTGRES_THREADS = 4

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def _pool(url: str) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(url)
        if pool is None:
            threads = 1 if is_sqlite(url) else POSTGRES_THREADS
            pool = ThreadPoolExecutor(threads, thread_name_prefix="tracking-hits")
            _pools[url] = pool
        return pool


def _in_transaction(
    url: str, work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    with get_engine(url).begin() as connection:
        return work(connection, *args, **kwargs)


async def run(
    work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run `work(connection, ...)` in one committed transaction, off the event loop."""
    url = get_settings().database_url
    call: Callable[[], T] = functools.partial(_in_transaction, url, work, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(url), call)


def shutdown() -> None:
    """Stop the pools (tests that switch databases; process exit)."""
    with _lock:
        for pool in _pools.values():
            pool.shutdown(wait=True)
        _pools.clear()

"""Open pixel and click redirect under load, from a second process over loopback.

The app runs under uvicorn in a subprocess on 127.0.0.1 (random port) on a fresh SQLite file;
this process drives it with keep-alive HTTP/1.1 connections (asyncio, raw sockets: an HTTP
client library would be the bottleneck), half pixel fetches and half clicks, each with a
different recipient's signed token. Bounded by a request count and a time limit.
Targets: >= 1,000 requests/s, p99 < 50 ms.

    .venv/bin/python -m bench.tracking_load [--requests 20000] [--connections 16] [--seconds 60]
                                            [--workers 2] [--postgres URL]

The server runs 2 worker processes by default (`newsletter serve --workers 2`: one per core).
The load generator is Python too and shares the machine's 2 cores with the server: it reports
its own CPU time and the whole machine's, so a run where the generator or other work on the
machine was the limit can be told apart from one where the server was.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench.webhook import SECRET, seed_issue, serve
from newsletter.db import dispose_engines, transaction
from newsletter.tracking.models import TrackingEvent

AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def request_bytes(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {AGENT}\r\nAccept: */*\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def connection(
    port: int,
    paths: list[bytes],
    queue: asyncio.Queue[int],
    deadline: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            writer.write(paths[index])
            try:
                status = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                errors.append(f"connection: {exc!r}")
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            latencies.append(time.perf_counter() - started)
            if status not in (200, 302):
                errors.append(f"status {status}")
    finally:
        writer.close()


async def drive(
    port: int, paths: list[bytes], connections: int, seconds: float
) -> tuple[float, list[float], list[str]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(paths)):
        queue.put_nowait(index)
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(connection(port, paths, queue, deadline, latencies, errors) for _ in range(connections))
    )
    return time.perf_counter() - started, latencies, errors


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat (Linux)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return float(sum(fields) - idle), float(sum(fields))


def server_cpu() -> float:
    """CPU seconds used so far by this process's children and theirs (uvicorn and its workers),
    from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [os.getpid()]
    while pending:
        pid = pending.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            pending.append(int(child))
            try:
                stat = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(stat[11]) + int(stat[12])) / tick  # utime + stime
    return total


@contextmanager
def database(postgres: str | None, tmp: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database dropped after."""
    if postgres is None:
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    name = f"bench_tracking_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on a fresh database created on this PostgreSQL server instead of SQLite "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)",
    )
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp,
        database(args.postgres, Path(tmp)) as url,
    ):
        sent = seed_issue(url, args.deliveries, sent_at=datetime.now(UTC) - timedelta(days=1))
        # The token newsletter.security.delivery_tokens.delivery_token makes, under the server's key.
        tokens = [sent.token(i, secret=SECRET) for i in range(len(sent.deliveries))]
        paths = [
            request_bytes(
                f"/o/{tokens[i % len(tokens)]}.gif"
                if i % 2 == 0
                else f"/c/{tokens[i % len(tokens)]}/m{i % 4 // 2}"
            )
            for i in range(args.requests)
        ]
        env = {"DATABASE_URL": url, "NEWSLETTER_SECRET_KEY": SECRET}
        with serve(env, workers=args.workers) as base:
            port = int(base.rsplit(":", 1)[1])
            # Warm-up (every worker's imports and first connections), not counted.
            asyncio.run(drive(port, paths[:1000], args.connections, 30))
            busy0, total0 = machine_cpu()
            own0 = time.process_time()
            server0 = server_cpu()
            elapsed, latencies, errors = asyncio.run(
                drive(port, paths, args.connections, args.seconds)
            )
            own = time.process_time() - own0
            server = server_cpu() - server0
            busy1, total1 = machine_cpu()
        with transaction(url) as session:
            rows = session.scalar(select(func.count()).select_from(TrackingEvent))
        dispose_engines()

    done = len(latencies)
    ordered = sorted(latencies)
    cores = os.cpu_count() or 1
    print(
        f"pixel + click via uvicorn ({args.workers} worker processes) on loopback, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}, "
        f"{args.connections} keep-alive connections from a second process"
    )
    print(f"  requests         {done:,} of {args.requests:,} in {elapsed:.1f} s")
    print(f"  requests/s       {done / elapsed:,.0f}   (target >= 1,000)")
    print(f"  p50              {statistics.median(ordered) * 1000:.1f} ms")
    print(
        f"  p99              {ordered[min(done - 1, int(0.99 * done))] * 1000:.1f} ms   (target < 50 ms)"
    )
    print(f"  errors           {len(errors)}{'  e.g. ' + errors[0] if errors else ''}")
    print(f"  events stored    {rows:,} (expected {args.requests + 1000:,} with the warm-up)")
    print(
        f"  server           {server / elapsed * 100:.0f}% of one core "
        f"({server / max(done, 1) * 1e6:.0f} µs CPU per request)"
    )
    print(
        f"  load generator   {own / elapsed * 100:.0f}% of one core "
        f"({own / max(done, 1) * 1e6:.0f} µs CPU per request)"
    )
    print(
        f"  machine          {(busy1 - busy0) / (total1 - total0) * 100:.0f}% of {cores} cores "
        f"busy (server + generator + anything else running)"
    )


if __name__ == "__main__":
    main()

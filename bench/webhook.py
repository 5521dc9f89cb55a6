"""SendGrid Event Webhook ingestion: signed batches of 1,000 events into the real app.

The app runs under uvicorn in a subprocess on 127.0.0.1 (random port) on a fresh SQLite file,
exactly as `newsletter serve` would; this process signs each batch with a freshly generated
P-256 key (as SendGrid does, right before posting) and posts it over loopback HTTP.
Target: >= 10,000 events/s.

    .venv/bin/python -m bench.webhook [--batches 40] [--deliveries 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from newsletter.db import dispose_engines, transaction
from newsletter.migrate import upgrade
from newsletter.tracking.models import TrackingEvent
from newsletter.tracking.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    encode_public_key,
    sign_payload,
)
from tests.support.arrange import SentIssue, add_sent_issue

SECRET = "bench-secret-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(database_url: str, deliveries: int, *, sent_at: datetime) -> list[int]:
    """One sent issue with two matchups and links, and `deliveries` recipients."""
    return seed_issue(database_url, deliveries, sent_at=sent_at).deliveries


def seed_issue(database_url: str, deliveries: int, *, sent_at: datetime) -> SentIssue:
    upgrade(database_url)
    with transaction(database_url) as session:
        sent = add_sent_issue(session, readers=deliveries, sent_at=sent_at)
    dispose_engines()
    return sent


@contextmanager
def serve(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """`uvicorn newsletter.web.app:create_app` in a subprocess (`workers` processes on one
    socket, as `newsletter serve --workers N`); yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "newsletter.web.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            str(workers),
        ],
        env={**os.environ, **env},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise SystemExit(f"uvicorn exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("uvicorn did not start within 30 s") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def make_batch(batch: int, size: int, deliveries: list[int], now: int) -> list[dict[str, Any]]:
    kinds = ("processed", "delivered", "open", "open", "click", "deferred")
    events = []
    for i in range(size):
        n = batch * size + i
        delivery = deliveries[n % len(deliveries)]
        kind = kinds[n % len(kinds)]
        event: dict[str, Any] = {
            "email": f"reader{delivery}@example.com",
            "timestamp": now - 30,
            "event": kind,
            "sg_event_id": f"bench-{n:012d}",
            "sg_message_id": f"m{delivery}.filter0001",
            "delivery_id": str(delivery),
            "issue_id": "1",
        }
        if kind == "open":
            event["sg_machine_open"] = n % 3 == 0
            event["useragent"] = "Mozilla/5.0"
        elif kind == "click":
            event["url"] = "https://aitoolverdicts.example/cursor-vs-windsurf"
        elif kind == "deferred":
            event["response"] = "451 4.7.1 try again later"
        events.append(event)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--deliveries", type=int, default=20000)
    args = parser.parse_args()

    key = ec.generate_private_key(ec.SECP256R1())
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        deliveries = seed(url, args.deliveries, sent_at=datetime.now(UTC) - timedelta(days=1))
        env = {
            "DATABASE_URL": url,
            "NEWSLETTER_SECRET_KEY": SECRET,
            "SENDGRID_WEBHOOK_PUBLIC_KEY": encode_public_key(key),
        }
        now = int(time.time())
        bodies = [
            json.dumps(make_batch(b, args.batch_size, deliveries, now)).encode()
            for b in range(args.batches)
        ]
        with serve(env) as base, httpx.Client(base_url=base, timeout=60) as client:
            # One warm-up post (imports, first connections), not counted, then every batch.
            warm = json.dumps(
                make_batch(args.batches * args.batch_size, 10, deliveries, now)
            ).encode()
            _post(client, key, warm)
            latencies = []
            started = time.perf_counter()
            for body in bodies:
                t0 = time.perf_counter()
                result = _post(client, key, body)
                latencies.append(time.perf_counter() - t0)
                assert result["stored"] == args.batch_size, result
            elapsed = time.perf_counter() - started
            replay = _post(client, key, bodies[0])
        with transaction(url) as session:
            rows = session.scalar(select(func.count()).select_from(TrackingEvent))
        dispose_engines()

    total = args.batches * args.batch_size
    print(
        f"webhook ingestion via uvicorn on loopback, SQLite, {args.batches} signed POSTs of "
        f"{args.batch_size} events"
    )
    print(f"  events/s         {total / elapsed:,.0f}   (target >= 10,000)")
    print(f"  per POST p50     {statistics.median(latencies) * 1000:.1f} ms")
    print(f"  per POST p99     {_quantile(latencies, 0.99) * 1000:.1f} ms")
    print(f"  rows stored      {rows:,} (expected {total + 10:,})")
    print(f"  replayed batch   stored {replay['stored']}, duplicates {replay['duplicates']}")


def _post(client: httpx.Client, key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, Any]:
    timestamp = str(int(time.time()))
    headers = {
        SIGNATURE_HEADER: sign_payload(key, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
        "Content-Type": "application/json",
    }
    response = client.post("/webhooks/sendgrid", content=body, headers=headers)
    if response.status_code != 200:
        raise SystemExit(f"webhook answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if __name__ == "__main__":
    main()

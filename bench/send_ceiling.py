"""The whole `newsletter issue send` command beside its ceiling, in the same run, per engine.

    .venv/bin/python -m bench.send_ceiling [--subscribers 100000] [--postgres URL]

The ceiling is the same requests, built beforehand and posted to the same loopback SendGrid
server, from as many threads as the worker uses, with no database at all: what the machine
and the server allow. The command is `newsletter issue send ID` as an operator types it, timed
from the process's start to its exit (imports, snapshot, claims, settles, summary). Its share of
the ceiling is ceiling seconds / command seconds: 1.0 would mean the ledger costs nothing.

The server runs in its own process (as SendGrid would be elsewhere), checking SendGrid's
documented rules on every request (its JSON-schema check is left to the tests). Both sides
share this machine's cores, which is why the ratio, not the seconds, is the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.send import API_KEY, HTML_BLOCK, server_stats, start_server

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "bench_ceiling"
OPT_OUT_EVERY = 50


def _env(url: str, host: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        NEWSLETTER_TRANSPORT="sendgrid",
        SENDGRID_API_KEY=API_KEY,
        NEWSLETTER_POSTAL_ADDRESS="1 Bench Street, 75001 Paris",
        SENDGRID_API_HOST=host,
        NEWSLETTER_SECRET_KEY="bench-secret-key-0123456789",
        NEWSLETTER_BASE_URL="https://nl.example",
    )
    return env


@contextmanager
def database(postgres: str | None, workdir: Path) -> Iterator[str]:
    if postgres is None:
        yield f"sqlite:///{workdir / 'ceiling.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(postgres).set(drivername="postgresql+psycopg")
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    try:
        yield server.set(database=DB_NAME).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()


def _html() -> str:
    return (
        "<html><body><table>"
        + "".join(HTML_BLOCK.format(n=n) for n in range(8)) * 6
        + '<img src="https://nl.example/o/__NL_TOKEN__.gif" alt=""></table></body></html>'
    )


def _text() -> str:
    return "Weekly AI Tool Verdicts\n" * 200 + "Unsubscribe: https://nl.example/u/__NL_TOKEN__\n"


def seed(url: str, subscribers: int) -> int:
    """`subscribers` active subscribers (every 50th opted out of tracking) and one approved
    issue with a frozen render; returns the issue's id."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-key-0123456789")
    from newsletter.db import dispose_engines, session_factory
    from newsletter.migrate import upgrade
    from newsletter.settings import reset_settings
    from tests.support.arrange import add_frozen_issue, add_subscribers

    reset_settings()
    upgrade(url)
    html = _html()
    with session_factory()() as session:
        add_subscribers(session, subscribers, opt_out_every=OPT_OUT_EVERY, source="bench")
        issue_id = add_frozen_issue(
            session,
            html=html,
            text=_text(),
            untracked_html=html.replace("/c/__NL_TOKEN__", "/x"),
            approved_by="bench",
        )
        session.commit()
    dispose_engines()
    return issue_id


def child_ceiling(subscribers: int, issue_id: int) -> None:
    """In a child process with no database: build every request first (as the worker would
    for this list: 1,000 a batch, tracking opt-outs in a request of their own), then time only
    the posting, from the worker's number of threads."""
    import secrets

    from newsletter.mail.message import Recipient, header_phrase
    from newsletter.mail.sendgrid_transport import SendGridTransport, mail_body
    from newsletter.security.delivery_tokens import delivery_tokens
    from newsletter.settings import get_settings
    from tests.support.content import FrozenContent

    settings = get_settings()
    html = _html()
    tracked = FrozenContent(subject="AI Tool Verdicts, week 47", html=html, text=_text())
    untracked = FrozenContent(
        subject=tracked.subject, html=html.replace("/c/__NL_TOKEN__", "/x"), text=tracked.text
    )
    categories = ("weekly-verdicts", "2026-W47")
    bodies: list[str] = []
    batch = settings.newsletter_batch_size
    for start in range(0, subscribers, batch):
        ids = range(start, min(start + batch, subscribers))
        tokens = delivery_tokens((i + 1, secrets.token_hex(8)) for i in ids)
        groups: dict[bool, list[Recipient]] = {True: [], False: []}
        for i, token in zip(ids, tokens, strict=True):
            groups[i % OPT_OUT_EVERY != 0].append(
                Recipient(i + 1, f"reader{i}@mail.example.com", header_phrase(f"Reader {i}"), token)
            )
        for is_tracked, group in groups.items():
            if group:
                content = tracked if is_tracked else untracked
                bodies.append(
                    mail_body(
                        content, group, issue_id=issue_id, categories=categories, settings=settings
                    )
                )
    threads = settings.newsletter_send_concurrency
    lock = threading.Lock()
    queue = list(reversed(bodies))
    failures: list[str] = []

    def post() -> None:
        transport = SendGridTransport(settings)
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            result = transport.post(body)
            if result.error:
                failures.append(result.error)

    began = time.perf_counter()
    workers = [threading.Thread(target=post) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "requests": len(bodies), "failures": failures[:3]}))


def ceiling(url: str, host: str, subscribers: int, issue_id: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            *(sys.executable, "-m", "bench.send_ceiling"),
            *("--child-ceiling", str(issue_id), "--subscribers", str(subscribers)),
        ],
        env=_env(url, host),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise SystemExit(f"ceiling failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["failures"]:
        raise SystemExit(f"the ceiling's requests were refused: {result['failures']}")
    return result


def command(url: str, host: str, issue_id: int) -> dict[str, Any]:
    cli = str(Path(sys.executable).with_name("newsletter"))
    began = time.perf_counter()
    out = subprocess.run(
        [cli, "issue", "send", str(issue_id), "--json"],
        env=_env(url, host),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - began
    if out.returncode != 0:
        raise SystemExit(f"issue send failed ({out.returncode}):\n{out.stderr}")
    summary: dict[str, Any] = json.loads(out.stdout)
    return {"seconds": seconds, "summary": summary}


def run(engine: str, url: str, subscribers: int) -> float:
    seeding = time.perf_counter()
    issue_id = seed(url, subscribers)
    seeded = time.perf_counter() - seeding
    server, host = start_server()
    try:
        # Ceiling, command, ceiling: the machine's drift shows as two ceilings that differ.
        first = ceiling(url, host, subscribers, issue_id)
        before = server_stats(host)["accepted_recipients"]
        sent = command(url, host, issue_id)
        accepted = server_stats(host)["accepted_recipients"] - before
        second = ceiling(url, host, subscribers, issue_id)
    finally:
        server.terminate()
        server.wait()
    counts = sent["summary"]
    if accepted != subscribers or counts.get("sent") != subscribers:
        raise SystemExit(
            f"{engine}: the command did not reach every subscriber exactly once "
            f"(server accepted {accepted:,}, ledger sent {counts.get('sent')})"
        )
    best = min(first["seconds"], second["seconds"])
    ratio = best / sent["seconds"]
    print(
        f"{engine}: {subscribers:,} subscribers (seeded in {seeded:.1f} s), "
        f"{first['requests']} requests\n"
        f"  ceiling (prebuilt, no database): {first['seconds']:.2f} s and "
        f"{second['seconds']:.2f} s → {subscribers / best:,.0f} emails/s\n"
        f"  `newsletter issue send` (process start to exit): {sent['seconds']:.2f} s → "
        f"{subscribers / sent['seconds']:,.0f} emails/s\n"
        f"  share of the ceiling: {ratio:.2f} "
        f"(load average {os.getloadavg()[0]:.2f} at the end)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--postgres", help="also on this PostgreSQL server (database dropped)")
    parser.add_argument("--child-ceiling", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_ceiling is not None:
        child_ceiling(args.subscribers, args.child_ceiling)
        return
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as tmp:
        workdir = Path(tmp)
        with database(None, workdir) as url:
            run("SQLite", url, args.subscribers)
        if args.postgres:
            with database(args.postgres, workdir) as url:
                run("PostgreSQL", url, args.subscribers)


if __name__ == "__main__":
    main()

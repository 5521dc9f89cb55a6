"""A full send under faults: SendGrid failing ~20% of requests, workers SIGKILLed and restarted.

    .venv/bin/python -m bench.faults [--subscribers 20000] [--postgres] [--kills 6]

What it does, as production would see it:
- a migrated database (SQLite file, or a fresh PostgreSQL database on the server named by
  NEWSLETTER_TEST_POSTGRES_URL with --postgres) with the subscribers and one approved issue;
- the loopback SendGrid-compatible server (tests.support.sendgrid_server) in this process,
  answering ~20% of requests with a fault: 429 with X-RateLimit-Reset, 500/502/503, a dropped
  connection before or after it took the request, an answer slower than the client's timeout
  (taken, never answered in time), or merely slow; a few addresses refused with a 400;
- the send started (the audience snapshot), then some subscribers unsubscribe;
- worker processes (`newsletter issue worker --issue ID`, two at a time) SIGKILLed at random
  moments while they send, and restarted, until the send is over;
- the uncertain deliveries resolved the way an operator would with SendGrid's activity feed:
  the server's record says which requests it took -> `newsletter issue resolve --mark-sent
  --delivery-file`, the others -> `--resend --delivery-file` (repeated while a resend itself
  meets faults).

Then it checks, from the server's record and the ledger: nobody received the issue twice,
every delivery is in an end state, sent + failed + uncertain + skipped == recipients, and what
the server accepted == sent + the uncertain ones it had really accepted. Exit 1 if any fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.sendgrid_server import Fault, SendGridServer

API_KEY = "SG.faults-key"
CLIENT_TIMEOUT = 1.0
CLI = [sys.executable, "-c", "from newsletter.cli import main; main()"]
HTML = (
    "<html><body><h1>Verdicts</h1>"
    '<a href="https://nl.example/c/__NL_TOKEN__/m1">read</a> '
    '<a href="https://nl.example/u/__NL_TOKEN__">unsubscribe</a>'
    '<img src="https://nl.example/o/__NL_TOKEN__.gif" alt=""></body></html>'
)
TEXT = "Verdicts\n\nUnsubscribe: https://nl.example/u/__NL_TOKEN__\n"

# The mix of the faulty ~20%: (kind, share of all requests).
FAULT_MIX = (
    ("429", 0.05),
    ("5xx", 0.05),
    ("drop, not taken", 0.03),
    ("drop, taken", 0.02),
    ("slower than the timeout, taken", 0.02),
    ("slow", 0.03),
)


class FaultyServer(SendGridServer):
    """Each request draws its fate: accepted, or one of FAULT_MIX (scaled to `rate`)."""

    def __init__(self, *, rate: float, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rng = random.Random(seed)
        scale = rate / sum(share for _, share in FAULT_MIX)
        self.mix = [(kind, share * scale) for kind, share in FAULT_MIX]
        self.injected: Counter[str] = Counter()

    def _next_fault(self) -> Fault | None:
        with self.lock:
            queued = self.faults.popleft() if self.faults else None
            if queued is not None:
                return queued
            draw = self.rng.random()
            for kind, share in self.mix:
                if draw < share:
                    self.injected[kind] += 1
                    return self._fault(kind)
                draw -= share
            return None

    def _fault(self, kind: str) -> Fault:
        if kind == "429":
            return Fault(status=429, headers={"X-RateLimit-Reset": "+0.3"})
        if kind == "5xx":
            status = self.rng.choice((500, 502, 503))
            return Fault(status=status, body={"errors": [{"message": f"injected {status}"}]})
        if kind == "drop, not taken":
            return Fault(drop=True)
        if kind == "drop, taken":
            return Fault(drop=True, accept=True)
        if kind == "slower than the timeout, taken":
            return Fault(delay=CLIENT_TIMEOUT + 0.5, accept=True)
        return Fault(delay=CLIENT_TIMEOUT * 0.4, accept=True)


# --- the database ---------------------------------------------------------------------------


@contextmanager
def database(postgres: bool, workdir: Path) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{workdir / 'faults.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    raw = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
    if not raw:
        raise SystemExit("--postgres needs NEWSLETTER_TEST_POSTGRES_URL")
    server_url = make_url(raw).set(drivername="postgresql+psycopg")
    name = f"faults_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        from newsletter.db import dispose_engines

        dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(url: str, subscribers: int) -> tuple[int, list[str]]:
    """Migrated schema, `subscribers` active subscribers, one approved issue."""
    from newsletter.db import session_factory
    from newsletter.migrate import upgrade
    from tests.support.arrange import add_frozen_issue, add_subscribers

    upgrade(url)
    with session_factory()() as session:
        # Opt-outs get the untracked render: a second request in their batch.
        emails = add_subscribers(session, subscribers, opt_out_every=97, source="bench")
        issue_id = add_frozen_issue(
            session,
            html=HTML,
            text=TEXT,
            untracked_html=HTML.replace("/c/__NL_TOKEN__", "/x"),
            approved_by="bench",
        )
        session.commit()
    return issue_id, emails


# --- the workers ----------------------------------------------------------------------------


@dataclass
class Fleet:
    issue_id: int
    env: dict[str, str]
    cwd: Path
    rng: random.Random
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0
    started: int = 0
    failures: list[str] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        return subprocess.Popen(
            [*CLI, "issue", "worker", "--issue", str(self.issue_id)],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def reap(self, process: subprocess.Popen[bytes]) -> None:
        if process.stderr is None or process.stderr.closed:
            return  # already reaped
        _, stderr = process.communicate()
        if process.returncode not in (0, -signal.SIGKILL):
            self.failures.append(f"worker exited {process.returncode}: {stderr.decode()[-2000:]}")


def claimed_by(url: str, worker_id: str) -> bool:
    from sqlalchemy import select

    from newsletter.db import session_factory
    from newsletter.sending.models import SendBatch

    with session_factory(url)() as session:
        return (
            session.scalar(select(SendBatch.id).where(SendBatch.claimed_by == worker_id).limit(1))
            is not None
        )


def run_workers(fleet: Fleet, url: str, *, workers: int, kills: int, deadline: float) -> None:
    """`workers` processes at once; kill one at a random moment of its sending, restart it."""
    fleet.processes = [fleet.start() for _ in range(workers)]
    host = socket.gethostname()
    while fleet.kills < kills and time.monotonic() < deadline:
        victim = fleet.rng.randrange(len(fleet.processes))
        process = fleet.processes[victim]
        # Wait until it really sends (has claimed a batch), not while Python starts up.
        while process.poll() is None and not claimed_by(url, f"{host}:{process.pid}:0"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        time.sleep(fleet.rng.uniform(0.0, 1.0))
        if process.poll() is not None:
            fleet.reap(process)
            if all(p.poll() is not None for p in fleet.processes):
                break  # the send is over before every kill was spent
            fleet.processes[victim] = fleet.start()
            continue
        process.send_signal(signal.SIGKILL)
        fleet.reap(process)
        fleet.kills += 1
        fleet.processes[victim] = fleet.start()
    for process in fleet.processes:
        remaining = max(1.0, deadline - time.monotonic())
        try:
            process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            process.kill()
            fleet.failures.append("a worker did not finish before the time limit")
        fleet.reap(process)


def cli(env: dict[str, str], cwd: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    if out.returncode != 0:
        raise SystemExit(f"newsletter {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# --- the checks -----------------------------------------------------------------------------


def ledger(url: str, issue_id: int) -> dict[int, str]:
    from sqlalchemy import select

    from newsletter.db import session_factory
    from newsletter.sending.models import Delivery

    with session_factory(url)() as session:
        return {
            d_id: str(status)
            for d_id, status in session.execute(
                select(Delivery.id, Delivery.status).where(Delivery.issue_id == issue_id)
            )
        }


def accepted_deliveries(server: SendGridServer, issue_id: int) -> Counter[int]:
    """The server's record (SendGrid's activity feed): how often each delivery was taken."""
    return Counter(
        int(r.delivery_id)
        for r in server.recipients()
        if r.issue_id == str(issue_id) and r.delivery_id is not None
    )


def check(
    label: str, rows: dict[int, str], accepted: Counter[int], server: SendGridServer
) -> list[str]:
    problems: list[str] = []
    counts = Counter(rows.values())
    open_rows = counts["queued"] + counts["in_flight"]
    if open_rows:
        problems.append(f"{label}: {open_rows} deliveries not in an end state")
    total = counts["sent"] + counts["failed"] + counts["uncertain"] + counts["skipped"]
    if total != len(rows):
        problems.append(f"{label}: sent+failed+uncertain+skipped {total} != {len(rows)}")
    twice = [d for d, n in accepted.items() if n > 1]
    if twice or server.duplicates:
        problems.append(f"{label}: {len(twice)} deliveries received twice")
    uncertain_taken = sum(1 for d, s in rows.items() if s == "uncertain" and d in accepted)
    if len(accepted) != counts["sent"] + uncertain_taken:
        problems.append(
            f"{label}: server accepted {len(accepted)} != sent {counts['sent']} + "
            f"uncertain-but-accepted {uncertain_taken}"
        )
    wrong = [d for d in accepted if rows.get(d) not in ("sent", "uncertain")]
    if wrong:
        problems.append(f"{label}: {len(wrong)} accepted deliveries recorded as not sent")
    unsent = [d for d, s in rows.items() if s == "sent" and d not in accepted]
    if unsent:
        problems.append(f"{label}: {len(unsent)} deliveries recorded sent that nobody received")
    return problems


def resolve(
    fleet: Fleet, server: SendGridServer, url: str, workdir: Path, rounds: int, blind: bool
) -> list[dict[str, int]]:
    """As an operator: mark sent what the feed shows, resend the rest, until none is left.

    `blind`: resend every uncertain delivery without looking (the check must then catch the
    people mailed twice: proof that it can fail).
    """
    history: list[dict[str, int]] = []
    for round_no in range(1, rounds + 1):
        rows = ledger(url, fleet.issue_id)
        uncertain = sorted(d for d, s in rows.items() if s == "uncertain")
        if not uncertain:
            break
        accepted = accepted_deliveries(server, fleet.issue_id)
        taken = [d for d in uncertain if d in accepted and not blind]
        not_taken = [d for d in uncertain if d not in taken]
        step = {"round": round_no, "uncertain": len(uncertain), "marked_sent": 0, "resent": 0}
        if taken:
            path = workdir / f"taken-{round_no}.txt"
            path.write_text("\n".join(map(str, taken)) + "\n")
            issue = str(fleet.issue_id)
            cli(fleet.env, fleet.cwd, "issue", "resolve", issue, "--mark-sent", "--json",
                "--delivery-file", str(path))  # fmt: skip
            step["marked_sent"] = len(taken)
        if not_taken:
            path = workdir / f"not-taken-{round_no}.txt"
            path.write_text("\n".join(map(str, not_taken)) + "\n")
            cli(fleet.env, fleet.cwd, "issue", "resolve", str(fleet.issue_id), "--resend",
                "--json", "--delivery-file", str(path))  # fmt: skip
            step["resent"] = len(not_taken)
        # A slow answer the client gave up on may still be settling server-side.
        time.sleep(CLIENT_TIMEOUT + 0.6)
        history.append(step)
    return history


# --- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--postgres", action="store_true", help="NEWSLETTER_TEST_POSTGRES_URL")
    parser.add_argument("--fault-rate", type=float, default=0.20)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2, help="worker processes at once")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per accepted answer")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument(
        "--blind-resend",
        action="store_true",
        help="resolve by resending every uncertain delivery unchecked (the checks must fail)",
    )
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds for the send")
    args = parser.parse_args()

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        workdir = Path(tmp)
        with database(args.postgres, workdir) as url:
            code = run(args, url, workdir, began)
    sys.exit(code)


def run(args: argparse.Namespace, url: str, workdir: Path, began: float) -> int:
    os.environ.update(
        DATABASE_URL=url,
        NEWSLETTER_SECRET_KEY="bench-secret-key-0123456789",
        NEWSLETTER_BATCH_SIZE=str(args.batch_size),
        NEWSLETTER_TRANSPORT="outbox",  # this process only plans; the workers send
    )
    from newsletter.db import transaction
    from newsletter.sending import service
    from newsletter.settings import reset_settings
    from subscribers import repository as subscribers_repository
    from subscribers import service as subscribers_service

    reset_settings()
    issue_id, emails = seed(url, args.subscribers)
    rng = random.Random(args.seed)
    server = FaultyServer(
        rate=args.fault_rate, seed=args.seed, api_key=API_KEY, validate_schema=False
    )
    server.latency = args.latency
    refused = {emails[i]: "The email address is on a blocklist." for i in rng.sample(
        range(len(emails)), 10)}  # fmt: skip
    server.reject_addresses(refused)
    env = dict(os.environ)
    env.update(
        NEWSLETTER_TRANSPORT="sendgrid",
        SENDGRID_API_KEY=API_KEY,
        NEWSLETTER_POSTAL_ADDRESS="1 Bench Street, 75001 Paris",
        SENDGRID_API_HOST=server.url,
        SENDGRID_TIMEOUT_SECONDS=str(CLIENT_TIMEOUT),
        NEWSLETTER_SEND_CONCURRENCY="2",
        NEWSLETTER_BASE_URL="https://nl.example",
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with transaction() as session:
            assert service.start_send(session, issue_id)
        # People who leave after the snapshot, before their batch goes: skipped, not mailed.
        leaving = rng.sample(range(len(emails) // 2, len(emails)), 20)
        with transaction() as session:
            for i in leaving:
                subscriber = subscribers_repository.get_by_email(session, emails[i])
                assert subscriber is not None
                subscribers_service.unsubscribe(session, subscriber.id)

        fleet = Fleet(issue_id=issue_id, env=env, cwd=workdir, rng=rng)
        send_began = time.monotonic()
        run_workers(
            fleet,
            url,
            workers=args.workers,
            kills=args.kills,
            deadline=send_began + args.time_limit,
        )
        send_seconds = time.monotonic() - send_began
        time.sleep(CLIENT_TIMEOUT + 0.6)  # let answers the clients gave up on finish
        before = ledger(url, issue_id)
        accepted_before = accepted_deliveries(server, issue_id)
        problems = [*fleet.failures, *check("after the send", before, accepted_before, server)]
        stats_before = server.stats()
        injected = dict(server.injected)

        history = resolve(fleet, server, url, workdir, rounds=6, blind=args.blind_resend)
        after = ledger(url, issue_id)
        accepted_after = accepted_deliveries(server, issue_id)
        problems += check("after resolving", after, accepted_after, server)
        if any(s == "uncertain" for s in after.values()):
            problems.append("uncertain deliveries left after resolving")
        # They left before any worker started, so none of their batches was in flight.
        mailed_leavers = {emails[i] for i in leaving} & {r.email for r in server.recipients()}
        if mailed_leavers:
            problems.append(
                f"{len(mailed_leavers)} who unsubscribed after the snapshot were mailed"
            )
        stats_after = server.stats()
    finally:
        server.stop()

    report(
        args, url, before, after, accepted_before, accepted_after, stats_before, stats_after,
        injected, fleet, history, send_seconds, time.monotonic() - began, mailed_leavers,
    )  # fmt: skip
    if problems:
        print("\nFAILED:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("\nOK: nobody received the issue twice, every delivery has an end state, counts add up")
    return 0


def report(
    args: argparse.Namespace,
    url: str,
    before: dict[int, str],
    after: dict[int, str],
    accepted_before: Counter[int],
    accepted_after: Counter[int],
    stats_before: dict[str, Any],
    stats_after: dict[str, Any],
    injected: dict[str, int],
    fleet: Fleet,
    history: list[dict[str, int]],
    send_seconds: float,
    total_seconds: float,
    mailed_leavers: set[str],
) -> None:
    engine = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    c0, c1 = Counter(before.values()), Counter(after.values())
    requests = stats_before["requests"]
    faults = sum(injected.values())
    print(
        f"faults: {args.subscribers:,} subscribers on {engine}, batches of {args.batch_size}, "
        f"{args.workers} worker processes × 2 threads, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"  send: {send_seconds:.1f} s wall ({len(before) / send_seconds:,.0f} deliveries/s "
        f"with faults and kills); {fleet.kills} SIGKILLs, {fleet.started} worker starts"
    )
    print(
        f"  SendGrid server: {requests} requests, {faults} faults injected "
        f"({faults / max(requests, 1):.0%}): "
        + ", ".join(f"{k} {v}" for k, v in sorted(injected.items()))
        + f"; answers {dict(sorted(stats_before['statuses'].items()))}"
    )
    taken = sum(1 for d, s in before.items() if s == "uncertain" and d in accepted_before)
    print(
        f"  ledger after the send: {len(before):,} recipients = {c0['sent']:,} sent + "
        f"{c0['failed']} failed + {c0['uncertain']:,} uncertain + {c0['skipped']} skipped"
        f" (open: {c0['queued'] + c0['in_flight']})"
    )
    print(
        f"  server accepted {len(accepted_before):,} deliveries = {c0['sent']:,} sent + "
        f"{taken:,} of the uncertain (the other {c0['uncertain'] - taken:,} it never took)"
    )
    for step in history:
        print(
            f"  resolve round {step['round']}: {step['uncertain']:,} uncertain -> "
            f"{step['marked_sent']:,} --mark-sent (the feed shows them), "
            f"{step['resent']:,} --resend"
        )
    print(
        f"  ledger after resolving: {c1['sent']:,} sent + {c1['failed']} failed + "
        f"{c1['uncertain']} uncertain + {c1['skipped']} skipped = {len(after):,}; server "
        f"accepted {len(accepted_after):,}, most copies of one issue to one address: "
        f"{max(accepted_after.values(), default=0)}; duplicates {stats_after['duplicates']}"
    )
    print(f"  left after the snapshot: 20 unsubscribed, {len(mailed_leavers)} of them mailed")
    print(f"  total {total_seconds:.1f} s including seeding and resolving")


if __name__ == "__main__":
    main()

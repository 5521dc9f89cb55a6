"""A full send under faults: SendGrid failing ~20% of requests, workers SIGKILLed and restarted.

    .venv/bin/python -m bench.faults [--subscribers 20000] [--postgres] [--kills 6] [--json]
    .venv/bin/python -m bench.faults --operator [--blind-resend]   # the operator resolves

By default the service heals itself (issue 18): the app is served by uvicorn on a loopback port
(`newsletter serve`, a child process), the loopback SendGrid talks back to its
POST /webhooks/sendgrid (signed Event Webhook batches, late, some duplicated, shuffled), and
after the crashes nobody acts: `python scheduler.py` (a child, ticking every second, with
NEWSLETTER_UNCERTAIN_RESEND_AFTER_SECONDS short in every process's environment) settles what
the events name and resends, once, what SendGrid never named, until no delivery is uncertain or
--heal-time-limit passes. It reports the uncertain deliveries right after the crashes, how many
evidence settled and healing resent, how many are left, who was mailed twice (a recipient the
server accepted in two requests; those healing itself resent are counted apart), who is missing
(neither sent, failed nor skipped, or recorded sent and never accepted) and how long healing
took from the end of the crashes. Exit 1 unless 0 left, 0 twice, 0 missing.

--operator is the earlier mode, below:

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

from tests.support.event_webhook import TalkBack
from tests.support.sendgrid_server import Fault, SendGridServer

API_KEY = "SG.faults-key"
CLIENT_TIMEOUT = 1.0
CLI = [sys.executable, "-c", "from newsletter.cli import main; main()"]
SCHEDULER = [sys.executable, str(Path(__file__).resolve().parents[1] / "scheduler.py")]
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
def database(postgres: bool, workdir: Path, keep: bool = False) -> Iterator[str]:
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
        if keep:
            print(f"  kept PostgreSQL database {name}")
        else:
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
    from newsletter.sending.service import local_worker_id

    fleet.processes = [fleet.start() for _ in range(workers)]
    while fleet.kills < kills and time.monotonic() < deadline:
        victim = fleet.rng.randrange(len(fleet.processes))
        process = fleet.processes[victim]
        # Wait until it really sends (has claimed a batch), not while Python starts up.
        while process.poll() is None and not claimed_by(url, f"{local_worker_id(process.pid)}:0"):
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
        "--operator",
        action="store_true",
        help="no talking back, no healing: resolve as an operator would from the server's record",
    )
    parser.add_argument(
        "--blind-resend",
        action="store_true",
        help="with --operator: resend every uncertain delivery unchecked (the checks must fail)",
    )
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds for the send")
    parser.add_argument(
        "--resend-after",
        type=float,
        # Longer than the loopback webhook's lag here: on PostgreSQL the app ingests events
        # slower than the send makes them (~25,000 still to post when the crashes end), and a
        # 2 s window then resends requests SendGrid took (265-1,994 mailed twice, counted).
        default=30.0,
        help="NEWSLETTER_UNCERTAIN_RESEND_AFTER_SECONDS of every process (healing)",
    )
    parser.add_argument(
        "--event-delay",
        type=float,
        default=1.5,
        help="each webhook event is posted 0.1 s to this many seconds after its request "
        "(healing; above --resend-after, events can come after the resend)",
    )
    parser.add_argument(
        "--heal-time-limit", type=float, default=180.0, help="seconds healing may take"
    )
    parser.add_argument(
        "--drop-untaken",
        type=int,
        default=0,
        help="the first N requests are dropped before the server takes them (besides the mix)",
    )
    parser.add_argument("--json", action="store_true", help="the figures as JSON (healing)")
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (the SQLite file, the logs)"
    )
    parser.add_argument(
        "--database-url", help="an empty database to use instead of a new one (the tests' own)"
    )
    args = parser.parse_args()
    if args.blind_resend and not args.operator:
        parser.error("--blind-resend needs --operator")

    began = time.monotonic()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        with database(args.postgres, args.keep, keep=True) as url:
            sys.exit(run(args, url, args.keep, began))
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        workdir = Path(tmp)
        if args.database_url:
            sys.exit(run(args, args.database_url, workdir, began))
        with database(args.postgres, workdir) as url:
            code = run(args, url, workdir, began)
    sys.exit(code)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the app exited {process.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"the app did not listen on {port} within {timeout:.0f} s")


def stop_child(process: subprocess.Popen[bytes], failures: list[str], name: str) -> None:
    """SIGTERM (the scheduler and uvicorn both stop cleanly on it), SIGKILL after 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            failures.append(f"{name} did not stop on SIGTERM")
    if process.returncode not in (0, -signal.SIGTERM):
        failures.append(f"{name} exited {process.returncode}")


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
    env = dict(os.environ)
    talk_back: TalkBack | None = None
    app: subprocess.Popen[bytes] | None = None
    if not args.operator:
        from cryptography.hazmat.primitives.asymmetric import ec

        from newsletter.tracking.webhook import encode_public_key

        key = ec.generate_private_key(ec.SECP256R1())
        port = free_port()
        env.update(
            SENDGRID_WEBHOOK_PUBLIC_KEY=encode_public_key(key),
            NEWSLETTER_UNCERTAIN_RESEND_AFTER_SECONDS=str(args.resend_after),
        )
        talk_back = TalkBack(
            url=f"http://127.0.0.1:{port}/webhooks/sendgrid",
            private_key=key,
            delay=(0.1, args.event_delay),
            duplicate_fraction=0.1,
            shuffle=True,
            # A few bounces and deferrals: evidence of a take as good as `delivered`.
            fractions={"deferred": 0.02, "bounce": 0.005},
            seed=args.seed,
            concurrency=2,
        )
        app = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "app.log").open("wb"),
        )
        wait_listening(port, app)
    server = FaultyServer(
        rate=args.fault_rate,
        seed=args.seed,
        api_key=API_KEY,
        validate_schema=False,
        talk_back=talk_back,
    )
    server.latency = args.latency
    refused = {emails[i]: "The email address is on a blocklist." for i in rng.sample(
        range(len(emails)), 10)}  # fmt: skip
    server.reject_addresses(refused)
    server.drop_next(args.drop_untaken, accepted=False)
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

        leavers = {emails[i] for i in leaving}
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
        if app is None:
            return after_operator(args, url, workdir, server, fleet, send_seconds, began, leavers)
        return after_healing(args, url, workdir, server, fleet, send_seconds, began, app, leavers)
    finally:
        server.stop()
        if app is not None:
            stop_child(app, [], "the app")


def mailed_leavers(server: SendGridServer, leavers: set[str]) -> set[str]:
    """They left before any worker started, so none of their batches was in flight."""
    return leavers & {r.email for r in server.recipients()}


def after_operator(
    args: argparse.Namespace,
    url: str,
    workdir: Path,
    server: FaultyServer,
    fleet: Fleet,
    send_seconds: float,
    began: float,
    leavers: set[str],
) -> int:
    issue_id = fleet.issue_id
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
    stats_after = server.stats()
    mailed = mailed_leavers(server, leavers)
    if mailed:
        problems.append(f"{len(mailed)} who unsubscribed after the snapshot were mailed")
    report(
        args, url, before, after, accepted_before, accepted_after, stats_before, stats_after,
        injected, fleet, history, send_seconds, time.monotonic() - began,
    )  # fmt: skip
    print(f"  left after the snapshot: {len(leavers)} unsubscribed, {len(mailed)} of them mailed")
    if problems:
        print("\nFAILED:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("\nOK: nobody received the issue twice, every delivery has an end state, counts add up")
    return 0


# --- healing ------------------------------------------------------------------------------

OPEN = ("queued", "in_flight")
# What healing leaves to an operator for good (newsletter.sending.service._why_waiting).
FOR_AN_OPERATOR = ("an operator decides", "mark sent what")


def ledger_settled(url: str, issue_id: int) -> dict[int, tuple[str, str | None, int | None]]:
    """delivery id -> (status, settled_by, batch id: a resend queues it in a fresh batch)."""
    from sqlalchemy import select

    from newsletter.db import session_factory
    from newsletter.sending.models import Delivery

    with session_factory(url)() as session:
        return {
            d_id: (str(status), settled, batch)
            for d_id, status, settled, batch in session.execute(
                select(Delivery.id, Delivery.status, Delivery.settled_by, Delivery.batch_id).where(
                    Delivery.issue_id == issue_id
                )
            )
        }


def waiting_reasons(issue_id: int) -> Counter[str]:
    """What each uncertain request waits for, as `newsletter issue status` says it."""
    from newsletter.db import transaction
    from newsletter.sending import service

    with transaction() as session:
        found = service.heal_uncertain(session, issue_id=issue_id, act=False)
    reasons: Counter[str] = Counter()
    for waiting in found.waiting:
        reasons[waiting.reason] += waiting.deliveries
    return reasons


def after_healing(
    args: argparse.Namespace,
    url: str,
    workdir: Path,
    server: FaultyServer,
    fleet: Fleet,
    send_seconds: float,
    began: float,
    app: subprocess.Popen[bytes],
    leavers: set[str],
) -> int:
    """No operator: the scheduler ticks, the webhook's events settle, healing resends once."""
    from newsletter.settings import reset_settings

    issue_id = fleet.issue_id
    crashes_end = time.monotonic()
    at_crash = ledger_settled(url, issue_id)
    accepted_at_crash = accepted_deliveries(server, issue_id)
    uncertain_at_crash = {d for d, (s, _, _) in at_crash.items() if s == "uncertain"}
    taken_at_crash = sum(1 for d in uncertain_at_crash if d in accepted_at_crash)
    problems = list(fleet.failures)
    injected_send = sum(server.injected.values())
    webhook_waiting_at_crash = server.webhook.stats()["pending"] if server.webhook else 0
    requests_send = server.stats()["requests"]

    # This process reads what healing waits for with the same settings as the scheduler.
    os.environ["NEWSLETTER_UNCERTAIN_RESEND_AFTER_SECONDS"] = str(args.resend_after)
    reset_settings()
    scheduler_env = {
        **fleet.env,
        "NEWSLETTER_TICK_SECONDS": "1",
        # The weekly job's slot has passed: recorded as missed, never run in the benchmark.
        "NEWSLETTER_MISFIRE_GRACE_SECONDS": "0",
    }
    scheduler = subprocess.Popen(
        SCHEDULER,
        env=scheduler_env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "scheduler.log").open("wb"),
    )
    healed_at: float | None = None
    stuck_since: float | None = None
    webhook = server.webhook
    assert webhook is not None
    try:
        deadline = crashes_end + args.heal_time_limit
        while time.monotonic() < deadline:
            if scheduler.poll() is not None:
                problems.append(f"the scheduler exited {scheduler.returncode} while healing")
                break
            counts = Counter(s for s, _, _ in ledger_settled(url, issue_id).values())
            if counts["uncertain"] + sum(counts[o] for o in OPEN) == 0:
                healed_at = time.monotonic()
                break
            # Nothing more will come: every uncertain one waits for an operator, no event waits.
            reasons = waiting_reasons(issue_id) if counts["uncertain"] else Counter()
            final = reasons and all(any(f in r for f in FOR_AN_OPERATOR) for r in reasons)
            if final and not counts["queued"] and webhook.stats()["pending"] == 0:
                stuck_since = stuck_since or time.monotonic()
                if time.monotonic() - stuck_since > 5 * args.resend_after:
                    break
            else:
                stuck_since = None
            time.sleep(0.25)
    finally:
        stop_child(scheduler, problems, "the scheduler")
    heal_seconds = (healed_at or time.monotonic()) - crashes_end
    # Whatever SendGrid still has to say is said now: late events of a request healing resent
    # would show up here, as a second acceptance already recorded by the server.
    webhook.flush(timeout=60)
    after = ledger_settled(url, issue_id)
    status_after = {d: s for d, (s, _, _) in after.items()}
    accepted = accepted_deliveries(server, issue_id)
    counts = Counter(status_after.values())
    settled_by = Counter(by for _, by, _ in after.values() if by)
    # The fate of those uncertain right after the crashes (the other evidence came while a
    # worker still held the delivery, or during the send). Resent: queued in a fresh batch
    # (settled_by says resend:auto unless that resend was uncertain again and evidence
    # settled it).
    resent = {d for d in uncertain_at_crash if after[d][2] != at_crash[d][2]}
    fate = Counter(
        "resent" if d in resent else (after[d][1] or after[d][0]) for d in uncertain_at_crash
    )
    twice = {d for d, n in accepted.items() if n > 1}
    twice_by_healing = twice & resent
    missing = {d for d, s in status_after.items() if s not in ("sent", "failed", "skipped")}
    missing |= {d for d, s in status_after.items() if s == "sent" and d not in accepted}
    left = counts["uncertain"]
    reasons_left = waiting_reasons(issue_id) if left else Counter()
    mailed = mailed_leavers(server, leavers)
    stats = server.stats()
    hook = stats["webhook"]
    # Ledger and server agree (sent is what the server took, nothing taken is recorded unsent).
    problems += check("after healing", status_after, accepted, server)
    if left:
        problems.append(f"{left} deliveries still uncertain after healing")
    if twice_by_healing:
        problems.append(f"{len(twice_by_healing)} deliveries SendGrid took were resent by healing")
    if missing:
        problems.append(f"{len(missing)} mailable people neither sent, failed nor skipped")
    if mailed:
        problems.append(f"{len(mailed)} who unsubscribed after the snapshot were mailed")
    if hook["lost"] or hook["abandoned"] or hook["overflow"]:
        problems.append(
            f"webhook events not delivered: lost {hook['lost']}, abandoned {hook['abandoned']}, "
            f"overflow {hook['overflow']}"
        )
    figures: dict[str, Any] = {
        "engine": "PostgreSQL" if url.startswith("postgresql") else "SQLite",
        "subscribers": args.subscribers,
        "recipients": len(after),
        "load_average": round(os.getloadavg()[0], 2),
        "send_seconds": round(send_seconds, 2),
        "kills": fleet.kills,
        "worker_starts": fleet.started,
        "requests_during_send": requests_send,
        "faults_during_send": injected_send,
        "requests": stats["requests"],
        "faults": dict(server.injected),
        "uncertain_after_crashes": len(uncertain_at_crash),
        "uncertain_after_crashes_taken": taken_at_crash,
        "webhook_events_waiting_after_crashes": webhook_waiting_at_crash,
        "settled_by": dict(sorted(settled_by.items())),
        "settled_by_evidence": sum(n for k, n in settled_by.items() if k.startswith("evidence:")),
        "resent_automatically": len(resent),
        "uncertain_after_crashes_settled_by": dict(sorted(fate.items())),
        "uncertain_after_crashes_settled_by_evidence": sum(
            n for k, n in fate.items() if k.startswith("evidence:")
        ),
        "uncertain_left": left,
        "waiting": dict(reasons_left),
        "mailed_twice": len(twice),
        "mailed_twice_by_healing": len(twice_by_healing),
        "server_duplicates": stats["duplicates"],
        "missing": len(missing),
        "mailed_leavers": len(mailed),
        "end_states": {k: counts[k] for k in ("sent", "failed", "uncertain", "skipped")},
        "healed": healed_at is not None and left == 0,
        "heal_seconds": round(heal_seconds, 2),
        "resend_after_seconds": args.resend_after,
        "event_delay_seconds": [0.1, args.event_delay],
        "webhook": {k: hook[k] for k in ("posts", "batches", "duplicates", "failed_posts",
                                         "retries", "lost", "abandoned", "overflow")},
        "total_seconds": round(time.monotonic() - began, 1),
        "problems": problems,
    }  # fmt: skip
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report_healing(args, figures)
    if problems:
        if not args.json:
            print("\nFAILED:")
            for problem in problems:
                print(f"  - {problem}")
        return 1
    if not args.json:
        print("\nOK: healed with no operator action; nobody mailed twice, nobody missing")
    return 0


def report_healing(args: argparse.Namespace, f: dict[str, Any]) -> None:
    ends = f["end_states"]
    print(
        f"faults, healing: {f['subscribers']:,} subscribers on {f['engine']}, batches of "
        f"{args.batch_size}, {args.workers} worker processes × 2 threads, load average "
        f"{f['load_average']:.1f}"
    )
    print(
        f"  send: {f['send_seconds']:.1f} s wall; {f['kills']} SIGKILLs, {f['worker_starts']} "
        f"worker starts; SendGrid server {f['requests_during_send']} requests, "
        f"{f['faults_during_send']} faults injected"
    )
    print(
        f"  uncertain right after the crashes: {f['uncertain_after_crashes']:,} "
        f"({f['uncertain_after_crashes_taken']:,} of them in requests the server had taken); "
        f"webhook events still to post: {f['webhook_events_waiting_after_crashes']:,}"
    )
    print(
        f"  healing (scheduler ticks every 1 s, resend after {f['resend_after_seconds']:g} s, "
        f"events {f['event_delay_seconds'][0]:g}-{f['event_delay_seconds'][1]:g} s late, "
        f"10% posted twice, shuffled): of the {f['uncertain_after_crashes']:,} uncertain, "
        f"{f['uncertain_after_crashes_settled_by_evidence']:,} settled by evidence, "
        f"{f['resent_automatically']:,} resent automatically ("
        + ", ".join(f"{k} {v:,}" for k, v in f["uncertain_after_crashes_settled_by"].items())
        + ")"
    )
    print(
        "    settled_by over the whole send (evidence also when it came before the worker's "
        "answer): " + ", ".join(f"{k} {v:,}" for k, v in f["settled_by"].items())
    )
    print(
        f"  after healing: {ends['sent']:,} sent + {ends['failed']} failed + "
        f"{ends['uncertain']} uncertain + {ends['skipped']} skipped = {f['recipients']:,}; "
        f"uncertain left {f['uncertain_left']}, mailed twice {f['mailed_twice']} "
        f"({f['mailed_twice_by_healing']} resent by healing), missing {f['missing']}"
    )
    for reason, n in f["waiting"].items():
        print(f"    left waiting: {n} — {reason}")
    healed = "healed" if f["healed"] else "NOT healed"
    print(
        f"  {healed} in {f['heal_seconds']:.1f} s from the end of the crashes; whole run "
        f"{f['requests']} requests, faults "
        + ", ".join(f"{k} {v}" for k, v in sorted(f["faults"].items()))
    )
    hook = f["webhook"]
    print(
        f"  webhook: {hook['posts']} POSTs ({hook['failed_posts']} failed, {hook['retries']} "
        f"retried), {hook['duplicates']} events posted twice, lost {hook['lost']}"
    )
    print(f"  left after the snapshot: 20 unsubscribed, {f['mailed_leavers']} of them mailed")
    print(f"  total {f['total_seconds']:.1f} s including seeding")


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
    print(f"  total {total_seconds:.1f} s including seeding and resolving")


if __name__ == "__main__":
    main()

"""Workers on separate hosts against one PostgreSQL; one host dies mid-send (issue 19).

    .venv/bin/python -m bench.hosts [--subscribers 20000] [--hosts 3] [--json]

Needs root on Linux (CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2's `ip` and util-linux's
`unshare`; PostgreSQL on NEWSLETTER_TEST_POSTGRES_URL (a database of its own is created and
dropped, or --database-url names an empty one). Nothing of PostgreSQL's configuration changes.

Each "host" is a network namespace (`ip netns`, a veth pair: 10.201.N.1 on this machine's side,
10.201.N.2 inside) with its own UTS namespace (its own hostname, nlhostN) and its own PID
namespace (so its first process is pid 1, as in a container, on every host). From inside, the
loopback PostgreSQL is out of reach: a TCP forwarder (tests/support/forwarder.py) listens on
10.201.N.1 and passes connections on to it, and the loopback SendGrid server listens on every
10.201.N.1 itself and records, per personalization, the address it came from: which host sent
it.

What runs where:
- this process: the database seeded (N confirmed subscribers, one approved issue), the send
  started, the SendGrid server talking back (signed Event Webhook batches, late, some twice,
  shuffled) to the app (`newsletter serve`, on 127.0.0.1);
- nlhost1: a worker (`newsletter issue worker --issue ID`, 2 threads), pid 1;
- nlhost2…: a worker each with `--wait` (still there for the resends); the last host's is
  started by a shell entrypoint (pid 2), and beside it, as a pod's second container (same
  network and hostname, its own PID namespace), the scheduler (`python scheduler.py`), pid 1,
  which also sends and heals.
NEWSLETTER_SEND_STUCK_SECONDS and NEWSLETTER_UNCERTAIN_RESEND_AFTER_SECONDS are short.

The server lets nlhost1's first requests through; of the next two (one per thread) it takes the
first and holds its answer, and holds the second before taking it. With both held, every
process of nlhost1 is SIGKILLed: one batch in flight whose request SendGrid took, one it never
will. The others finish the send; after the stuck timeout they take nlhost1's batches from it
(it cannot be asked: another host); SendGrid's events settle the request it took, healing
resends, once, the one it never took, and a surviving host sends it.

Checks (exit 1 if any fails): every subscriber accepted exactly once at the server, every
delivery sent, none open or uncertain; nlhost1's batches were taken only after the stuck
timeout and only theirs were; the request SendGrid took was not resent, the other was sent by
another host, in a batch claimed by another hostname; worker ids are unique though pids repeat.
Exit 3 (with what is missing) when this machine cannot make the namespaces.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.faults import (
    CLI,
    SCHEDULER,
    database,
    free_port,
    stop_child,
    wait_listening,
)
from tests.support.event_webhook import TalkBack
from tests.support.sendgrid_server import Fault, SendGridServer

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "SG.hosts-key"
NETNS = "nlhost"  # nlhost1, nlhost2…: the namespaces and the hostnames
VETH = "nlh"  # nlh1 on this machine's side, nlh1i inside
SUBNET = "10.201"
MAX_HOSTS = 9
LOCK_FILE = Path(tempfile.gettempdir()) / "newsletter-bench-hosts.lock"
LOCK_WAIT_SECONDS = 150  # another run (a second checkout's tests) ends within that
NEEDS = (
    "root on Linux (CAP_NET_ADMIN and CAP_SYS_ADMIN: `ip netns add`, veth pairs, "
    "`unshare --uts --pid`), iproute2's `ip` (apt-get install -y iproute2) and util-linux's "
    "`unshare`, and the addresses 10.201.1.0-10.201.9.255 unused"
)
EXIT_MACHINE = 3
NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"
# The last host's worker runs as pid 4001 of its namespace (a container that has been up a
# while): in its sidecar's namespace that pid names nothing, as it would in a real pod.
ENTRYPOINT_LAST_PID = 3999


# --- the machine ----------------------------------------------------------------------------


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done


def machine_lacks() -> str | None:
    """Why this machine cannot make the hosts (with what it needs), or None."""
    if sys.platform != "linux":
        return f"not Linux ({sys.platform}); needs {NEEDS}"
    if os.geteuid() != 0:
        return f"not root; needs {NEEDS}"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command; needs {NEEDS}"
    probe = f"{NETNS}probe"
    _run("ip", "netns", "del", probe, check=False)
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` refused: {made.stderr.strip()}; needs {NEEDS}"
    try:
        inside = _run(
            "ip", "netns", "exec", probe, "unshare", "--uts", "--pid", "--fork", "--mount-proc",
            "sh", "-c", f"echo 99 > {NS_LAST_PID} && hostname nlprobe && hostname && echo $$",
            check=False,
        )  # fmt: skip
        if inside.returncode != 0 or inside.stdout.split() != ["nlprobe", "1"]:
            return (
                f"`unshare --uts --pid` in a network namespace failed: "
                f"{(inside.stderr or inside.stdout).strip()}; needs {NEEDS}"
            )
    finally:
        _run("ip", "netns", "del", probe, check=False)
    taken = _run("ip", "-o", "addr", "show", check=False).stdout
    for n in range(1, MAX_HOSTS + 1):
        if f" {SUBNET}.{n}." in taken and f" {VETH}{n} " not in taken:
            return f"{SUBNET}.{n}.0/24 is in use on this machine; needs {NEEDS}"
    return None


@dataclass(frozen=True)
class Host:
    n: int

    @property
    def name(self) -> str:
        return f"{NETNS}{self.n}"

    @property
    def outside(self) -> str:
        """This machine's end of the veth: where the host finds PostgreSQL and SendGrid."""
        return f"{SUBNET}.{self.n}.1"

    @property
    def inside(self) -> str:
        """The host's own address, as the servers see it."""
        return f"{SUBNET}.{self.n}.2"


def remove_hosts() -> None:
    """Every namespace and veth a run makes (also those a killed run left behind)."""
    for n in range(1, MAX_HOSTS + 1):
        host = Host(n)
        for pid in netns_pids(host):
            with _gone():
                os.kill(pid, signal.SIGKILL)
        _run("ip", "netns", "del", host.name, check=False)
        _run("ip", "link", "del", f"{VETH}{n}", check=False)


def make_host(host: Host) -> None:
    outer, inner = f"{VETH}{host.n}", f"{VETH}{host.n}i"
    _run("ip", "netns", "add", host.name)
    _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
    _run("ip", "link", "set", inner, "netns", host.name)
    _run("ip", "addr", "add", f"{host.outside}/24", "dev", outer)
    _run("ip", "link", "set", outer, "up")
    _run("ip", "-n", host.name, "addr", "add", f"{host.inside}/24", "dev", inner)
    _run("ip", "-n", host.name, "link", "set", inner, "up")
    _run("ip", "-n", host.name, "link", "set", "lo", "up")


def netns_pids(host: Host) -> list[int]:
    done = _run("ip", "netns", "pids", host.name, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def _gone() -> suppress:
    return suppress(ProcessLookupError, PermissionError)


@contextmanager
def exclusive() -> Iterator[None]:
    """One run at a time on a machine: the names and addresses are fixed."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    with LOCK_FILE.open("w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"another bench.hosts run held {LOCK_FILE} for {LOCK_WAIT_SECONDS} s"
                    ) from None
                time.sleep(0.5)
        yield


def in_host(
    host: Host,
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log: Path,
    entrypoint_shell: bool = False,
) -> subprocess.Popen[bytes]:
    """`argv` on `host`: its network namespace, a UTS namespace with its hostname, a PID
    namespace of its own: argv is pid 1, or, after a shell entrypoint that stays, pid 4001."""
    script = (
        f'echo {ENTRYPOINT_LAST_PID} > {NS_LAST_PID} && hostname {host.name} && "$@"; exit $?'
        if entrypoint_shell
        else f'hostname {host.name} && exec "$@"'
    )
    return subprocess.Popen(
        ["ip", "netns", "exec", host.name, "unshare", "--uts", "--pid", "--fork", "--mount-proc",
         "--kill-child", "sh", "-c", script, "sh", *argv],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )  # fmt: skip


def python_pids(host: Host) -> list[int]:
    """The Python processes (workers, scheduler) running on the host, by this machine's pids."""
    found = []
    for pid in netns_pids(host):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if "python" in Path(exe).name:
            found.append(pid)
    return found


# --- the SendGrid server --------------------------------------------------------------------


@dataclass
class Held:
    kind: str  # "taken" (answer held) or "not taken" (held before SendGrid took it)
    delivery_ids: list[int]
    fate: str = "held"


def delivery_ids(payload: Any) -> list[int]:
    try:
        return [int(p["custom_args"]["delivery_id"]) for p in payload["personalizations"]]
    except (KeyError, TypeError, ValueError):
        return []


class HostsServer(SendGridServer):
    """Lets the victim's first `warmup` requests through, then holds the next ones: the first
    taken (its answer held), the second before it is taken, alternately, until `release`."""

    def __init__(self, *, victim: str, warmup: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.victim = victim
        self.warmup = warmup
        self.victim_requests = 0
        self.held: list[Held] = []
        self.both_held = threading.Event()
        self.release = threading.Event()

    def admit(self, peer: str, payload: Any, connection: socket.socket) -> Fault | None:
        if peer != self.victim or self.release.is_set():
            return super().admit(peer, payload, connection)
        with self.lock:
            self.victim_requests += 1
            warming = self.victim_requests <= self.warmup
            if not warming:
                kind = "taken" if len(self.held) % 2 == 0 else "not taken"
                held = Held(kind, delivery_ids(payload))
                self.held.append(held)
                if len(self.held) >= 2:
                    self.both_held.set()
        if warming:
            return super().admit(peer, payload, connection)
        if held.kind == "taken":
            return Fault(accept=True, hold=self.release)
        self.release.wait()
        # SendGrid never took a request whose sender was gone before it had read it.
        if _closed_by_peer(connection, wait=10.0):
            held.fate = "never taken: its sender was gone"
            return Fault(drop=True)
        held.fate = "taken late: its sender was still there"
        return None

    def by_host(self) -> Counter[str]:
        return Counter(r.peer or "?" for r in self.recipients())


def _closed_by_peer(connection: socket.socket, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                return True
        except BlockingIOError:
            pass
        except OSError:
            return True
        time.sleep(0.05)
    return False


# --- the ledger -----------------------------------------------------------------------------


@dataclass
class Batch:
    id: int
    status: str
    claimed_by: str | None
    claimed_at: datetime | None
    finished_at: datetime | None
    error: str | None


def batches(url: str, issue_id: int) -> dict[int, Batch]:
    from sqlalchemy import select

    from newsletter.db import session_factory
    from newsletter.sending.models import SendBatch

    with session_factory(url)() as session:
        rows = session.execute(
            select(
                SendBatch.id,
                SendBatch.status,
                SendBatch.claimed_by,
                SendBatch.claimed_at,
                SendBatch.finished_at,
                SendBatch.error,
            ).where(SendBatch.issue_id == issue_id)
        )
        return {row[0]: Batch(row[0], str(row[1]), *row[2:]) for row in rows}


def deliveries(url: str, issue_id: int) -> dict[int, tuple[str, str | None, int | None]]:
    """delivery id -> (status, settled_by, batch id)."""
    from bench.faults import ledger_settled

    return ledger_settled(url, issue_id)


def hostname_of(worker_id: str | None) -> str:
    return (worker_id or "").split(":")[0]


def process_of(worker_id: str | None) -> str:
    """host:pid:key: the process (threads add :n, a scheduler :scheduler-…)."""
    return ":".join((worker_id or "").split(":")[:3])


# --- the run --------------------------------------------------------------------------------


@dataclass
class Figures:
    problems: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--hosts", type=int, default=3, help=f"2 to {MAX_HOSTS}")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--stuck-seconds", type=float, default=5.0)
    parser.add_argument("--resend-after", type=float, default=5.0)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per answer")
    parser.add_argument("--warmup", type=int, default=2, help="nlhost1's requests let through")
    parser.add_argument("--time-limit", type=float, default=150.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database-url", help="an empty PostgreSQL database to use")
    parser.add_argument("--keep", type=Path, help="work (logs) in this folder and keep it")
    args = parser.parse_args()
    if not 2 <= args.hosts <= MAX_HOSTS:
        parser.error(f"--hosts is 2 to {MAX_HOSTS}")
    # A timeout's SIGTERM still takes the namespaces down (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    lacks = machine_lacks()
    if lacks:
        print(f"bench.hosts cannot run here: {lacks}", file=sys.stderr)
        sys.exit(EXIT_MACHINE)
    began = time.monotonic()
    with exclusive(), tempfile.TemporaryDirectory(prefix="bench-hosts-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        remove_hosts()
        try:
            hosts = [Host(n) for n in range(1, args.hosts + 1)]
            for host in hosts:
                make_host(host)
            if args.database_url:
                figures = run(args, args.database_url, hosts, workdir, began)
            else:
                with database(True, workdir) as url:
                    figures = run(args, url, hosts, workdir, began)
        finally:
            remove_hosts()
    report(args, figures)
    sys.exit(1 if figures.problems else 0)


def run(
    args: argparse.Namespace, url: str, hosts: list[Host], workdir: Path, began: float
) -> Figures:
    from cryptography.hazmat.primitives.asymmetric import ec
    from sqlalchemy.engine import make_url

    from bench.faults import seed
    from newsletter.db import transaction
    from newsletter.sending import service
    from newsletter.settings import reset_settings
    from newsletter.tracking.webhook import encode_public_key

    if not url.startswith("postgresql"):
        raise SystemExit("bench.hosts needs PostgreSQL (--database-url or the test server)")
    os.environ.update(
        DATABASE_URL=url,
        NEWSLETTER_SECRET_KEY="bench-secret-key-0123456789",
        NEWSLETTER_BATCH_SIZE=str(args.batch_size),
        NEWSLETTER_TRANSPORT="outbox",  # this process only plans; the hosts send
    )
    reset_settings()
    seeding = time.monotonic()
    issue_id, emails = seed(url, args.subscribers)
    seeded = time.monotonic() - seeding

    key = ec.generate_private_key(ec.SECP256R1())
    app_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "SENDGRID_WEBHOOK_PUBLIC_KEY": encode_public_key(key),
        "NEWSLETTER_UNCERTAIN_RESEND_AFTER_SECONDS": str(args.resend_after),
        "NEWSLETTER_SEND_STUCK_SECONDS": str(args.stuck_seconds),
    }
    failures: list[str] = []
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    pg = make_url(url)
    pg_host, pg_port = pg.host or "127.0.0.1", pg.port or 5432
    forwarder = subprocess.Popen(
        [sys.executable, "-m", "tests.support.forwarder",
         *(f"{h.outside}:{pg_port}={pg_host}:{pg_port}" for h in hosts)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=(workdir / "forwarder.log").open("wb"),
    )  # fmt: skip
    children.append(("the forwarder", forwarder))
    assert forwarder.stdout is not None
    if forwarder.stdout.readline().strip() != b"ready":
        raise SystemExit(f"the forwarder did not start: {(workdir / 'forwarder.log').read_text()}")
    app = subprocess.Popen(
        [*CLI, "serve", "--host", "127.0.0.1", "--port", str(app_port)],
        env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=(workdir / "app.log").open("wb"),
    )  # fmt: skip
    children.append(("the app", app))
    talk_back = TalkBack(
        url=f"http://127.0.0.1:{app_port}/webhooks/sendgrid",
        private_key=key,
        delay=(0.1, 1.0),
        duplicate_fraction=0.05,
        shuffle=True,
        seed=19,
        concurrency=2,
    )
    victim, *survivors = hosts
    server = HostsServer(
        victim=victim.inside,
        warmup=args.warmup,
        api_key=API_KEY,
        host=victim.outside,
        validate_schema=False,
        talk_back=talk_back,
    )
    server.latency = args.latency
    api = {h.n: server.listen_also(h.outside) for h in survivors}
    api[victim.n] = server.url
    server.start()
    try:
        wait_listening(app_port, app)
        with transaction() as session:
            assert service.start_send(session, issue_id)

        def host_env(host: Host) -> dict[str, str]:
            return {
                **env,
                "DATABASE_URL": pg.set(host=host.outside, port=pg_port).render_as_string(
                    hide_password=False
                ),
                "NEWSLETTER_TRANSPORT": "sendgrid",
                "SENDGRID_API_KEY": API_KEY,
                "SENDGRID_API_HOST": api[host.n],
                "SENDGRID_TIMEOUT_SECONDS": "30",
                "NEWSLETTER_POSTAL_ADDRESS": "1 Bench Street, 75001 Paris",
                "NEWSLETTER_BASE_URL": "https://nl.example",
                "NEWSLETTER_SEND_CONCURRENCY": "2",
                "NEWSLETTER_TICK_SECONDS": "1",
                # The weekly job's slot has passed: recorded as missed, never run here.
                "NEWSLETTER_MISFIRE_GRACE_SECONDS": "0",
            }

        worker = [*CLI, "issue", "worker", "--issue", str(issue_id)]
        last = survivors[-1]
        send_began = time.monotonic()
        # The victim first: its first requests must come while there is still work for it.
        doomed = in_host(
            victim, worker, env=host_env(victim), cwd=workdir,
            log=workdir / f"{victim.name}-worker.log",
        )  # fmt: skip
        children.append((f"{victim.name}'s worker, to be killed", doomed))
        for host in survivors:
            process = in_host(
                host, [*worker, "--wait"], env=host_env(host), cwd=workdir,
                log=workdir / f"{host.name}-worker.log", entrypoint_shell=host is last,
            )  # fmt: skip
            children.append((f"{host.name}'s worker", process))
        sidecar = in_host(
            last, SCHEDULER, env=host_env(last), cwd=workdir,
            log=workdir / f"{last.name}-scheduler.log",
        )  # fmt: skip
        children.append((f"{last.name}'s scheduler", sidecar))

        # nlhost1 dies with one request taken and unanswered, one never taken.
        while not server.both_held.wait(timeout=0.2):
            gone = [name for name, p in children if p.poll() is not None]
            if gone or time.monotonic() > send_began + 90:
                failures.append(f"exited before {victim.name} was killed: {gone}")
                break
        if failures:
            failures.append(
                f"{victim.name} never had two requests in flight (it sent "
                f"{server.victim_requests}); its log: "
                f"{(workdir / f'{victim.name}-worker.log').read_text()[-2000:]}"
            )
            server.release.set()
            return finish(args, url, issue_id, emails, hosts, server, children, failures, {})
        at_kill = batches(url, issue_id)
        held_batches = {
            b.id: b
            for b in at_kill.values()
            if b.status == "in_flight" and hostname_of(b.claimed_by) == victim.name
        }
        victim_pids = netns_pids(victim)
        for pid in victim_pids:
            with _gone():
                os.kill(pid, signal.SIGKILL)
        doomed.wait(timeout=30)
        killed_at = time.monotonic()
        # The kernel takes a moment to end the rest of a PID namespace whose first process died.
        left_alive = netns_pids(victim)
        while left_alive and time.monotonic() < killed_at + 10:
            time.sleep(0.05)
            left_alive = netns_pids(victim)
        if left_alive:
            failures.append(f"{victim.name} still has processes after SIGKILL: {left_alive}")
        done_at_kill = sum(1 for b in at_kill.values() if b.status == "done")
        server.release.set()

        # The others finish, take nlhost1's batches after the stuck timeout, and heal.
        deadline = send_began + args.time_limit
        settled_at: float | None = None
        held_swept_at: float | None = None
        webhook = server.webhook
        assert webhook is not None
        while time.monotonic() < deadline:
            for name, process in children:
                if process.poll() is not None and process is not doomed:
                    failures.append(f"{name} exited {process.returncode} during the send")
            if failures:
                break
            if held_swept_at is None:
                now_batches = batches(url, issue_id)
                if all(now_batches[b].status == "done" for b in held_batches):
                    held_swept_at = time.monotonic()
            counts = Counter(s for s, _, _ in deliveries(url, issue_id).values())
            if counts["sent"] == len(emails) and webhook.stats()["pending"] == 0:
                settled_at = time.monotonic()
                break
            time.sleep(0.25)
        if settled_at is None and not failures:
            failures.append(f"not every delivery sent within {args.time_limit:g} s")
        webhook.flush(timeout=60)
        timing = {
            "seed_seconds": round(seeded, 1),
            "kill_after_seconds": round(killed_at - send_began, 1),
            "batches_done_at_kill": done_at_kill,
            "held_batches_taken_after_kill_seconds": (
                round(held_swept_at - killed_at, 1) if held_swept_at else None
            ),
            "all_sent_after_kill_seconds": round(settled_at - killed_at, 1) if settled_at else None,
            "send_to_all_sent_seconds": round(settled_at - send_began, 1) if settled_at else None,
            "run_seconds": round(time.monotonic() - began, 1),
        }
        return finish(
            args, url, issue_id, emails, hosts, server, children, failures, timing, held_batches
        )
    finally:
        server.release.set()
        # Workers and the scheduler stop on SIGTERM; the host's namespace goes with them.
        for host in hosts:
            for pid in python_pids(host):
                with _gone():
                    os.kill(pid, signal.SIGTERM)
        for name, process in reversed(children):
            if name.startswith(NETNS):
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            else:
                stop_child(process, [], name)
        server.stop()


def finish(
    args: argparse.Namespace,
    url: str,
    issue_id: int,
    emails: list[str],
    hosts: list[Host],
    server: HostsServer,
    children: list[tuple[str, subprocess.Popen[bytes]]],
    failures: list[str],
    timing: dict[str, Any],
    held_batches: dict[int, Batch] | None = None,
) -> Figures:
    """Hold the ledger against the server's record."""
    figures = Figures(problems=list(failures))
    problems = figures.problems
    victim = hosts[0]
    peer_host = {h.inside: h.name for h in hosts}
    ledger = deliveries(url, issue_id)
    final = batches(url, issue_id)
    counts = Counter(s for s, _, _ in ledger.values())
    accepted: dict[int, list[str]] = {}
    for r in server.recipients():
        if r.issue_id == str(issue_id) and r.delivery_id is not None:
            accepted.setdefault(int(r.delivery_id), []).append(peer_host.get(r.peer or "", "?"))
    twice = {d: who for d, who in accepted.items() if len(who) > 1}

    # Everyone exactly once at the server; the ledger agrees; nothing open.
    if twice or server.duplicates:
        problems.append(f"{len(twice)} deliveries accepted twice: {dict(list(twice.items())[:5])}")
    mailed = {email for (issue, email) in server.received if issue == str(issue_id)}
    if mailed != set(emails):
        problems.append(
            f"{len(set(emails) - mailed)} subscribers never mailed, {len(mailed - set(emails))} "
            "addresses mailed that are not subscribers"
        )
    if counts["sent"] != len(emails) or len(ledger) != len(emails):
        problems.append(f"ledger: {dict(counts)} for {len(emails)} subscribers")
    unsent = [d for d, (s, _, _) in ledger.items() if s == "sent" and d not in accepted]
    if unsent:
        problems.append(f"{len(unsent)} deliveries recorded sent that the server never accepted")

    # Who was taken from: nlhost1 only, and only after the stuck timeout.
    stuck = timedelta(seconds=args.stuck_seconds)
    swept = {b.id: b for b in final.values() if "stopped while this batch was in flight" in (
        b.error or "")}  # fmt: skip
    wrongly = sorted(
        {b.claimed_by or "?" for b in swept.values() if hostname_of(b.claimed_by) != victim.name}
    )
    if wrongly:
        problems.append(f"batches of live workers were taken from them: {wrongly}")
    held_batches = held_batches or {}
    for b in held_batches.values():
        after = final[b.id]
        if after.id not in swept:
            problems.append(f"{victim.name}'s batch {b.id} was not taken over ({after.error})")
        elif (
            after.finished_at and after.claimed_at and after.finished_at - after.claimed_at < stuck
        ):
            problems.append(
                f"{victim.name}'s batch {b.id} was taken {after.finished_at - after.claimed_at} "
                f"after its claim, before the stuck timeout ({args.stuck_seconds:g} s)"
            )

    # The request SendGrid took was not resent; the one it never took went out from another host.
    fates: dict[str, dict[str, Any]] = {}
    for held in server.held:
        ids = held.delivery_ids
        senders = Counter(who for d in ids for who in accepted.get(d, []))
        settled = Counter(ledger[d][1] or "?" for d in ids if d in ledger)
        batch_ids = {ledger[d][2] for d in ids if d in ledger}
        now_in = {final[b].claimed_by for b in batch_ids if b is not None}
        fates[held.kind] = {
            "deliveries": len(ids),
            "fate": held.fate,
            "accepted_from": dict(senders),
            "settled_by": dict(settled),
            "now_in_batches_claimed_by": sorted({hostname_of(c) for c in now_in}),
        }
        if held.kind == "taken":
            if senders != Counter({victim.name: len(ids)}):
                problems.append(f"the request SendGrid took from {victim.name}: sent {senders}")
        elif held.fate.startswith("never taken"):
            others = {h.name for h in hosts[1:]}
            if set(senders) - others or sum(senders.values()) != len(ids):
                problems.append(f"the request SendGrid never took was sent by {dict(senders)}")
            if not {hostname_of(c) for c in now_in} <= others:
                problems.append(f"its resend was claimed by {sorted(map(str, now_in))}")
        else:
            problems.append(f"the request held before SendGrid took it: {held.fate}")
    if [h.kind for h in server.held[:2]] != ["taken", "not taken"]:
        problems.append(f"expected two held requests, got {[h.kind for h in server.held]}")

    # Identities: one per process, unique, though pids repeat across hosts.
    processes = sorted({process_of(b.claimed_by) for b in final.values() if b.claimed_by})
    by_pid = Counter(p.split(":")[1] for p in processes)
    keys_of_last = {p.split(":")[2] for p in processes if p.startswith(f"{hosts[-1].name}:")}
    if len(keys_of_last) < 2:
        problems.append(f"{hosts[-1].name}'s worker and sidecar have one PID key: {processes}")
    if len({p.split(":")[0] for p in processes} & {h.name for h in hosts}) != len(hosts):
        problems.append(f"not every host claimed batches: {processes}")

    stats = server.stats()
    figures.data = {
        "engine": "PostgreSQL",
        "subscribers": len(emails),
        "hosts": [h.name for h in hosts],
        "batch_size": args.batch_size,
        "stuck_seconds": args.stuck_seconds,
        "resend_after_seconds": args.resend_after,
        "load_average": round(os.getloadavg()[0], 2),
        **timing,
        "accepted_by_host": dict(sorted(server.by_host().items())),
        "accepted_by_host_name": dict(
            sorted(Counter(peer_host.get(p, p) for p in server.by_host().elements()).items())
        ),
        "requests": stats["requests"],
        "mailed_twice": len(twice),
        "server_duplicates": stats["duplicates"],
        "end_states": dict(sorted(counts.items())),
        "victim_batches_in_flight_at_kill": sorted(held_batches),
        "batches_taken_over": {str(b.id): b.claimed_by for b in swept.values()},
        "held_requests": fates,
        "worker_processes": processes,
        "pids_shared_by_processes": {pid: n for pid, n in by_pid.items() if n > 1},
        "keys_on_last_host": sorted(keys_of_last),
        "settled_by": dict(sorted(Counter(by for _, by, _ in ledger.values() if by).items())),
        "webhook": {
            k: stats["webhook"][k] for k in ("posts", "batches", "duplicates", "lost", "abandoned")
        },
        "problems": problems,
    }
    return figures


def report(args: argparse.Namespace, figures: Figures) -> None:
    f = figures.data
    if args.json:
        print(json.dumps(f, indent=2, default=str))
        return
    print(
        f"hosts: {f.get('subscribers', 0):,} subscribers on PostgreSQL, {len(f.get('hosts', []))} "
        f"hosts ({', '.join(f.get('hosts', []))}), batches of {f.get('batch_size')}, stuck "
        f"timeout {f.get('stuck_seconds')} s, resend after {f.get('resend_after_seconds')} s, "
        f"load average {f.get('load_average')}"
    )
    for name in (
        "seed_seconds", "kill_after_seconds", "batches_done_at_kill",
        "held_batches_taken_after_kill_seconds", "all_sent_after_kill_seconds",
        "send_to_all_sent_seconds", "run_seconds", "accepted_by_host_name", "requests",
        "end_states", "mailed_twice", "batches_taken_over", "held_requests", "worker_processes",
        "pids_shared_by_processes", "settled_by", "webhook",
    ):  # fmt: skip
        print(f"  {name}: {f.get(name)}")
    if figures.problems:
        print("\nFAILED:")
        for problem in figures.problems:
            print(f"  - {problem}")
    else:
        print("\nOK: one host killed mid-send; its batches taken over after the stuck timeout; "
              "everyone mailed exactly once")  # fmt: skip


if __name__ == "__main__":
    main()

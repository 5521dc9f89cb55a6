"""A whole week at N subscribers, through the real doors, one database from start to end.

    .venv/bin/python -m bench.week [--subscribers 1000000] [--postgres URL | --sqlite]

Each step runs in processes of its own (the CLI, `uvicorn` with two workers, the loopback
SendGrid, a load generator), timed from here: wall seconds, CPU seconds of the processes doing
the step, and the peak RSS of the biggest of them (VmHWM from /proc, sampled every 0.2 s and
read once more at the end; for the CLI commands their own VmHWM, sampled until they exit).

1. import N subscribers from a generated, messy CSV: `newsletter subscribers import FILE`;
2. the week's matchups (examples/matchups): `matchups import`, `issue build`, `issue approve`;
3. the send: `newsletter issue send ID` plus one `newsletter issue worker --issue ID` (two
   worker processes) through the `sendgrid` transport to tests/support/sendgrid_server.py;
4. 6·N signed SendGrid Event Webhook events (processed, delivered, opens, clicks, a few
   deferrals, bounces, unsubscribes, spam reports) in POSTs of 1,000, 4 connections at once,
   to the app under uvicorn (2 worker processes);
5. 0.4·N pixel and click hits (half each) from a second process, 16 keep-alive connections;
6. the numbers: the editor's stats page (logged in through /login), `newsletter stats ID`,
   the API's /api/v1/issues/ID/stats;
7. one erasure through the admin's confirmation form, one person's export
   (`newsletter subscribers show EMAIL --json`, the data of their own export) and the admin's
   CSV export of the whole list.

The database is dropped and created first (PostgreSQL: `bench_week` on the server of
`--postgres`; SQLite: a file in a temp folder), so a rerun starts from nothing. The bench reads
the database only to make its load (delivery ids, message ids, tokens, a subscriber's id);
everything it measures goes through the CLI or HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from newsletter.cli import main; main()"]
API_KEY = "SG.bench-week-key"
SECRET = "bench-week-secret-key-0123456789"
PASSWORD = "bench-week-Password-1"
EDITOR = "editor@bench-week.example"
ADMIN = "admin@bench-week.example"
DB_NAME = "bench_week"


# --- measuring processes --------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(_children(current))
    return found


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watch:
    """Samples a set of process trees: each process's VmHWM and CPU, the last seen kept."""

    def __init__(self) -> None:
        self.roots: list[int] = []
        self.hwm: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, pid: int) -> None:
        with self._lock:
            self.roots.append(pid)
        self.sample()

    def sample(self) -> None:
        with self._lock:
            roots = list(self.roots)
        for root in roots:
            for pid in _tree(root):
                hwm = _hwm_kb(pid)
                if hwm:
                    self.hwm[pid] = max(self.hwm.get(pid, 0), hwm)
                    self.cpu[pid] = max(self.cpu.get(pid, 0.0), _cpu(pid))

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Step:
    name: str
    count: int
    wall: float
    cpu: float
    peak_mb: float
    who: str
    note: str = ""


@dataclass
class Week:
    url: str
    env: dict[str, str]
    workdir: Path
    steps: list[Step] = field(default_factory=list)
    printed: int = 0

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
        """One CLI command (setup, not measured); returns (its stdout, wall seconds)."""
        began = time.perf_counter()
        process = subprocess.Popen(
            [*CLI, *args],
            env={**self.env, **(env or {})},
            cwd=self.workdir,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = process.communicate(stdin)
        wall = time.perf_counter() - began
        if process.returncode != 0:
            raise SystemExit(f"newsletter {' '.join(args)} failed ({process.returncode}):\n{err}")
        return out, wall

    def measured(self, name: str, count: int, *args: str, **kwargs: Any) -> Any:
        """A CLI command measured exactly: its own wait4 rusage (CPU and max RSS)."""
        began = time.perf_counter()
        process = subprocess.Popen(
            [*CLI, *args],
            env={**self.env, **(kwargs.get("env") or {})},
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # wait4's ru_maxrss counts the child from its fork, before exec, when it still maps this
        # process's memory: a CLI step after the large ones showed this bench's own 547 MB.
        # VmHWM is the exec'd command's own (reset at exec), read until it exits.
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], _hwm_kb(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, err = _drain(process)
        done.set()
        sampler.join()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - began
        # `subscribers import` exits 1 when the file has invalid rows (this one has, on purpose).
        if process.returncode not in kwargs.get("ok", (0,)):
            raise SystemExit(f"newsletter {' '.join(args)} failed ({process.returncode}):\n{err}")
        cpu = usage.ru_utime + usage.ru_stime
        rss_kb = peak[0] or usage.ru_maxrss  # a command too quick to sample: wait4's
        self.steps.append(Step(name, count, wall, cpu, rss_kb / 1024, "cli"))
        return out


def _drain(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Read stdout and stderr to the end without reaping the process (wait4 does that)."""
    assert process.stdout is not None and process.stderr is not None
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(process.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    out = process.stdout.read()
    reader.join()
    return out, err[0] if err else ""


# --- the database ---------------------------------------------------------------------------


@contextmanager
def database(postgres: str | None, workdir: Path) -> Iterator[str]:
    if postgres is None:
        yield f"sqlite:///{workdir / 'week.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(postgres).set(drivername="postgresql+psycopg")
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    # Kept after the run (dropped by the next one), for a look at what the week left.
    yield server.set(database=DB_NAME).render_as_string(hide_password=False)


def query(url: str, sql: str, **params: Any) -> list[Sequence[Any]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


# --- servers --------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def app_server(week: Week, watch: Watch, env: dict[str, str]) -> Iterator[int]:
    """`newsletter serve --workers 2` (uvicorn, two worker processes on one socket)."""
    import socket

    port = free_port()
    log = (week.workdir / "app.log").open("wb")
    process = subprocess.Popen(
        [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        # Served at its loopback address over http (an https base URL makes the session
        # cookie Secure, which a client on http:// never sends back).
        env={**week.env, **env, "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}"},
        cwd=week.workdir,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the app exited with {process.returncode}; see app.log")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the app did not start within 60 s") from None
                time.sleep(0.1)
        # Both workers answer (each imports the app on its first request).
        for _ in range(8):
            _get(port, "/login")
        watch.add(process.pid)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def server_figures(watch: Watch, root: int) -> tuple[float, float]:
    """(CPU seconds so far, largest VmHWM MB) of a process tree."""
    watch.sample()
    tree = set(_tree(root)) | {root}
    pids = [pid for pid in watch.hwm if pid in tree]
    return sum(watch.cpu.get(p, 0.0) for p in pids), max(
        (watch.hwm[p] for p in pids), default=0
    ) / 1024


# --- the steps ------------------------------------------------------------------------------


def step_import(week: Week, n: int) -> None:
    from bench.subscribers_import import write_csv

    path = week.workdir / "subscribers.csv"
    write_csv(path, n)
    out = week.measured(
        "1 import (subscribers import)", n, "subscribers", "import", str(path), "--json", ok=(0, 1)
    )
    report = json.loads(out)
    week.steps[-1].note = (
        f"imported {report['imported']:,}, skipped {report['skipped']:,}, "
        f"invalid {len(report['invalid']):,}"
    )


def step_issue(week: Week) -> int:
    week.measured(
        "2a matchups import", 7, "matchups", "import", str(ROOT / "examples/matchups"), "--json"
    )
    built = json.loads(week.measured("2b issue build", 1, "issue", "build", "--json"))
    issue_id = int(built["id"])
    week.measured(
        "2c issue approve", 1, "issue", "approve", str(issue_id), "--by", "bench", "--json"
    )
    return issue_id


def step_send(week: Week, watch: Watch, issue_id: int, active: int) -> dict[str, str]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.sendgrid_server",
            "--api-key",
            API_KEY,
            "--no-schema",
            "--no-record",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert server.stdout is not None
    host = server.stdout.readline().strip().split()[-1]
    env = {
        "NEWSLETTER_TRANSPORT": "sendgrid",
        "SENDGRID_API_KEY": API_KEY,
        "SENDGRID_API_HOST": host,
        "NEWSLETTER_POSTAL_ADDRESS": "1 Bench Street, 75001 Paris",
    }
    try:
        began = time.perf_counter()
        sender = subprocess.Popen(
            [*CLI, "issue", "send", str(issue_id), "--json"],
            env={**week.env, **env},
            cwd=week.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        watch.add(sender.pid)
        # The second worker joins once the send has started (it leaves when nothing is left).
        while sender.poll() is None:
            rows = query(week.url, "select status from issues where id = :i", i=issue_id)
            if rows and str(rows[0][0]).lower().endswith("sending"):
                break
            time.sleep(0.1)
        helper = subprocess.Popen(
            [*CLI, "issue", "worker", "--issue", str(issue_id)],
            env={**week.env, **env},
            cwd=week.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        watch.add(helper.pid)
        _out, err = sender.communicate()
        if sender.returncode != 0:
            raise SystemExit(f"issue send failed ({sender.returncode}):\n{err}")
        _, helper_err = helper.communicate()
        if helper.returncode != 0:
            raise SystemExit(f"issue worker failed ({helper.returncode}):\n{helper_err}")
        wall = time.perf_counter() - began
        watch.sample()
        pids = [sender.pid, helper.pid]
        cpu = sum(watch.cpu.get(p, 0.0) for p in pids)
        peak = max(watch.hwm.get(p, 0) for p in pids) / 1024
        with urllib_open(f"{host}/_stats") as stats:
            accepted = stats.get("accepted_recipients", 0)
        week.steps.append(
            Step(
                "3 send (2 workers, sendgrid)",
                active,
                wall,
                cpu,
                peak,
                "sender/worker",
                f"server accepted {accepted:,} recipients",
            )
        )
    finally:
        server.terminate()
        server.wait()
    return env


@contextmanager
def urllib_open(url: str) -> Iterator[dict[str, Any]]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        yield json.loads(response.read())


def deliveries(url: str, issue_id: int) -> list[Sequence[Any]]:
    return query(
        url,
        "select d.id, d.message_id, s.email, s.public_id from deliveries d "
        "join subscribers s on s.id = d.subscriber_id where d.issue_id = :i order by d.id",
        i=issue_id,
    )


def step_load(week: Week, watch: Watch, port: int, issue_id: int, kind: str, count: int) -> None:
    """Steps 4 and 5: a load generator in a second process (this module, --child-*)."""
    root = _app_root(watch)
    cpu0, _ = server_figures(watch, root)
    began = time.perf_counter()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.week",
            f"--child-{kind}",
            str(issue_id),
            "--port",
            str(port),
            "--count",
            str(count),
        ],
        env=week.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = _drain(child)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    if child.returncode != 0:
        raise SystemExit(f"the {kind} load failed ({child.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    cpu1, peak = server_figures(watch, root)
    name = {"webhook": "4 webhook events (6·N)", "hits": "5 pixel + click hits (0.4·N)"}[kind]
    week.steps.append(
        Step(
            name,
            result["done"],
            wall,
            cpu1 - cpu0,
            peak,
            "app (2 workers)",
            f"{result['note']}; generator CPU {usage.ru_utime + usage.ru_stime:.1f} s, "
            f"peak {usage.ru_maxrss / 1024:.0f} MB",
        )
    )


def _app_root(watch: Watch) -> int:
    return watch.roots[-1]


def child_webhook(issue_id: int, port: int, count: int) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.support.event_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    url = os.environ["DATABASE_URL"]
    key = serialization.load_pem_private_key(
        os.environ["BENCH_WEEK_WEBHOOK_KEY"].encode(), password=None
    )
    rows = deliveries(url, issue_id)
    now = int(time.time())
    # Six events a reader: processed, delivered, two opens, a click, and one more: mostly
    # another open or click, some deferrals, bounces, unsubscribes and spam reports.
    extra = ["open"] * 40 + ["click"] * 40 + ["deferred"] * 10 + ["bounce"] * 5
    extra += ["unsubscribe"] * 4 + ["spamreport"]
    kinds = ["processed", "delivered", "open", "open", "click"]

    def event(n: int) -> dict[str, Any]:
        delivery_id, message_id, email, _ = rows[(n // 6) % len(rows)]
        slot = n % 6
        kind = kinds[slot] if slot < 5 else extra[(n // 6) % len(extra)]
        out: dict[str, Any] = {
            "email": email,
            "timestamp": now - 3600 + slot * 60,
            "event": kind,
            "sg_event_id": f"week-{n:012d}",
            "sg_message_id": f"{message_id or 'm'}.recv{delivery_id}",
            "delivery_id": str(delivery_id),
            "issue_id": str(issue_id),
        }
        if kind == "open":
            out["sg_machine_open"] = n % 7 == 0
            out["useragent"] = "Mozilla/5.0"
        elif kind == "click":
            out["url"] = "https://aitoolverdicts.example/quillmate-vs-proseforge"
        elif kind == "deferred":
            out["response"] = "451 4.7.1 try again later"
        elif kind == "bounce":
            out["type"] = "bounce"
            out["reason"] = "550 5.1.1 The email account that you tried to reach does not exist."
        return out

    size = 1000
    batches = [(start, min(count, start + size)) for start in range(0, count, size)]
    local = threading.local()
    stored = [0]
    lock = threading.Lock()

    def post(bounds: tuple[int, int]) -> None:
        body = json.dumps([event(n) for n in range(*bounds)]).encode()
        timestamp = str(int(time.time()))
        headers = {
            SIGNATURE_HEADER: sign(key, timestamp, body),  # type: ignore[arg-type]
            TIMESTAMP_HEADER: timestamp,
            "Content-Type": "application/json",
        }
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        local.connection.request("POST", "/webhooks/sendgrid", body, headers)
        response = local.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"webhook answered {response.status}: {data[:300]!r}")
        with lock:
            stored[0] += int(json.loads(data).get("stored", 0))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post, batches))
    note = f"{len(batches):,} POSTs, 4 connections, {stored[0]:,} stored"
    print(json.dumps({"done": count, "note": note}))


def child_hits(issue_id: int, port: int, count: int) -> None:
    from bench.tracking_load import drive, request_bytes
    from newsletter.security.delivery_tokens import delivery_tokens

    url = os.environ["DATABASE_URL"]
    rows = deliveries(url, issue_id)
    keys = [
        str(k) for (k,) in query(url, "select key from issue_links where issue_id = :i", i=issue_id)
    ] or ["m0"]
    tokens = delivery_tokens((int(d), str(p)) for d, _, _, p in rows)
    paths = [
        request_bytes(
            f"/o/{tokens[i % len(tokens)]}.gif"
            if i % 2 == 0
            else f"/c/{tokens[i % len(tokens)]}/{keys[i % len(keys)]}"
        )
        for i in range(count)
    ]
    _elapsed, latencies, errors = asyncio.run(drive(port, paths, 16, 3600))
    ordered = sorted(latencies) or [0.0]
    note = (
        f"16 connections, p99 {ordered[int(0.99 * (len(ordered) - 1))] * 1000:.0f} ms, "
        f"{len(errors)} errors"
    )
    print(json.dumps({"done": len(latencies), "note": note}))


class Browser:
    """A staff member's session in the web app: cookies, CSRF tokens, log in by the form."""

    def __init__(self, port: int) -> None:
        import httpx

        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)

    def csrf(self, path: str) -> str:
        page = self.client.get(path)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if not match:
            raise SystemExit(f"no CSRF token on {path} ({page.status_code})")
        return match.group(1)

    def login(self, email: str) -> None:
        token = self.csrf("/login")
        response = self.client.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
        )
        if response.status_code not in (302, 303):
            raise SystemExit(f"login as {email} answered {response.status_code}")


def timed_http(week: Week, watch: Watch, name: str, call: Any, count: int = 1) -> Any:
    root = _app_root(watch)
    cpu0, _ = server_figures(watch, root)
    began = time.perf_counter()
    response = call()
    wall = time.perf_counter() - began
    if response.status_code not in (200, 302, 303):
        raise SystemExit(f"{name} answered {response.status_code}: {response.text[:300]}")
    cpu1, peak = server_figures(watch, root)
    week.steps.append(Step(name, count, wall, cpu1 - cpu0, peak, "app (2 workers)"))
    return response


def step_stats(week: Week, watch: Watch, port: int, issue_id: int) -> None:
    editor = Browser(port)
    editor.login(EDITOR)
    page = timed_http(
        week,
        watch,
        "6a stats page (editor)",
        lambda: editor.client.get(f"/admin/issues/{issue_id}/stats"),
    )
    week.steps[-1].note = f"{len(page.content) / 1024:.0f} KB of HTML"
    week.measured("6b newsletter stats ID", 1, "stats", str(issue_id), "--json")
    out, _ = week.run("users", "token", EDITOR, "--json")
    token = json.loads(out)["token"]
    timed_http(
        week,
        watch,
        "6c API stats route",
        lambda: editor.client.get(
            f"/api/v1/issues/{issue_id}/stats", headers={"Authorization": f"Bearer {token}"}
        ),
    )


def step_people(week: Week, watch: Watch, port: int, issue_id: int, n: int) -> None:
    admin = Browser(port)
    admin.login(ADMIN)
    # Someone in the middle of the list who got the issue (deliveries and events to erase).
    rows = query(
        week.url,
        "select s.id, s.email from deliveries d join subscribers s on s.id = d.subscriber_id "
        "where d.issue_id = :i order by d.id limit 2 offset :o",
        i=issue_id,
        o=max(0, n // 2 - 1),
    )
    (erased_id, _), (_, kept_email) = rows[0], rows[1]
    token = admin.csrf(f"/admin/subscribers/{erased_id}/erase")
    timed_http(
        week,
        watch,
        "7a erasure (admin form)",
        lambda: admin.client.post(
            f"/admin/subscribers/{erased_id}/erase", data={"confirmed": "yes", "csrf_token": token}
        ),
    )
    if query(week.url, "select id from subscribers where id = :i", i=erased_id):
        raise SystemExit("the erasure left the subscriber in place")
    out = week.measured("7b one person's export", 1, "subscribers", "show", kept_email, "--json")
    data = json.loads(out)
    week.steps[
        -1
    ].note = f"{len(data.get('deliveries', []))} deliveries, {len(data.get('events', []))} events"
    response = timed_http(
        week,
        watch,
        "7c list CSV export (admin)",
        lambda: admin.client.get("/admin/subscribers/export.csv"),
    )
    lines = response.text.count("\n") - 1
    week.steps[-1].count = lines
    week.steps[-1].note = f"{len(response.content) / 2**20:.1f} MB"


# --- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument(
        "--postgres",
        metavar="URL",
        help="a PostgreSQL server (any database name: bench_week is dropped and created on it)",
    )
    engine.add_argument("--sqlite", action="store_true", help="a SQLite file (the default)")
    parser.add_argument("--child-webhook", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-hits", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_webhook is not None:
        child_webhook(args.child_webhook, args.port, args.count)
        return
    if args.child_hits is not None:
        child_hits(args.child_hits, args.port, args.count)
        return
    run(args.subscribers, args.postgres)


def run(n: int, postgres: str | None) -> list[Step]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from newsletter.tracking.webhook import encode_public_key

    started_at = datetime.now(UTC)
    load = os.getloadavg()
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-week-") as tmp,
        database(postgres, Path(tmp)) as url,
    ):
        workdir = Path(tmp)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("NEWSLETTER_", "SENDGRID_", "DATABASE_URL"))
        }
        pythonpath = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env.update(
            PYTHONPATH=pythonpath,
            DATABASE_URL=url,
            NEWSLETTER_SECRET_KEY=SECRET,
            NEWSLETTER_BASE_URL="https://nl.example",
            NEWSLETTER_TRANSPORT="outbox",
            NEWSLETTER_OUTBOX_DIR=str(workdir / "outbox"),
            NEWSLETTER_INBOX_DIR=str(workdir / "inbox"),
            SENDGRID_WEBHOOK_PUBLIC_KEY=encode_public_key(key),
            BENCH_WEEK_WEBHOOK_KEY=pem,
            NEWSLETTER_USER_PASSWORD=PASSWORD,
        )
        week = Week(url=url, env=env, workdir=workdir)
        watch = Watch()
        try:
            week.run("init")
            week.run("users", "add", EDITOR, "--role", "editor")
            week.run("users", "add", ADMIN, "--role", "admin")
            step_import(week, n)
            progress(week, began)
            issue_id = step_issue(week)
            progress(week, began)
            send_env = step_send(week, watch, issue_id, n)
            sent = len(deliveries(url, issue_id))
            week.steps[-1].count = sent
            progress(week, began)
            with app_server(week, watch, send_env) as port:
                step_load(week, watch, port, issue_id, "webhook", 6 * n)
                progress(week, began)
                step_load(week, watch, port, issue_id, "hits", max(2, int(0.4 * n)))
                progress(week, began)
                step_stats(week, watch, port, issue_id)
                progress(week, began)
                step_people(week, watch, port, issue_id, sent)
                progress(week, began)
        finally:
            watch.close()
    total = time.perf_counter() - began
    print_table(week.steps, n, postgres, started_at, load, total)
    return week.steps


def progress(week: Week, began: float) -> None:
    """On stderr as each step ends (a long run shows where it is; the table comes at the end)."""
    while week.printed < len(week.steps):
        s = week.steps[week.printed]
        week.printed += 1
        print(
            f"[{time.perf_counter() - began:7.0f} s] {s.name}: {s.count:,} in {s.wall:.2f} s, "
            f"peak {s.peak_mb:.0f} MB",
            file=sys.stderr,
            flush=True,
        )


def print_table(
    steps: list[Step],
    n: int,
    postgres: str | None,
    started_at: datetime,
    load: tuple[float, float, float],
    total: float,
) -> None:
    engine = "PostgreSQL" if postgres else "SQLite"
    print(
        f"a week at {n:,} subscribers on {engine}; started {started_at:%Y-%m-%d %H:%M} UTC, "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores"
    )
    header = f"{'step':34} {'count':>10} {'wall s':>9} {'CPU s':>8} {'rate/s':>9} {'peak RSS MB':>11}  process / note"
    print(header)
    print("-" * len(header))
    for s in steps:
        rate = f"{s.count / s.wall:,.0f}" if s.wall > 0 and s.count > 1 else ""
        note = f"{s.who}" + (f"; {s.note}" if s.note else "")
        print(
            f"{s.name:34} {s.count:>10,} {s.wall:>9.2f} {s.cpu:>8.1f} {rate:>9} "
            f"{s.peak_mb:>11.0f}  {note}"
        )
    print(
        f"whole run (with CSV writing, setup, server start-ups): {total:,.0f} s; load now "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()

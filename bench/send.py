"""Send an issue to 100,000 subscribers through the `sendgrid` transport, on SQLite.

    .venv/bin/python -m bench.send [--subscribers 100000] [--million]

The real `sendgrid` client posts to the loopback SendGrid-compatible server, which runs in its
own process (as SendGrid would be elsewhere) and checks SendGrid's documented rules on every
request; the JSON-schema check is left to the tests, being slower than the send it checks. The
send runs in a child process so its peak memory (max RSS) is its own.

Beside it, in the same run, a baseline sends one request per recipient (a send loop with a
ledger update per email): it is timed on a sample (default 2,000) and extrapolated.
`--million` repeats the batched send at 1,000,000 subscribers to show memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

API_KEY = "SG.bench-key"
HTML_BLOCK = (
    '<tr><td style="padding:16px;font-family:Arial,sans-serif">'
    "<h2>Tool A vs Tool B</h2><p>The panel ships Tool A 3 to 1: faster primitives, a saner "
    "pricing page, and an API that does what its docs say.</p>"
    '<a href="https://nl.example/c/__NL_TOKEN__/m{n}">Read the verdict</a> · '
    '<a href="https://nl.example/v/__NL_TOKEN__/m{n}/0">Vote A</a> · '
    '<a href="https://nl.example/v/__NL_TOKEN__/m{n}/1">Vote B</a></td></tr>'
)


def _env(db_path: Path, host: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{db_path}",
        NEWSLETTER_TRANSPORT="sendgrid",
        SENDGRID_API_KEY=API_KEY,
        NEWSLETTER_POSTAL_ADDRESS="1 Bench Street, 75001 Paris",
        SENDGRID_API_HOST=host,
        NEWSLETTER_SECRET_KEY="bench-secret-key-0123456789",
        NEWSLETTER_BASE_URL="https://nl.example",
    )
    return env


def seed(db_path: Path, subscribers: int) -> int:
    """A migrated database with `subscribers` active subscribers and one approved issue."""
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-key-0123456789")
    from newsletter.db import dispose_engines, session_factory
    from newsletter.migrate import upgrade
    from newsletter.settings import reset_settings
    from tests.support.arrange import add_frozen_issue, add_subscribers

    reset_settings()
    upgrade(f"sqlite:///{db_path}")
    html = (
        "<html><body><table>"
        + "".join(HTML_BLOCK.format(n=n) for n in range(8)) * 6
        + '<img src="https://nl.example/o/__NL_TOKEN__.gif" alt=""></table></body></html>'
    )
    text = "Weekly AI Tool Verdicts\n" * 200 + "Unsubscribe: https://nl.example/u/__NL_TOKEN__\n"
    with session_factory()() as session:
        add_subscribers(session, subscribers, opt_out_every=50, source="bench")
        issue_id = add_frozen_issue(
            session,
            html=html,
            text=text,
            untracked_html=html.replace("/c/__NL_TOKEN__", "/x"),
            approved_by="bench",
        )
        session.commit()
    dispose_engines()
    return issue_id


def start_server() -> tuple[subprocess.Popen[str], str]:
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
    )
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    return server, line.split()[-1]


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_stats(host: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{host}/_stats", timeout=5) as response:
        stats: dict[str, Any] = json.loads(response.read())
        return stats


def own_peak_kb() -> int:
    """This process's own peak RSS (VmHWM, which exec resets). Not getrusage's ru_maxrss: Linux
    carries it over exec from the fork, so a child of a parent that seeded a million rows
    reported the parent's size (204 MB at 1,000,000 where the send itself peaks near 106)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: the rusage figure


def child_batched(issue_id: int) -> None:
    """In the child process: snapshot + send; prints timings and this process's peak RSS."""
    from newsletter.db import transaction
    from newsletter.sending import repository, service
    from newsletter.sending.worker import run_until_done

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    cpu_began = cpu()
    began = time.perf_counter()
    with transaction() as session:
        assert service.start_send(session, issue_id)
    snapshot = time.perf_counter() - began
    cpu_snapshot = cpu()
    run_until_done(issue_id, worker_id=service.default_worker_id())
    total = time.perf_counter() - began
    cpu_sent = cpu()
    with transaction() as session:
        counts = repository.status_counts(session, issue_id)
    print(
        json.dumps(
            {
                "snapshot": snapshot,
                "total": total,
                "counts": counts,
                "peak_kb": own_peak_kb(),
                "cpu_snapshot": cpu_snapshot - cpu_began,
                "cpu": cpu_sent - cpu_began,
            }
        )
    )


def child_baseline(issue_id: int, sample: int) -> None:
    """One request per recipient, settling each delivery after its request (the naive loop)."""
    from sqlalchemy import select

    from newsletter.db import transaction
    from newsletter.issues.service import frozen_content
    from newsletter.mail.message import Recipient
    from newsletter.mail.outbox import personal_message
    from newsletter.mail.sendgrid_transport import SendGridTransport
    from newsletter.orm import utcnow
    from newsletter.security.delivery_tokens import delivery_token
    from newsletter.sending import claims, service
    from newsletter.sending.models import Delivery
    from newsletter.settings import get_settings
    from subscribers.models import Subscriber

    settings = get_settings()
    with transaction() as session:
        assert service.start_send(session, issue_id)
        content = frozen_content(session, issue_id, tracked=True)
        rows = session.execute(
            select(
                Delivery.id,
                Delivery.batch_id,
                Subscriber.email,
                Subscriber.name,
                Subscriber.public_id,
            )
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.issue_id == issue_id)
            .order_by(Delivery.id)
            .limit(sample)
        ).all()
    transport = SendGridTransport(settings)
    began = time.perf_counter()
    for delivery_id, batch_id, email, name, public_id in rows:
        assert batch_id is not None
        recipient = Recipient(delivery_id, email, name, delivery_token(delivery_id, public_id))
        result = transport.send_one(
            personal_message(content, recipient, issue_id, ("bench",), settings)
        )
        assert result.ok, result.error
        with transaction() as session:
            claims.mark_sent(session, batch_id, [delivery_id], result.message_id, utcnow())
    elapsed = time.perf_counter() - began
    print(json.dumps({"sample": len(rows), "seconds": elapsed}))


def run_child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.send", *args], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def batched(subscribers: int, workdir: Path) -> dict[str, Any]:
    db_path = workdir / f"send-{subscribers}.db"
    seeding = time.perf_counter()
    issue_id = seed(db_path, subscribers)
    seeded = time.perf_counter() - seeding
    server, host = start_server()
    try:
        idle_cpu = cpu_seconds(server.pid)
        result = run_child(["--child-batched", str(issue_id)], _env(db_path, host))
        stats = server_stats(host)
        busy_cpu = cpu_seconds(server.pid)
        if idle_cpu is not None and busy_cpu is not None:
            stats["cpu"] = busy_cpu - idle_cpu
    finally:
        server.terminate()
        server.wait()
    result["seed"] = seeded
    result["server"] = stats
    return result


def baseline(sample: int, workdir: Path) -> dict[str, Any]:
    db_path = workdir / "baseline.db"
    issue_id = seed(db_path, sample)
    server, host = start_server()
    try:
        return run_child(
            ["--child-baseline", str(issue_id), "--sample", str(sample)], _env(db_path, host)
        )
    finally:
        server.terminate()
        server.wait()


def report(label: str, subscribers: int, result: dict[str, Any]) -> float:
    counts = result["counts"]
    send_seconds = result["total"] - result["snapshot"]
    rate: float = subscribers / result["total"]
    print(
        f"{label}: {subscribers:,} subscribers — snapshot {result['snapshot']:.2f} s, "
        f"send {send_seconds:.2f} s, total {result['total']:.2f} s → {rate:,.0f} emails/s "
        f"handed off ({subscribers / send_seconds:,.0f}/s excluding the snapshot); "
        f"peak RSS {result['peak_kb'] / 1024:.0f} MB"
    )
    accepted = result["server"]["accepted_recipients"]
    print(
        f"  ledger: {counts['sent']:,} sent, {counts['failed']} failed, "
        f"{counts['uncertain']} uncertain; server accepted {accepted:,} recipients in "
        f"{result['server']['accepted_requests']} requests"
    )
    server_cpu = result["server"].get("cpu")
    print(
        f"  CPU: sender {result['cpu']:.2f} s (snapshot {result['cpu_snapshot']:.2f} s)"
        + (f", loopback server {server_cpu:.2f} s" if server_cpu is not None else "")
        + f" (2 cores shared; load average {os.getloadavg()[0]:.2f} at the end)"
    )
    if counts["sent"] != subscribers or accepted != subscribers:
        raise SystemExit("the send did not reach every subscriber exactly once")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--baseline-sample", type=int, default=2_000)
    parser.add_argument("--million", action="store_true", help="also send to 1,000,000")
    parser.add_argument("--child-batched", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-baseline", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=int, default=2_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_batched is not None:
        child_batched(args.child_batched)
        return
    if args.child_baseline is not None:
        child_baseline(args.child_baseline, args.sample)
        return

    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
        workdir = Path(tmp)
        result = batched(args.subscribers, workdir)
        rate = report("batched (1,000 per request)", args.subscribers, result)
        base = baseline(args.baseline_sample, workdir)
        base_rate = base["sample"] / base["seconds"]
        print(
            f"baseline (one request per recipient): {base['sample']:,} sent in "
            f"{base['seconds']:.2f} s → {base_rate:,.0f} emails/s (timed on this sample; "
            f"{args.subscribers:,} would take ~{args.subscribers / base_rate:,.0f} s)"
        )
        print(f"speed-up: {rate / base_rate:,.0f}× the baseline")
        if args.million:
            million = batched(1_000_000, workdir)
            report("batched, 1,000,000", 1_000_000, million)
            print(
                f"peak RSS {result['peak_kb'] / 1024:.0f} MB at {args.subscribers:,} vs "
                f"{million['peak_kb'] / 1024:.0f} MB at 1,000,000"
            )


if __name__ == "__main__":
    main()

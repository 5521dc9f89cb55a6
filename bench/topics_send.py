"""A send where readers chose topics, beside the same send where nobody did (issue 17).

    .venv/bin/python -m bench.topics_send [--subscribers 100000] [--variants 20] [--postgres URL]

`--postgres URL`: both sends on that PostgreSQL database instead of SQLite (its schema public
is dropped and made again before each send: give a scratch database, never one you keep).

Both runs: the repository's seven example matchups (five categories) in a real issue, built
and approved as an editor would (MJML compiled), N active subscribers, the `sendgrid`
transport to the loopback SendGrid server in its own process (bench/send.py's). In the topics
run every subscriber chose one of `--variants` distinct combinations of the five categories
(none of them all five, so each is its own variant), dealt round-robin. The figure is the
ratio of the two sends' emails/s in the same minutes, the snapshot's share, the renders made
(one per distinct set of matchups, tracked and untracked), and each send's peak RSS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import scratch_pg
from bench.send import _env, own_peak_kb, server_stats, start_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "matchups"
CHUNK = 20_000


def seed(url: str, subscribers: int, variants: int) -> int:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-key-0123456789")
    os.environ.setdefault("NEWSLETTER_BASE_URL", "https://nl.example")
    from sqlalchemy import insert, select

    from newsletter.db import dispose_engines, session_factory
    from newsletter.issues.service import approve, build_issue
    from newsletter.matchups.page_parser import decode_page, parse_page
    from newsletter.matchups.service import categories, import_matchup
    from newsletter.migrate import upgrade
    from newsletter.orm import utcnow
    from newsletter.settings import reset_settings
    from subscribers.models import Subscriber, SubscriberTopic
    from tests.support.arrange import add_subscribers

    reset_settings()
    dispose_engines()
    if url.startswith("postgresql"):
        scratch_pg.wipe(url)
    upgrade(url)
    with session_factory()() as session:
        for path in sorted(EXAMPLES.glob("*.txt")):
            data = parse_page(decode_page(path.read_bytes()), path.name)
            import_matchup(session, data, utcnow() - timedelta(hours=1))
        issue_id = build_issue(session).id
        approve(session, issue_id, by="bench")
        add_subscribers(session, subscribers, opt_out_every=50, source="bench")
        if variants:
            names = categories(session)
            combos = [
                c for size in range(1, len(names)) for c in itertools.combinations(names, size)
            ][:variants]
            assert len(combos) == variants, f"only {len(combos)} combinations of {names}"
            ids = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
            rows: list[dict[str, Any]] = []
            for n, subscriber_id in enumerate(ids):
                rows.extend(
                    {"subscriber_id": subscriber_id, "name": name} for name in combos[n % variants]
                )
                if len(rows) >= CHUNK:
                    session.execute(insert(SubscriberTopic), rows)
                    rows = []
            if rows:
                session.execute(insert(SubscriberTopic), rows)
        session.commit()
    dispose_engines()
    scratch_pg.analyze(url)
    return issue_id


def child(issue_id: int) -> None:
    from sqlalchemy import func, select

    from newsletter.db import transaction
    from newsletter.issues.models import IssueVariant
    from newsletter.sending import repository, service
    from newsletter.sending.worker import run_until_done

    began = time.perf_counter()
    with transaction() as session:
        assert service.start_send(session, issue_id)
    snapshot = time.perf_counter() - began
    run_until_done(issue_id, worker_id=service.default_worker_id())
    total = time.perf_counter() - began
    with transaction() as session:
        counts = repository.status_counts(session, issue_id)
        frozen = session.scalar(
            select(func.count()).select_from(IssueVariant).where(IssueVariant.issue_id == issue_id)
        )
    print(
        json.dumps(
            {
                "snapshot": snapshot,
                "total": total,
                "counts": counts,
                "variants": frozen,
                "peak_kb": own_peak_kb(),
            }
        )
    )


def one_send(
    subscribers: int, variants: int, workdir: Path, postgres: str | None
) -> dict[str, Any]:
    db_path = workdir / f"topics-{variants}.db"
    for stale in workdir.glob(f"topics-{variants}.db*"):
        stale.unlink()
    url = postgres or f"sqlite:///{db_path}"
    issue_id = seed(url, subscribers, variants)
    server, host = start_server()
    env = _env(db_path, host)
    env["DATABASE_URL"] = url
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.topics_send", "--child", str(issue_id)],
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"child failed:\n{out.stderr}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        result["server"] = server_stats(host)
    finally:
        server.terminate()
        server.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--variants", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", type=int, default=None)
    parser.add_argument("--postgres", default=None, help="a scratch PostgreSQL URL (wiped)")
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    engine_name = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{engine_name}; load before: {os.getloadavg()[0]:.2f}")
    rates: dict[int, list[float]] = {0: [], args.variants: []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for variants in (0, args.variants):
                result = one_send(args.subscribers, variants, Path(folder), args.postgres)
                counts = result["counts"]
                rate = args.subscribers / result["total"]
                rates[variants].append(rate)
                print(
                    f"{'topics' if variants else 'no topics'} ({variants} variants): "
                    f"{args.subscribers:,} subscribers, snapshot {result['snapshot']:.2f} s, "
                    f"total {result['total']:.2f} s → {rate:,.0f} emails/s; "
                    f"{result['variants']} variants frozen; sent {counts['sent']:,}, "
                    f"skipped {counts['skipped']}; requests {result['server']['requests']:,}; "
                    f"peak RSS {result['peak_kb'] / 1024:.0f} MB"
                )
    best = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
    print(
        f"median emails/s: no topics {best[0]:,.0f}, {args.variants} variants "
        f"{best[args.variants]:,.0f} → ratio {best[args.variants] / best[0]:.2f}; "
        f"load after: {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()

"""A segment's live count and a send's snapshot to one, beside the same work for everyone
(issue 17). Measured in one run, so the ratios hold on a noisy machine.

The list: `--rows` active subscribers (100,000), every 5th tagged "vip", every 4th with a
topic; four sent issues to all of them, with a person's first click on every 10th delivery, a
vote on every 25th and an open on every 3rd (tracking_firsts, as the webhook and the pixel
leave them). Timed, median of `--repeat` runs: the count of everyone mailable (the baseline,
what "Send now…" already counted) and each segment's mailable count; then the snapshot of a
frozen issue (`audience.start_send`, rolled back each time) to everyone and to two segments.
The same at a tenth of the size shows whether a segment's cost grows with the list. Last, a
subject test's start (its 20% share, by the stable hash in SQL) and that start followed by the
winner's send to the rest, beside the snapshot to everyone.

    .venv/bin/python -m bench.segments [--rows 100000] [--repeat 5] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import scratch_pg

SEGMENTS: dict[str, dict[str, Any]] = {
    "active": {"statuses": ["active"]},
    "tag vip": {"tags": ["vip"]},
    "topic": {"topics": ["Coding"]},
    "engaged in last 4": {"engaged_in_last": 4},
    "not engaged in last 4": {"not_engaged_in_last": 4},
    "never opened": {"never_opened": True},
    "active, vip, engaged": {"statuses": ["active"], "tags": ["vip"], "engaged_in_last": 4},
}
SENT = [("2026-W40", 4), ("2026-W41", 3), ("2026-W42", 2), ("2026-W43", 1)]


def _timed(work: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _fill(url: str, rows: int) -> int:
    """The list, four sent issues with their firsts, and a frozen issue; returns its id."""
    from sqlalchemy import insert

    from newsletter.db import transaction
    from newsletter.issues.models import Issue, IssueStatus
    from newsletter.matchups.service import import_matchup
    from newsletter.orm import utcnow
    from subscribers.models import SubscriberTag, SubscriberTopic
    from tests.issues.helpers import EXAMPLES, page
    from tests.support import arrange

    with transaction() as session:
        arrange.add_subscribers(session, rows)
        ids = [r[0] for r in session.execute(text("SELECT id FROM subscribers ORDER BY id"))]
        session.execute(
            insert(SubscriberTag), [{"subscriber_id": i, "name": "vip"} for i in ids[::5]]
        )
        session.execute(
            insert(SubscriberTopic), [{"subscriber_id": i, "name": "Coding"} for i in ids[::4]]
        )
        now = datetime.now(UTC)
        for week, weeks_ago in SENT:
            at = now - timedelta(weeks=weeks_ago)
            issue = Issue(
                week=week, status=IssueStatus.SENT, cutoff_at=at, send_started_at=at, sent_at=at
            )
            session.add(issue)
            session.flush()
            session.execute(
                text(
                    "INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, "
                    "created_at, updated_at, sent_at) SELECT :issue, id, 'sent', 1, :at, :at, :at "
                    "FROM subscribers"
                ),
                {"issue": issue.id, "at": at},
            )
            for kind, every in (("clicked:h", 10), ("voted:h", 25), ("opened:h", 3)):
                session.execute(
                    text(
                        "INSERT INTO tracking_firsts (issue_id, kind, delivery_id, first_at) "
                        "SELECT issue_id, :kind, id, sent_at FROM deliveries "
                        "WHERE issue_id = :issue AND subscriber_id % :every = 0"
                    ),
                    {"issue": issue.id, "kind": kind, "every": every},
                )
        for name in ("01_quillmate_vs_proseforge", "04_stackwise_vs_patchpilot"):
            import_matchup(session, page(EXAMPLES / f"{name}.txt"), utcnow() - timedelta(hours=1))
    from newsletter.issues import service as issues

    with transaction() as session:
        issue_id = issues.build_issue(session).id
        issues.approve(session, issue_id, by="bench")
    scratch_pg.analyze(url)
    return issue_id


def measure(url: str, rows: int, repeat: int) -> dict[str, float]:
    from newsletter.audience import service as audience
    from newsletter.audience.rules import parse
    from newsletter.db import dispose_engines, session_factory, transaction
    from newsletter.issues import service as issues
    from newsletter.migrate import upgrade
    from newsletter.settings import reset_settings
    from subscribers.service import mailable_count

    os.environ["DATABASE_URL"] = url
    reset_settings()
    dispose_engines()
    upgrade(url)
    issue_id = _fill(url, rows)
    figures: dict[str, float] = {}
    with transaction() as session:
        figures["everyone mailable (baseline)"] = _timed(lambda: mailable_count(session), repeat)
        for name, rule in SEGMENTS.items():
            parsed = parse(rule)
            figures[name] = _timed(lambda r=parsed: audience.mailable_count(session, r), repeat)
    with transaction() as session:
        made = {
            name: audience.create(session, name, SEGMENTS[name], by="bench").id
            for name in ("engaged in last 4", "never opened")
        }

    def snapshot() -> None:
        session = session_factory(url)()
        try:
            assert audience.start_send(session, issue_id)
        finally:
            session.rollback()
            session.close()

    for name, segment_id in (("everyone", None), *made.items()):
        with transaction() as session:
            # Not timed: the audience chosen and approved again (a new audience withdraws it).
            if issues.set_segment(session, issue_id, segment_id):
                issues.approve(session, issue_id, by="bench")
        figures[f"snapshot: {name}"] = _timed(snapshot, repeat)

    # A subject test: only its 20% share at the start (the hash computed in SQL over the list),
    # then the winner to the rest (everyone without a delivery yet).
    from newsletter.audience import subject_tests

    with transaction() as session:
        issues.set_segment(session, issue_id, None)
        subject_tests.set_test(session, issue_id, ["One", "Two"], share=20, wait_minutes=60)
        issues.approve(session, issue_id, by="bench")
    figures["snapshot: subject test's 20%"] = _timed(snapshot, repeat)

    def and_the_rest() -> None:
        session = session_factory(url)()
        try:
            assert audience.start_send(session, issue_id)
            assert subject_tests.decide(session, issue_id, winner=1, by="bench")
        finally:
            session.rollback()
            session.close()

    figures["snapshot: 20%, then the rest"] = _timed(and_the_rest, repeat)

    # The editor's page once decided: each subject's figures of the share and of the whole
    # send (one pass over the issue's subject deliveries, one over its firsts).
    session = session_factory(url)()
    try:
        assert audience.start_send(session, issue_id)
        assert subject_tests.decide(session, issue_id, winner=1, by="bench")
        figures["report: decided test's figures"] = _timed(
            lambda: subject_tests.report(session, issue_id), repeat
        )
    finally:
        session.rollback()
        session.close()
    dispose_engines()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (its database is wiped)")
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-" + "k" * 40)
    os.environ.setdefault("NEWSLETTER_TRANSPORT", "outbox")
    results: dict[int, dict[str, float]] = {}
    for rows in (args.rows // 10, args.rows):
        if args.postgres:
            scratch_pg.wipe(args.postgres)
            url = args.postgres
        else:
            folder = Path(tempfile.mkdtemp(prefix="bench-segments-"))
            url = f"sqlite:///{folder / 'bench.db'}"
        results[rows] = measure(url, rows, args.repeat)
    small, large = args.rows // 10, args.rows
    base = "everyone mailable (baseline)"
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"{'':32} {small:>9,} {large:>9,}  ×/baseline  growth ×{large // small}")
    for name in results[large]:
        a, b = results[small][name], results[large][name]
        baseline = results[large]["snapshot: everyone" if name.startswith("snapshot") else base]
        print(f"{name:32} {a * 1000:8.1f}ms {b * 1000:8.1f}ms  {b / baseline:9.2f}  {b / a:8.1f}")


if __name__ == "__main__":
    main()

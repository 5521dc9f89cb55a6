"""An issue's numbers at 60,000 and at 6,000,000 tracking events: `newsletter stats`, the
editor's page and the API read kept figures (tracking/rollups.py), so their time stays flat.

Two sent issues to the same `--deliveries` recipients (100,000), one per size, are filled
with events straight into
`tracking_events` (a recursive CTE on SQLite, generate_series on PostgreSQL: delivered, opens
human and machine, clicks on three links, bounces, votes, unsubscribes over three days); its
figures are then written by the repair path (`newsletter stats --check --repair`'s code) and
`check` must find no difference. Timed, median of `--repeat` runs taken in turns (one of each
issue, then again): `issue_stats` (the query work behind `newsletter stats`), GET of the
editor's page and of the API, in process through the app. Also timed once: the recount, i.e. what scanning the events costs (what every reader
of numbers paid before). Target: 6,000,000 / 60,000 ratio <= 1.5.

    .venv/bin/python -m bench.stats [--sizes 60000,6000000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, literal, select, text

SENT_AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
EDITOR = "bench-editor@example.com"

# i % 20 decides an event's kind; delivery = first + (i / 3) % deliveries.
_SELECT = """
SELECT
  CASE WHEN r = 0 THEN 'delivered' WHEN r = 1 THEN 'bounced' WHEN r < 12 THEN 'opened'
       WHEN r < 18 THEN 'clicked' WHEN r = 18 THEN 'voted' ELSE 'unsubscribed' END,
  'bench',
  CASE WHEN r = 0 THEN 'delivered' WHEN r = 1 THEN 'bounce' WHEN r < 12 THEN 'pixel'
       WHEN r < 18 THEN 'click' WHEN r = 18 THEN 'vote' ELSE 'unsubscribe' END,
  :first + (i / 3) % :deliveries,
  :issue,
  CASE WHEN r BETWEEN 12 AND 17 AND i % 3 = 0 THEN :m0
       WHEN r BETWEEN 12 AND 17 AND i % 3 = 1 THEN :m1
       WHEN r = 18 THEN :m0 END,
  CASE WHEN r BETWEEN 12 AND 17 THEN (CASE i % 3 WHEN 0 THEN 'm0' WHEN 1 THEN 'm1' ELSE 'site' END)
       WHEN r = 18 THEN '0' END,
  CASE WHEN r BETWEEN 2 AND 11 AND i % 7 = 0 THEN TRUE
       WHEN r BETWEEN 12 AND 17 AND i % 11 = 0 THEN TRUE ELSE FALSE END,
  {at}, {at}
FROM (SELECT i, i % 20 AS r FROM seq) AS numbered
"""
_COLUMNS = (
    "type, source, provider_type, delivery_id, issue_id, matchup_id, link_key, machine,"
    " occurred_at, received_at"
)
_SQLITE = (
    "INSERT INTO tracking_events (" + _COLUMNS + ") "
    "WITH RECURSIVE seq(i) AS (SELECT :start UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :stop) "
    + _SELECT.format(
        at="strftime('%Y-%m-%d %H:%M:%S', :base, '+' || (i % 4320) || ' minutes') || '.000000'"
    )
)
_POSTGRES = (
    "INSERT INTO tracking_events (" + _COLUMNS + ") "
    "SELECT * FROM (WITH seq(i) AS (SELECT generate_series(CAST(:start AS bigint), :stop - 1)) "
    + _SELECT.format(at="CAST(:base AS timestamptz) + (i % 4320) * interval '1 minute'")
    + ") AS filled"
)


def fill(url: str, issue: Any, first: int, deliveries: int, start: int, stop: int) -> float:
    """Events start..stop-1 into the issue (whose delivery ids run from `first`, one run of
    `deliveries` ids), in chunks of a million; seconds taken."""
    began = time.perf_counter()
    engine = create_engine(url)
    sql = text(_SQLITE if url.startswith("sqlite") else _POSTGRES)
    base = SENT_AT.strftime("%Y-%m-%d %H:%M:%S") if url.startswith("sqlite") else SENT_AT
    for chunk in range(start, stop, 1_000_000):
        with engine.begin() as connection:
            connection.execute(
                sql,
                {
                    "start": chunk,
                    "stop": min(chunk + 1_000_000, stop),
                    "first": first,
                    "deliveries": deliveries,
                    "issue": issue.issue_id,
                    "m0": issue.matchups[0],
                    "m1": issue.matchups[1],
                    "base": base,
                },
            )
    engine.dispose()
    return time.perf_counter() - began


def timers(issue_id: int, web: Any, token: str) -> dict[str, Callable[[], None]]:
    from newsletter.db import transaction
    from newsletter.tracking.stats import issue_stats

    def query() -> None:
        with transaction() as session:
            issue_stats(session, issue_id)

    def page() -> None:
        response = web.get(f"/admin/issues/{issue_id}/stats")
        assert response.status_code == 200, response.status_code

    def api() -> None:
        response = web.get(
            f"/api/v1/issues/{issue_id}/stats", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.status_code

    return {"stats query": query, "web page": page, "API": api}


def clone_issue(issue: Any) -> Any:
    """A second sent issue to the same readers, with the same matchups and links."""
    from dataclasses import replace

    from newsletter.db import transaction
    from newsletter.issues.models import Issue, IssueLink, IssueMatchup, IssueStatus
    from newsletter.sending.models import Delivery

    with transaction() as session:
        other = Issue(
            week="2026-W11",
            status=IssueStatus.SENT,
            cutoff_at=SENT_AT,
            send_started_at=SENT_AT + timedelta(days=7),
            sent_at=SENT_AT + timedelta(days=7),
        )
        session.add(other)
        session.flush()
        for position, matchup_id in enumerate(issue.matchups):
            session.add(IssueMatchup(issue_id=other.id, matchup_id=matchup_id, position=position))
        for link in session.scalars(select(IssueLink).where(IssueLink.issue_id == issue.issue_id)):
            session.add(
                IssueLink(
                    issue_id=other.id,
                    key=link.key,
                    url=link.url,
                    label=link.label,
                    matchup_id=link.matchup_id,
                )
            )
        columns = ["issue_id", "subscriber_id", "status", "attempts", "created_at", "updated_at"]
        source = (
            select(
                literal(other.id),
                Delivery.subscriber_id,
                Delivery.status,
                Delivery.attempts,
                Delivery.created_at,
                Delivery.updated_at,
            )
            .where(Delivery.issue_id == issue.issue_id)
            .order_by(Delivery.id)
        )
        session.execute(insert(Delivery).from_select(columns, source))
        other_id = other.id
    return replace(issue, issue_id=other_id)


def settle(url: str) -> None:
    """Statistics for the planner, and on PostgreSQL the vacuum autovacuum would start on its
    own after millions of inserts (measured beside it, the figures would be its load)."""
    engine = create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE" if url.startswith("sqlite") else "VACUUM ANALYZE"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="60000,6000000")
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--postgres", help="a database URL to use (its tables are replaced)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite:///{Path(tmp) / 'stats.db'}"
        if url.startswith("postgres") and "+" not in url.split("://")[0]:
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        os.environ["DATABASE_URL"] = url
        os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-key-0123456789")
        run(url, sizes, args.deliveries, args.repeat)


def run(url: str, sizes: list[int], deliveries: int, repeat: int) -> None:
    from fastapi.testclient import TestClient

    from newsletter.accounts.models import Role
    from newsletter.accounts.service import create_user, issue_api_token
    from newsletter.db import dispose_engines, transaction
    from newsletter.migrate import upgrade
    from newsletter.sending.models import Delivery
    from newsletter.settings import reset_settings
    from newsletter.tracking import stats
    from newsletter.web.app import create_app
    from tests.support.arrange import add_sent_issue

    reset_settings()
    engine_name = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    if url.startswith("postgres"):
        engine = create_engine(url)
        with engine.begin() as connection:
            # The benchmark's own database (never `test` or `postgres`): emptied whole.
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    began = time.perf_counter()
    with transaction() as session:
        issue = add_sent_issue(session, readers=deliveries, sent_at=SENT_AT)
        user = create_user(session, EDITOR, PASSWORD, Role.EDITOR)
        token = issue_api_token(session, user)
    print(
        f"{engine_name}: issue with {deliveries:,} deliveries in "
        f"{time.perf_counter() - began:.1f} s"
    )
    web = TestClient(create_app())
    login = web.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert csrf is not None
    signed_in = web.post(
        "/login",
        data={"email": EDITOR, "password": PASSWORD, "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303, signed_in.text
    # One issue per size in the same database, measured in turns: both see the same cache,
    # the same load from the rest of the machine, the same vacuum state.
    issues = {sizes[0]: issue}
    for size in sizes[1:]:
        issues[size] = clone_issue(issue)
    for size, sized in issues.items():
        with transaction() as session:
            first = session.scalar(
                select(func.min(Delivery.id)).where(Delivery.issue_id == sized.issue_id)
            )
        assert first is not None
        took = fill(url, sized, first, deliveries, 0, size)
        began = time.perf_counter()
        with transaction() as session:
            stats.repair(session, sized.issue_id)
        repaired = time.perf_counter() - began
        began = time.perf_counter()
        with transaction() as session:
            differences = stats.check(session, sized.issue_id)
        recount = time.perf_counter() - began
        if differences:
            raise SystemExit(f"check found differences at {size:,} events: {differences[:5]}")
        with transaction() as session:
            n = stats.issue_stats(session, sized.issue_id)
        print(
            f"{size:>10,} events (issue {sized.issue_id}): filled in {took:.1f} s, figures"
            f" repaired in {repaired:.1f} s, check (a full recount: what scanning costs)"
            f" {recount:.2f} s, equal; opens {n['opens_unique']:,}, clicks {n['clicks_unique']:,}",
            flush=True,
        )
    settle(url)
    runs = {size: timers(sized.issue_id, web, token) for size, sized in issues.items()}
    times: dict[int, dict[str, list[float]]] = {
        size: {what: [] for what in fns} for size, fns in runs.items()
    }
    for round_ in range(repeat + 1):
        for size, fns in runs.items():
            for what, fn in fns.items():
                began = time.perf_counter()
                fn()
                if round_:  # the first round warms caches and prepared statements
                    times[size][what].append(time.perf_counter() - began)
    results = {
        size: {what: 1000 * statistics.median(t) for what, t in kinds.items()}
        for size, kinds in times.items()
    }
    for size, kinds in results.items():
        print(
            f"{size:>10,} events: "
            + ", ".join(f"{what} {ms:.1f} ms" for what, ms in kinds.items())
            + f" (median of {repeat}, in turns)"
        )
    web.close()
    dispose_engines()
    if len(sizes) >= 2:
        small, big = results[sizes[0]], results[sizes[-1]]
        print(f"{engine_name}: ratio {sizes[-1]:,} / {sizes[0]:,} events (target <= 1.5):")
        for what in small:
            print(f"{'':>4}{what:<12} {big[what] / small[what]:.2f}")


if __name__ == "__main__":
    main()

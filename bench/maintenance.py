"""What `newsletter maintenance` does to a filled events table on PostgreSQL: its speed, and the
bytes an event costs before and after its detail is cleared (for docs/operations.md's "what a
year costs").

    .venv/bin/python -m bench.maintenance --postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench_x

A fresh database is made on that server (and dropped after): one issue sent to --events / 4
readers, each with SendGrid's processed and delivered events (the raw payload as SendGrid posts
it, ~500 bytes of JSON, and the SMTP response as detail) and a first-party open and click
(a phone's user agent), all received 200 days ago. Then the maintenance run clears them, in
batches of --batch-size, and the sizes are measured again after VACUUM and after VACUUM FULL.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

SIZES = """
SELECT count(*), avg(pg_column_size(t.*)), pg_relation_size('tracking_events'),
       pg_indexes_size('tracking_events'), pg_total_relation_size('tracking_events')
FROM tracking_events t
"""

FILL = """
INSERT INTO tracking_events (type, source, provider_event_id, provider_type, delivery_id,
    issue_id, link_key, machine, occurred_at, received_at, user_agent, detail, raw, email_hash)
SELECT
    (ARRAY['processed','delivered','opened','clicked'])[k + 1],
    CASE WHEN k < 2 THEN 'sendgrid' ELSE 'first_party' END,
    CASE WHEN k < 2 THEN md5(g::text || 'sg') || md5(g::text) ELSE NULL END,
    CASE WHEN k < 2 THEN (ARRAY['processed','delivered'])[k + 1] ELSE '' END,
    :first_delivery + g / 4,
    :issue,
    CASE WHEN k = 3 THEN 'm' || (g % 8) ELSE NULL END,
    (g % 11 = 0),
    :at + make_interval(secs => g / 100.0),
    :at + make_interval(secs => g / 100.0),
    CASE WHEN k >= 2 THEN 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) '
        || 'AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1'
        ELSE NULL END,
    CASE WHEN k = 1 THEN '250 2.0.0 OK  1709300000 ' || md5(g::text) || ' - gsmtp' ELSE NULL END,
    CASE WHEN k < 2 THEN json_build_object(
        'email', 'reader' || (g / 4) || '@example.com',
        'timestamp', 1709300000 + g / 100,
        'smtp-id', '<' || md5(g::text) || '@geopod-ismtpd-5>',
        'event', (ARRAY['processed','delivered'])[k + 1],
        'category', json_build_array('weekly-verdicts', '2026-W10'),
        'sg_event_id', md5(g::text || 'sg') || md5(g::text),
        'sg_message_id', md5(g::text) || '.filterdrecv-5645d9c87f-abcde-1-65E1C2D0-5.0',
        'response', CASE WHEN k = 1 THEN '250 2.0.0 OK  1709300000 ' || md5(g::text) ELSE NULL END,
        'ip', '149.72.123.45', 'tls', 1, 'pool', json_build_object('name', 'main', 'id', 1),
        'delivery_id', CAST(:first_delivery + g / 4 AS text), 'issue_id', CAST(:issue AS text))
    ELSE NULL END,
    NULL
FROM generate_series(:lo, :hi) AS g, LATERAL (SELECT g % 4 AS k) AS kinds
"""


def _load() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def _sizes(url: str, label: str) -> tuple[int, float, int, int, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        count, avg_row, heap, indexes, total = conn.execute(text(SIZES)).one()
    engine.dispose()
    print(
        f"{label:<34} rows {count:>10,}  avg row (pg_column_size) {float(avg_row):7.1f} B  "
        f"heap {heap / 2**20:8.1f} MiB  indexes {indexes / 2**20:7.1f} MiB  "
        f"total {total / 2**20:8.1f} MiB = {total / max(count, 1):6.1f} B/event"
    )
    return int(count), float(avg_row), int(heap), int(indexes), int(total)


def _vacuum(url: str, full: bool) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"VACUUM {'FULL ' if full else ''}ANALYZE tracking_events"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", metavar="URL", required=True, help="a PostgreSQL server")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--year", type=int, default=300_000_000, help="events to extrapolate to")
    args = parser.parse_args()

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_maintenance_{os.getpid()}"
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-0123456789")
    try:
        from newsletter.db import dispose_engines, transaction
        from newsletter.migrate import upgrade
        from newsletter.scheduling import maintenance
        from newsletter.settings import reset_settings
        from tests.support import arrange

        reset_settings()
        upgrade(url)
        now = datetime.now(UTC)
        print(f"{now:%Y-%m-%d %H:%M} UTC, load {_load()}; {args.events:,} events")
        started = time.perf_counter()
        with transaction() as session:
            sent = arrange.add_sent_issue(
                session, readers=args.events // 4 + 1, sent_at=now - timedelta(days=200)
            )
        at = now - timedelta(days=200)
        step = 200_000
        for lo in range(0, args.events, step):
            with transaction() as session:
                session.execute(
                    text(FILL),
                    {
                        "first_delivery": sent.deliveries[0],
                        "issue": sent.issue_id,
                        "at": at,
                        "lo": lo,
                        "hi": min(lo + step, args.events) - 1,
                    },
                )
        _vacuum(url, full=False)
        print(f"filled in {time.perf_counter() - started:.1f} s")
        before = _sizes(url, "before")

        load_before = _load()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        done = maintenance.run(datetime.now(UTC), batch_size=args.batch_size)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        print(
            f"maintenance: cleared {done.events_cleared:,} events in {done.event_batches} batches "
            f"of {args.batch_size:,}: {seconds:.1f} s = {done.events_cleared / seconds:,.0f} "
            f"rows/s (client CPU {cpu:.1f} s; load {load_before} -> {_load()})"
        )
        _sizes(url, "after, before VACUUM")
        _vacuum(url, full=False)
        after = _sizes(url, "after VACUUM (space reusable)")
        _vacuum(url, full=True)
        compact = _sizes(url, "after VACUUM FULL (what rows take)")
        year = args.year
        print(
            f"a year of {year:,} events: all detail kept {before[4] / before[0] * year / 2**30:,.1f} "
            f"GiB; detail cleared {compact[4] / compact[0] * year / 2**30:,.1f} GiB "
            f"(rows {before[1]:.0f} -> {after[1]:.0f} B by pg_column_size)"
        )
        dispose_engines()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    main()

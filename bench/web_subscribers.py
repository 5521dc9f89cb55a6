"""The admin subscriber list at 1,000,000 subscribers: page and search times through the app.

Loads N subscribers into a fresh SQLite file (bulk INSERT, ~3 minutes of the run is the load),
signs in as an admin and times, through the real FastAPI app (routing, session, template), the
first page, a page deep in the list (keyset), a status filter, an address-prefix search, a name
search that hits often, and the worst case: a name that matches one old row only (a full scan).
Target: list and search under 300 ms (median of 5).

    .venv/bin/python -m bench.web_subscribers [--rows 1000000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

FIRST = ["Ann", "Bo", "Chidi", "Dana", "Émile", "Farah", "Goran", "Hiro", "Ines", "Jonas"]
LAST = ["Lee", "Ng", "Okafor", "Müller", "Smith", "O'Brien", "Nakamura", "Rossi", "Silva"]
STATUSES = ["active"] * 90 + ["pending"] * 5 + ["unsubscribed"] * 4 + ["bounced"]


def load(rows: int) -> None:
    from sqlalchemy import insert

    from newsletter.db import transaction
    from subscribers.models import Subscriber

    now = datetime.now(UTC)
    chunk = 20_000
    for start in range(0, rows, chunk):
        batch = []
        for i in range(start, min(rows, start + chunk)):
            email = f"user{i}@example{i % 97}.com"
            name = "Zebulon Quirke" if i == 10 else f"{FIRST[i % 10]} {LAST[i % 9]}"
            batch.append(
                {
                    "email": email,
                    "email_hash": hashlib.sha256(email.encode()).hexdigest(),
                    "name": name,
                    "status": STATUSES[i % 100],
                    "source": "bench",
                    "consent_method": "import",
                    "paused": False,
                    "tracking_opt_out": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        with transaction() as session:
            session.execute(insert(Subscriber), batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres", metavar="URL", help="a PostgreSQL server URL (a fresh database is made)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        if args.postgres:
            url = _fresh_postgres(args.postgres)
        os.environ["DATABASE_URL"] = url
        os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-0123456789")
        from fastapi.testclient import TestClient

        from newsletter.accounts.models import Role
        from newsletter.accounts.service import create_user
        from newsletter.db import transaction
        from newsletter.migrate import upgrade
        from newsletter.settings import reset_settings
        from newsletter.web.app import create_app

        reset_settings()
        upgrade(url)
        started = time.perf_counter()
        load(args.rows)
        print(f"loaded {args.rows:,} subscribers in {time.perf_counter() - started:.1f} s")
        with transaction() as session:
            create_user(session, "bench@example.com", "bench password 123", Role.ADMIN)
            # What autovacuum does within a minute of a load, and the importer itself after a
            # large import: without it PostgreSQL plans for the empty table it last saw.
            from subscribers.bulk import refresh_statistics

            refresh_statistics(session)

        with TestClient(create_app()) as client:
            login = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', login)
            assert token
            client.post(
                "/login",
                data={
                    "email": "bench@example.com",
                    "password": "bench password 123",
                    "csrf_token": token.group(1),
                },
            )
            cases = [
                ("first page", "/admin/subscribers", None),
                ("page deep in the list", f"/admin/subscribers?before={args.rows // 2}", None),
                ("status filter (bounced)", "/admin/subscribers?status=bounced", None),
                (
                    "address prefix search",
                    f"/admin/subscribers?q=user{args.rows // 3}@",
                    "@example",
                ),
                ("name search, common", "/admin/subscribers?q=okafor", "Okafor"),
                ("name search, one old match", "/admin/subscribers?q=zebulon", "Zebulon"),
                ("substring: domain", "/admin/subscribers?q=example42.com", "@example42.com"),
                ("substring: middle of address", f"/admin/subscribers?q=r{args.rows // 7}@", "@"),
                ("substring: rare", "/admin/subscribers?q=ebulon quir", "Zebulon"),
                (
                    "substring sorted by address",
                    "/admin/subscribers?q=zebulon&sort=email",
                    "Zebulon",
                ),
                ("sort by name, deep", "/admin/subscribers?sort=name&after=Farah&after_id=1", None),
            ]
            print(f"{'case':<30} {'median ms':>10} {'max ms':>8}")
            for label, path, expect in cases:
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                    if expect:
                        assert expect in response.text, (path, "no hit")
                print(f"{label:<30} {statistics.median(times):>10.1f} {max(times):>8.1f}")
        _baseline(args.rows)


def _baseline(rows: int) -> None:
    """The same substring searches as a plain LIKE scan (no trigram index), in the same run."""
    from sqlalchemy import or_, select

    from newsletter.db import transaction
    from subscribers.models import Subscriber

    print(f"{'baseline: LIKE scan, first page':<30} {'median ms':>10} {'max ms':>8}")
    for term in ("example42.com", f"r{rows // 7}@", "ebulon quir"):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            with transaction() as session:
                pattern = f"%{term}%"
                list(
                    session.scalars(
                        select(Subscriber.id)
                        .where(or_(Subscriber.email.like(pattern), Subscriber.name.ilike(pattern)))
                        .order_by(Subscriber.id.desc())
                        .limit(51)
                    )
                )
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{'  ' + term:<30} {statistics.median(times):>10.1f} {max(times):>8.1f}")


def _fresh_postgres(server: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_web_{os.getpid()}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


if __name__ == "__main__":
    main()

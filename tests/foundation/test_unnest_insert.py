"""orm.unnest_insert (PostgreSQL): rows stored through one array per column read back exactly
as the same rows stored through SQLAlchemy's own INSERT, whatever their values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from newsletter.orm import unnest_insert
from newsletter.tracking.models import EventType, TrackingEvent

EVENTS = TrackingEvent.__table__
AT = datetime(2026, 12, 4, 18, 0, 0, 123456, tzinfo=UTC)
ODD = [
    {"nested": {"list": [1, 2.5, None, True], "é": "naïve \u2028 \U0001f600"}},
    ["top", "level", "list"],
    {"quote": 'a "b" \\ c', "nul": "x\u0000y"},
    None,
]


def _row(n: int) -> dict[str, Any]:
    return {
        "type": list(EventType)[n % len(EventType)],
        "source": "sendgrid",
        "provider_event_id": f"evt-{n}",
        "provider_type": "bounce" if n % 3 else "",
        "delivery_id": n if n % 4 else None,
        "issue_id": 7 if n % 5 else None,
        "matchup_id": None,
        "link_key": "k" * 64 if n % 2 else None,
        "machine": bool(n % 2),
        # Any offset goes in; UTC comes out, as through UTCDateTime.
        "occurred_at": (AT + timedelta(microseconds=n)).astimezone(timezone(timedelta(hours=-5))),
        "received_at": AT,
        "user_agent": "Mozilla/5.0 ’ \t" if n % 2 else None,
        "detail": "x" * 10_000 if n == 1 else None,
        "raw": ODD[n % len(ODD)],
        "email_hash": None,
    }


def _without_foreign_keys(conn: Any) -> None:
    # The ids here name no issue or delivery: what is tested is how values travel, and the
    # foreign keys' triggers are not part of that (this transaction only; the test user is
    # PostgreSQL's superuser).
    conn.execute(text("SET LOCAL session_replication_role = replica"))


def _stored(conn: Any, prefix: str) -> list[tuple[Any, ...]]:
    columns = [c for c in EVENTS.c if c.name not in ("id", "provider_event_id")]
    rows = conn.execute(
        select(*columns, EVENTS.c.provider_event_id)
        .where(EVENTS.c.provider_event_id.like(f"{prefix}%"))
        .order_by(EVENTS.c.id)
    )
    return [(*tuple(r[:-1]), r[-1].removeprefix(prefix)) for r in rows]


def test_rows_read_back_as_through_sqlalchemys_insert(postgres_url: str) -> None:
    rows = [_row(n) for n in range(2500)]  # more than any one VALUES list would hold
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            _without_foreign_keys(conn)
            conn.execute(
                EVENTS.insert(),
                [dict(r, provider_event_id="a-" + r["provider_event_id"]) for r in rows],
            )
            inserted = unnest_insert(
                conn,
                EVENTS,  # type: ignore[arg-type]
                [dict(r, provider_event_id="b-" + r["provider_event_id"]) for r in rows],
                "ON CONFLICT (provider_event_id) DO NOTHING RETURNING provider_event_id",
            ).scalars()
            assert list(inserted) == [f"b-evt-{n}" for n in range(2500)]
            by_core, by_unnest = _stored(conn, "a-"), _stored(conn, "b-")
            assert by_unnest == by_core and len(by_core) == 2500
            names = [c.name for c in EVENTS.c if c.name not in ("id", "provider_event_id")]
            assert by_unnest[0][names.index("occurred_at")] == AT
            assert {r[names.index("delivery_id")] for r in by_unnest} >= {1, 2, 3, 2499}
            # Python's None in the JSON column is stored as SQLAlchemy stores it (JSON null).
            null_raw = "SELECT count(*) FROM tracking_events WHERE raw IS NULL AND provider_event_id LIKE :p"
            assert conn.scalar(text(null_raw), {"p": "a-%"}) == conn.scalar(
                text(null_raw), {"p": "b-%"}
            )
            # The conflict clause is the caller's: a second time, nothing new.
            again = unnest_insert(
                conn,
                EVENTS,  # type: ignore[arg-type]
                [dict(r, provider_event_id="b-" + r["provider_event_id"]) for r in rows[:3]],
                "ON CONFLICT (provider_event_id) DO NOTHING RETURNING provider_event_id",
            ).scalars()
            assert list(again) == []
            conn.execute(text("DELETE FROM tracking_events"))
    finally:
        engine.dispose()


def test_a_column_of_only_nulls_is_typed_by_its_cast(postgres_url: str) -> None:
    rows = [dict(_row(n), raw=None, delivery_id=None, occurred_at=AT) for n in range(3)]
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            _without_foreign_keys(conn)
            back = unnest_insert(
                conn,
                EVENTS,  # type: ignore[arg-type]
                rows,
                "RETURNING raw, delivery_id, occurred_at, type",
            ).all()
            assert [tuple(r) for r in back] == [
                (None, None, AT, rows[n]["type"].value) for n in range(3)
            ]
            conn.execute(text("DELETE FROM tracking_events"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("value", ["\ud800", "x\x00y"])
def test_what_the_text_columns_refuse_they_refuse_the_same_way(
    postgres_url: str, value: str
) -> None:
    # A lone surrogate cannot be encoded and PostgreSQL text cannot hold NUL: the webhook's
    # parser drops both before here (tests/tracking/test_webhook_parsing.py); if one got
    # through, both paths fail alike and nothing is stored.
    engine = create_engine(postgres_url)
    failures = []
    try:
        for insert in ("core", "unnest"):
            with pytest.raises(Exception) as caught, engine.begin() as conn:
                row = dict(_row(1), user_agent=value, provider_event_id=f"{insert}-bad")
                if insert == "core":
                    conn.execute(EVENTS.insert(), [row])
                else:
                    unnest_insert(conn, EVENTS, [row], "")  # type: ignore[arg-type]
            failures.append(type(caught.value).__name__)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM tracking_events")) == 0
    finally:
        engine.dispose()
    assert len(failures) == 2

"""0017 on a database with events and firsts: every row and id kept, the keys and the two
indexes go (and come back on a downgrade), and storing an event still works after it."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from newsletter.db import dispose_engines
from newsletter.migrate import alembic_config

EVENTS = (
    "SELECT id, type, delivery_id, issue_id, matchup_id, provider_event_id, raw "
    "FROM tracking_events ORDER BY id"
)
FIRSTS = "SELECT issue_id, kind, delivery_id FROM tracking_firsts ORDER BY kind, delivery_id"
NOW = "'2026-11-30 09:00:00'"


def _run(db_url: str, *statements: str) -> list[tuple[object, ...]]:
    engine = create_engine(db_url)
    rows: list[tuple[object, ...]] = []
    with engine.begin() as conn:
        for statement in statements:
            result = conn.execute(text(statement))
            if result.returns_rows:
                rows = [tuple(r) for r in result]
    engine.dispose()
    dispose_engines()
    return rows


def _schema(db_url: str) -> tuple[set[str], set[tuple[str, ...]], set[str]]:
    engine = create_engine(db_url)
    found = inspect(engine)
    keys = {str(fk["name"]) for fk in found.get_foreign_keys("tracking_events")}
    indexed = {
        tuple(str(c) for c in i["column_names"]) for i in found.get_indexes("tracking_events")
    }
    first_keys = {str(fk["name"]) for fk in found.get_foreign_keys("tracking_firsts")}
    engine.dispose()
    return keys, indexed, first_keys


def _event(n: int, delivery: str, issue: str) -> str:
    return (
        "INSERT INTO tracking_events (id, type, source, provider_event_id, provider_type, "
        "delivery_id, issue_id, matchup_id, machine, occurred_at, received_at, raw) VALUES "
        f"({n}, 'opened', 'sendgrid', 'ev{n}', 'open', {delivery}, {issue}, NULL, false, "
        f"{NOW}, {NOW}, '{{\"n\": {n}}}')"
    )


def test_events_and_firsts_keep_their_rows_and_ids_and_lose_their_keys(db_url: str) -> None:
    command.downgrade(alembic_config(db_url), "0016_reengage_indexes")
    keys, indexed, first_keys = _schema(db_url)
    assert len(keys) == 3 and len(first_keys) == 1
    assert {("type",), ("issue_id",)} <= indexed
    setup = [
        "INSERT INTO issues (id, week, status, cutoff_at, created_at, updated_at) "
        f"VALUES (1, '2026-W48', 'sent', {NOW}, {NOW}, {NOW})",
        "INSERT INTO deliveries (id, issue_id, subscriber_id, status, attempts, created_at, "
        f"updated_at) VALUES (7, 1, NULL, 'sent', 1, {NOW}, {NOW})",
        _event(1, "7", "1"),
        _event(2, "NULL", "NULL"),  # mail outside the ledger
        _event(5, "7", "1"),
        "INSERT INTO tracking_firsts (issue_id, kind, delivery_id, first_at) "
        f"VALUES (1, 'opened:h', 7, {NOW})",
    ]
    if db_url.startswith("postgresql"):
        # Explicit ids leave PostgreSQL's sequence behind; the application never writes one.
        setup.append("SELECT setval(pg_get_serial_sequence('tracking_events', 'id'), 5)")
    before = _run(db_url, *setup, EVENTS)
    firsts = _run(db_url, FIRSTS)
    assert [row[0] for row in before] == [1, 2, 5]

    command.upgrade(alembic_config(db_url), "head")
    keys, indexed, first_keys = _schema(db_url)
    assert keys == set() and first_keys == set()
    assert ("type",) not in indexed and ("issue_id",) not in indexed
    assert {("delivery_id",), ("issue_id", "type", "delivery_id"), ("email_hash",)} <= indexed
    assert _run(db_url, EVENTS) == before and _run(db_url, FIRSTS) == firsts
    # Still a working table: a new event gets a new id, the unique provider id still holds.
    after = _run(
        db_url,
        "INSERT INTO tracking_events (type, source, provider_event_id, provider_type, machine, "
        f"occurred_at, received_at) VALUES ('delivered', 'sendgrid', 'ev9', '', false, {NOW}, "
        f"{NOW})",
        EVENTS,
    )
    assert after[:3] == before and after[3][0] not in (1, 2, 5) and after[3][5] == "ev9"

    command.downgrade(alembic_config(db_url), "0016_reengage_indexes")
    keys, indexed, first_keys = _schema(db_url)
    assert len(keys) == 3 and len(first_keys) == 1
    assert {("type",), ("issue_id",)} <= indexed
    assert _run(db_url, EVENTS)[:3] == before
    command.upgrade(alembic_config(db_url), "head")

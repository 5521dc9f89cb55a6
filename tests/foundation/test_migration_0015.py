"""0015 on a database with deliveries: every row and id kept, no id given again, the keys go
(and come back on a downgrade), PostgreSQL leaves room on each page."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from newsletter.db import dispose_engines
from newsletter.migrate import alembic_config

ROWS = "SELECT id, issue_id, subscriber_id, batch_id, status, variant FROM deliveries ORDER BY id"


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


def _foreign_keys(db_url: str) -> set[str]:
    engine = create_engine(db_url)
    names = {str(fk["name"]) for fk in inspect(engine).get_foreign_keys("deliveries")}
    engine.dispose()
    return names


def test_deliveries_keep_their_rows_and_ids_and_lose_their_keys(db_url: str) -> None:
    command.downgrade(alembic_config(db_url), "0014_topics")
    assert len(_foreign_keys(db_url)) == 3
    now = "'2026-11-30 09:00:00'"
    before = _run(
        db_url,
        f"INSERT INTO issues (id, week, status, cutoff_at, created_at, updated_at) "
        f"VALUES (1, '2026-W48', 'sent', {now}, {now}, {now})",
        f"INSERT INTO send_batches (id, issue_id, status, attempts, created_at) "
        f"VALUES (1, 1, 'done', 1, {now})",
        *(
            f"INSERT INTO subscribers (id, email, email_hash, name, status, source, paused, "
            f"tracking_opt_out, created_at, updated_at, public_id, consent_method) VALUES "
            f"({n}, 'p{n}@example.com', 'h{n}', '', 'active', 'test', false, false, {now}, "
            f"{now}, 'pub{n}', 'test')"
            for n in (1, 2, 3)
        ),
        *(
            f"INSERT INTO deliveries (id, issue_id, subscriber_id, batch_id, status, attempts, "
            f"created_at, updated_at, variant) VALUES ({n}, 1, {n}, 1, 'sent', 1, {now}, "
            f"{now}, {'NULL' if n < 3 else 5})"
            for n in (1, 2, 3)
        ),
        # The highest delivery was removed: its id must never be given again.
        "DELETE FROM deliveries WHERE id = 3",
        *(
            # Explicit ids leave PostgreSQL's sequence behind; the application never writes one.
            ["SELECT setval(pg_get_serial_sequence('deliveries', 'id'), 3)"]
            if db_url.startswith("postgresql")
            else []
        ),
        ROWS,
    )
    assert [row[0] for row in before] == [1, 2]

    command.upgrade(alembic_config(db_url), "head")
    assert _foreign_keys(db_url) == set()
    after = _run(
        db_url,
        "INSERT INTO deliveries (issue_id, subscriber_id, batch_id, status, attempts, "
        f"created_at, updated_at) VALUES (1, 3, 1, 'queued', 0, {now}, {now})",
        ROWS,
    )
    assert after[:2] == before
    assert after[2][0] == 4, "the deleted delivery's id was given again"
    engine = create_engine(db_url)
    found = inspect(engine)
    indexed = {tuple(i["column_names"]) for i in found.get_indexes("deliveries")}
    unique = {tuple(u["column_names"]) for u in found.get_unique_constraints("deliveries")}
    engine.dispose()
    assert {("batch_id",), ("subscriber_id",)} <= indexed
    assert ("issue_id",) not in indexed  # the unique (issue_id, subscriber_id) serves
    assert ("issue_id", "subscriber_id") in unique
    if db_url.startswith("postgresql"):
        (options,) = _run(db_url, "SELECT reloptions FROM pg_class WHERE relname = 'deliveries'")
        assert options == (["fillfactor=50"],)

    command.downgrade(alembic_config(db_url), "0014_topics")
    assert len(_foreign_keys(db_url)) == 3
    assert _run(db_url, ROWS)[:2] == before
    engine = create_engine(db_url)
    assert ["issue_id"] in [i["column_names"] for i in inspect(engine).get_indexes("deliveries")]
    engine.dispose()
    if db_url.startswith("postgresql"):
        (options,) = _run(db_url, "SELECT reloptions FROM pg_class WHERE relname = 'deliveries'")
        assert options == (None,)
    command.upgrade(alembic_config(db_url), "head")

"""PostgreSQL plans the subscriber search for the term at hand, however often it runs.

psycopg prepares a statement after five runs; PostgreSQL may then plan it once for any
parameters, and a generic plan for `LIKE '%term%'` cannot use the trigram index (a million-row
scan for every page, measured in bench/web_subscribers.py). And after a large import the
planner must know the table's new size.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from newsletter.db import transaction
from subscribers import importer, listing
from subscribers import search as search_index
from subscribers import service as subscribers_service


def test_the_tenth_search_is_planned_for_its_own_term(db: Session, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text(
        "email,name\n" + "".join(f"user{n}@example{n % 7}.com,Reader {n}\n" for n in range(12_000))
    )
    report = importer.import_csv(path)
    assert report.imported == 12_000
    if db.get_bind().dialect.name != "postgresql":
        return  # SQLite plans every statement for its own values, with or without statistics
    # The import left the planner statistics of a 12,000-row table, not of an empty one.
    estimate = db.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'subscribers'"))
    assert estimate is not None and estimate > 10_000  # -1 until the table is first analysed
    with transaction() as session:
        for run in range(10):
            listing.count_matching(session, search=f"user{run}1@", cap=100)
        # The same statement, ten runs on one connection (psycopg has prepared it by now):
        # still planned for its own value.
        assert session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"


def test_an_import_indexes_its_rows_for_search_and_leaves_the_trigger_as_it_was(
    db: Session, tmp_path: Path
) -> None:
    """On SQLite a large import fills the search index at the end instead of row by row; the
    rows it wrote are found, the trigger it set aside is back exactly, a dry run leaves no
    trace, and people added afterwards are indexed by the trigger again."""
    if db.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL's trigram indexes follow the table by themselves
    trigger = "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n"
    made_by_migration = db.scalar(text(trigger), {"n": search_index.INSERT_TRIGGER_NAME})
    assert made_by_migration == search_index.INSERT_TRIGGER
    path = tmp_path / "list.csv"
    path.write_text("email,name\nfirst.reader@example.org,Ottoline Quay\nsecond@example.org,\n")

    dry = importer.import_csv(path, dry_run=True)
    assert dry.imported == 2
    assert _found(db, "ottoline") == [] and _found(db, "second@") == []

    assert importer.import_csv(path).imported == 2
    db.expire_all()
    assert len(_found(db, "ottoline")) == 1 and len(_found(db, "second@")) == 1
    assert db.scalar(text(trigger), {"n": search_index.INSERT_TRIGGER_NAME}) == made_by_migration
    with transaction() as session:
        subscribers_service.add_by_admin(session, "later.one@example.org", "Later Person")
    assert len(_found(db, "later.one")) == 1
    # The index agrees with the table, row for row.
    fts = search_index.FTS_TABLE
    db.execute(text(f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)"))


def _found(db: Session, term: str) -> list[int]:
    fts = search_index.FTS_TABLE
    return list(
        db.scalars(text(f"SELECT rowid FROM {fts} WHERE {fts} MATCH :q"), {"q": f'"{term}"'})
    )

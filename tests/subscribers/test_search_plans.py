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
from subscribers import importer, repository


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
            repository.count_matching(session, search=f"user{run}1@", cap=100)
        # The same statement, ten runs on one connection (psycopg has prepared it by now):
        # still planned for its own value.
        assert session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"

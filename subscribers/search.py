"""Substring search over addresses and names, indexed on both engines.

An admin types any part of an address or a name ("example.org", "reader1", "okafor") and
expects an answer at once on a list of a million. A B-tree index only helps a prefix, so each
engine gets a trigram index that the schema models cannot describe:

- PostgreSQL: the `pg_trgm` extension and a GIN index (`gin_trgm_ops`) on `email` and on
  `name`; `LIKE` / `ILIKE '%term%'` use them. If the database user may not create the
  extension, the migration leaves the indexes out (with a warning) and the same query scans.
- SQLite (3.34+): an FTS5 table with the `trigram` tokenizer over (email, name), an external-
  content index of `subscribers` kept in step by triggers; `MATCH '"term"'` finds substrings
  of three characters or more, ignoring case. Shorter terms fall back to a `LIKE` scan.

Alembic's autogenerate and the models-versus-migrations test skip these objects by name
(`include_object`), since the models do not and cannot declare them.
"""

from __future__ import annotations

from typing import Any

FTS_TABLE = "subscriber_search"
TRIGRAM_INDEXES = ("ix_subscribers_email_trgm", "ix_subscribers_name_trgm")
# The trigger that indexes each new subscriber, exactly as 0003_staff made it (a test compares
# them); a large import drops it and indexes its rows at once (bulk.bulk_write).
INSERT_TRIGGER_NAME = f"{FTS_TABLE}_insert"
INSERT_TRIGGER = f"""CREATE TRIGGER {FTS_TABLE}_insert AFTER INSERT ON subscribers BEGIN
        INSERT INTO {FTS_TABLE}(rowid, email, name) VALUES (new.id, new.email, new.name);
    END"""
# FTS5's in-memory buffer of pending trigrams: its default, and the import's (bulk_write).
DEFAULT_HASHSIZE = 1024 * 1024
BULK_HASHSIZE = 8 * 1024 * 1024
# FTS5's trigram tokenizer indexes three characters at a time: a shorter term has no trigram.
MIN_INDEXED_CHARS = 3


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's hook: leave the search index objects out of model comparisons."""
    if name is None:
        return True
    if type_ == "table" and name.startswith(FTS_TABLE):
        return False
    return not (type_ == "index" and name in TRIGRAM_INDEXES)

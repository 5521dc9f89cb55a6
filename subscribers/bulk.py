"""The bulk import's SQL: one transaction per 100,000 rows, existing addresses found in
batches, new rows inserted by the thousand (subscribers/importer.py drives it; nothing else
imports it). Written for a 1,000,000-row file: bound values shared once per statement, no
RETURNING on SQLite, the search index filled once per commit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

from sqlalchemy import (
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

# Statuses that mean "this address left": never mailed, never reactivated by an import.
from newsletter.orm import upsert_insert, utcnow
from subscribers import search as search_index
from subscribers.models import (
    Subscriber,
    SubscriberStatus,
    Suppression,
    new_public_ids,
)
from subscribers.repository import LEFT, _fts_ready


@dataclass(frozen=True)
class Existing:
    id: int
    name: str
    status: SubscriberStatus


@contextmanager
def bulk_write(session: Session) -> Iterator[None]:
    """The settings of a large write in this transaction, on SQLite.

    A larger page cache for this connection: SQLite's default (2 MB) evicts index pages between
    random-order inserts and reads them back from disk (bounded, so memory still does not grow
    with the file). And the search index filled once at the end instead of by its insert
    trigger row by row: one `INSERT … SELECT` into FTS5 costs a fifth of the per-row trigger
    (bench/subscribers_import.py). The trigger is dropped and made again inside this one
    transaction: SQLite's schema changes are transactional and this transaction holds the
    write lock from the DROP on, so no other writer ever runs without it, and a crash or an
    error rolls the DROP back with the rows.
    """
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    session.execute(text("PRAGMA cache_size = -65536"))  # KiB: 64 MB
    if not _fts_ready(session):
        yield
        return
    connection = session.connection()
    if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        # pysqlite opens a transaction only before an INSERT, UPDATE or DELETE: without this
        # the DROP below committed at once, so an error, a crash or a dry run's rollback left
        # the trigger gone and later sign-ups missing from search.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    session.execute(text(f"DROP TRIGGER IF EXISTS {search_index.INSERT_TRIGGER_NAME}"))
    since = max_id(session)
    yield
    fts = search_index.FTS_TABLE
    # FTS5 writes its pending trigrams out as a new segment whenever they pass `hashsize`
    # (1 MiB by default), and merges segments as they pile up: a larger buffer for this one
    # fill means fewer, larger segments and less merging (a quarter less time at a million
    # rows, search as fast), for a bounded few MB. Set back in the same transaction.
    before = session.scalar(text(f"SELECT v FROM {fts}_config WHERE k = 'hashsize'"))
    config = text(f"INSERT INTO {fts}({fts}, rank) VALUES ('hashsize', :size)")
    session.execute(config, {"size": search_index.BULK_HASHSIZE})
    session.execute(
        text(
            f"INSERT INTO {fts}(rowid, email, name) SELECT id, email, name FROM subscribers WHERE id > :since"
        ),
        {"since": since},
    )
    session.execute(config, {"size": before or search_index.DEFAULT_HASHSIZE})
    session.execute(text(search_index.INSERT_TRIGGER))


def refresh_statistics(session: Session) -> None:
    """ANALYZE the subscribers table on PostgreSQL (a sample, about a second at a million).
    SQLite keeps no statistics unless asked, and its plans here are chosen without them."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE subscribers"))


def max_id(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(Subscriber.id), 0))) or 0


def _in_list(session: Session, column: str, values: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    """`column IN (…)` for the driver: one array parameter on PostgreSQL (psycopg parses a
    query with thousands of placeholders slowly), one `?` per value on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return f"{column} = ANY(%s)", (list(values),)
    return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)


# The bulk import's lookups go straight to the driver: compiling an IN list of thousands of
# bound values through SQLAlchemy cost more than running the query.


def existing_by_email(session: Session, emails: Sequence[str]) -> dict[str, Existing]:
    if not emails:
        return {}
    dialect = session.get_bind().dialect
    column = Subscriber.__table__.c.status
    to_status: Any = column.type.dialect_impl(dialect).result_processor(dialect, None)
    condition, params = _in_list(session, "email", emails)
    rows = session.connection().exec_driver_sql(
        f"SELECT email, id, name, status FROM subscribers WHERE {condition}", params
    )
    return {
        email: Existing(id_, name, SubscriberStatus(to_status(raw) if to_status else raw))
        for email, id_, name, raw in rows
    }


def suppressed_among(session: Session, hashes: Sequence[str]) -> set[str]:
    if not hashes:
        return set()
    condition, params = _in_list(session, "email_hash", hashes)
    rows = session.connection().exec_driver_sql(
        f"SELECT email_hash FROM suppressions WHERE {condition}", params
    )
    return {row[0] for row in rows}


INSERT_ROWS_PER_STATEMENT = 1000  # x 12 values stays well under SQLite's parameter limit
# A varying tuple shared by at least this many rows of a call is bound once for all of them.
_SHARED_RUN = 50


def insert_new(
    session: Session,
    people: Sequence[tuple[str, str, str, tuple[Any, ...]]],
    varying: Sequence[str],
    shared: dict[str, Any],
) -> list[tuple[str, str]]:
    """Insert many subscribers, `(email, email_hash, name, (*varying,))` each (the `varying`
    columns differ per row: status, consent record…), every other column from `shared`, and a
    new public id each; an address that appeared meanwhile is left alone (ON CONFLICT DO
    NOTHING). Returns (email, public_id) of the rows that went in, in email order.

    Multi-row INSERT through the driver: SQLAlchemy's per-value type processing (a datetime
    formatted for SQLite fifteen times a row) cost more than the database's own work. Values go
    through the columns' own bind processors, so they are stored exactly as the ORM would store
    them; the shared ones once, and a varying tuple that many rows share (the same object, as
    most rows of a large import: `_Run.columns_for`) once too.
    """
    if not people:
        return []
    table = Subscriber.__table__
    connection = session.connection()
    dialect = connection.dialect

    def processor(key: str) -> Any:
        return table.c[key].type.dialect_impl(dialect).bind_processor(dialect)

    constants = []
    for key, value in shared.items():
        process = processor(key)
        constants.append(process(value) if process else value)
    processors = [processor(key) for key in varying]
    # Most rows of a large import share one varying tuple (the same object): processed once.
    last: list[tuple[Any, ...]] = [(), ()]

    def processed(values: tuple[Any, ...]) -> tuple[Any, ...]:
        if values is last[0]:
            return last[1]
        done = tuple(p(v) if p else v for p, v in zip(processors, values, strict=True))
        last[:] = [values, done]
        return done

    public = new_public_ids(len(people))
    if dialect.name == "postgresql":
        names = ["email", "email_hash", "name", "public_id", *varying, *shared]
        # One array per column and the shared values: a short query however many rows.
        arrays = ", ".join(f"%s::{table.c[key].type.compile(dialect=dialect)}[]" for key in varying)
        labels = ", ".join(f"v{i}" for i in range(len(varying)))
        casts = ", ".join(
            f"CAST(%s AS {table.c[key].type.compile(dialect=dialect)})" for key in shared
        )
        sql = (
            f"INSERT INTO subscribers ({', '.join(names)}) SELECT e, h, n, p, {labels}, {casts} "
            f"FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], {arrays}) "
            f"AS t(e, h, n, p, {labels}) ON CONFLICT DO NOTHING RETURNING email, public_id"
        )
        rows = [(e, h, n, p, *processed(v)) for (e, h, n, v), p in zip(people, public, strict=True)]
        columns = [list(column) for column in zip(*rows, strict=True)]
        result = connection.exec_driver_sql(sql, (*constants, *columns))
        return [(email, public_id) for email, public_id in result]
    # SQLite: `INSERT … SELECT … FROM (VALUES …)`, so that a value every row has is bound once
    # per statement instead of once per row (a third of the statement's time with 16 bound
    # values a row). Rows that share their varying tuple go in together, in email order, each
    # group's rows flat (four values a row), ready to be bound.
    together: dict[tuple[Any, ...], list[str]] = {}
    group: list[str] = []
    last_varied: tuple[Any, ...] | None = None
    for (email, email_hash, name, varied), public_id in zip(people, public, strict=True):
        if varied is not last_varied:
            last_varied = varied
            group = together.setdefault(processed(varied), [])
        group += (email, email_hash, name, public_id)
    own = ("email", "email_hash", "name", "public_id")
    width = len(own)
    alone: list[tuple[Any, ...]] = []
    for values, flat in list(together.items()):
        if len(flat) < _SHARED_RUN * width:
            alone.extend((*flat[i : i + width], *values) for i in range(0, len(flat), width))
            del together[values]
    alone.sort()
    # The driver's own cursor. No RETURNING (it cost a tenth of the insert): the public ids are
    # ours, so a statement whose row count is its number of rows inserted them all, and only a
    # statement that met addresses already there looks up which of its rows went in.
    cursor = connection.connection.cursor()
    returned: list[tuple[str, str]] = []

    def went_in(count: int, emails: list[str], public_ids: list[str]) -> None:
        if cursor.rowcount == count:
            returned.extend(zip(emails, public_ids, strict=True))
        elif cursor.rowcount:
            condition, params = _in_list(session, "public_id", public_ids)
            cursor.execute(f"SELECT email, public_id FROM subscribers WHERE {condition}", params)
            returned.extend(sorted(cursor.fetchall()))

    sql = _values_insert(own, varying, shared, width)
    step = INSERT_ROWS_PER_STATEMENT * width
    for values, flat in together.items():
        for start in range(0, len(flat), step):
            chunk = flat[start : start + step]
            count = len(chunk) // width
            cursor.execute(sql(count), [*values, *constants, *chunk])
            went_in(count, chunk[0::width], chunk[3::width])
    if alone:
        sql = _values_insert([*own, *varying], (), shared, width + len(varying))
        for start in range(0, len(alone), INSERT_ROWS_PER_STATEMENT):
            chunk_rows = alone[start : start + INSERT_ROWS_PER_STATEMENT]
            cursor.execute(sql(len(chunk_rows)), [*constants, *chain.from_iterable(chunk_rows)])
            went_in(len(chunk_rows), [r[0] for r in chunk_rows], [r[3] for r in chunk_rows])
    cursor.close()
    if len(together) + bool(alone) > 1:
        # In email order, as one statement would have returned them (the report's order).
        returned.sort()
    return returned


def _values_insert(
    per_row: Sequence[str], once: Sequence[str], shared: dict[str, Any], width: int
) -> Any:
    """The SQL of an insert of n rows (a function of n): the `per_row` columns from a VALUES
    list, the `once` and `shared` columns from parameters bound once, numbered first."""
    fixed = [*once, *shared]
    names = [*per_row, *fixed]
    picks = [f"column{i + 1}" for i in range(len(per_row))]
    picks += [f"?{i + 1}" for i in range(len(fixed))]
    row_marks = "(" + ", ".join(["?"] * width) + ")"
    head = f"INSERT INTO subscribers ({', '.join(names)}) SELECT {', '.join(picks)} FROM (VALUES "
    # `WHERE true`: without it SQLite would read ON CONFLICT as part of the SELECT's join.
    tail = ") WHERE true ON CONFLICT DO NOTHING"

    def sql(rows: int) -> str:
        return head + ", ".join([row_marks] * rows) + tail

    return sql


def mark_left_many(session: Session, changes: list[dict[str, Any]]) -> int:
    """People an imported export says left: `[{"b_id", "b_status", "b_left_at", "b_now"}]`.

    Only rows still active or pending change, and not someone whose consent here is newer than
    the time the other tool says they left: they came back by themselves since."""
    if not changes:
        return 0
    c = Subscriber.__table__.c
    stmt = (
        update(Subscriber.__table__)  # type: ignore[arg-type]
        .where(
            c.id == bindparam("b_id"),
            or_(
                c.status == SubscriberStatus.ACTIVE.value,
                c.status == SubscriberStatus.PENDING.value,
            ),
            or_(
                c.consent_at.is_(None),
                c.consent_at <= bindparam("b_left_at", type_=c.consent_at.type),
            ),
        )
        .values(
            status=bindparam("b_status", type_=c.status.type),
            unsubscribed_at=bindparam("b_unsubscribed_at", type_=c.unsubscribed_at.type),
            confirm_sent_at=None,
            updated_at=bindparam("b_now", type_=c.updated_at.type),
        )
    )
    result = session.connection().execute(stmt, changes)
    return int(result.rowcount)


def left_among(session: Session, ids: Sequence[int]) -> set[int]:
    """Of these subscribers, the ids of those who have left."""
    if not ids:
        return set()
    return set(
        session.scalars(
            select(Subscriber.id).where(Subscriber.id.in_(ids), Subscriber.status.in_(LEFT))
        )
    )


def suppress_many(session: Session, entries: list[dict[str, str]]) -> None:
    """`[{"email_hash", "reason", "detail"}]` onto the suppression list; a hash already there
    keeps its first reason."""
    if not entries:
        return
    now = utcnow()
    stmt = upsert_insert(session, Suppression).values(
        email_hash=bindparam("email_hash"),
        reason=bindparam("reason"),
        detail=bindparam("detail"),
        created_at=now,
    )
    session.execute(
        stmt.on_conflict_do_nothing(index_elements=["email_hash"]),
        entries,
    )


def add_tags(session: Session, tags: Sequence[tuple[str, str]]) -> None:
    """`[(email, tag name)]`; a tag the person already has is left as it is. By address, so
    that the import needs no ids of the rows it inserted."""
    if not tags:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        emails, names = (list(column) for column in zip(*tags, strict=True))
        connection.exec_driver_sql(
            "INSERT INTO subscriber_tags (subscriber_id, name) SELECT s.id, t.name "
            "FROM unnest(%s::text[], %s::text[]) AS t(email, name) "
            "JOIN subscribers s ON s.email = t.email ON CONFLICT DO NOTHING",
            (emails, names),
        )
        return
    connection.exec_driver_sql(
        "INSERT INTO subscriber_tags (subscriber_id, name) "
        "SELECT id, ? FROM subscribers WHERE email = ? ON CONFLICT DO NOTHING",
        [(name, email) for email, name in tags],
    )


def rename_many(session: Session, names: list[dict[str, Any]]) -> int:
    """Set names by id (`[{"b_id": …, "b_name": …, "b_now": …}]`), only on rows still in a
    state an import may touch."""
    if not names:
        return 0
    stmt = (
        update(Subscriber.__table__)  # type: ignore[arg-type]
        .where(
            Subscriber.__table__.c.id == bindparam("b_id"),
            # One comparison per state, not NOT IN: an IN list is an "expanding" parameter,
            # which SQLAlchemy refuses in executemany (two renames in one batch).
            *(Subscriber.__table__.c.status != s.value for s in LEFT),
        )
        .values(name=bindparam("b_name"), updated_at=bindparam("b_now"))
    )
    result = session.connection().execute(stmt, names)
    return int(result.rowcount)

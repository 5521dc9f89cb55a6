"""All SQL about subscribers and the suppression list."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.orm import utcnow
from newsletter.sending.models import Delivery, SendBatch
from newsletter.tracking.models import TrackingEvent, Vote
from subscribers.addresses import scrub
from subscribers.models import Subscriber, SubscriberStatus, Suppression, new_public_id

# Statuses that mean "this address left": never mailed, never reactivated by an import.
LEFT = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


def _not_suppressed() -> ColumnElement[bool]:
    return ~exists().where(Suppression.email_hash == Subscriber.email_hash)


def mailable_ids_select() -> Select[int]:
    """Ids of subscribers who may be mailed now: active, not paused, not suppressed.

    Sending snapshots an audience with INSERT ... SELECT from this, and filters each batch
    with it again so someone who left mid-send is skipped.
    """
    return select(Subscriber.id).where(
        Subscriber.status == SubscriberStatus.ACTIVE,
        Subscriber.paused.is_(False),
        _not_suppressed(),
    )


# --- single subscribers ---------------------------------------------------------------------


def get(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id, populate_existing=True)


def get_by_public_id(session: Session, public_id: str) -> Subscriber | None:
    return session.scalars(
        select(Subscriber).where(Subscriber.public_id == public_id)
    ).one_or_none()


def get_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.email == email)).one_or_none()


def add(session: Session, subscriber: Subscriber) -> Subscriber:
    session.add(subscriber)
    session.flush()
    return subscriber


def transition(
    session: Session,
    subscriber_id: int,
    *,
    to: SubscriberStatus,
    allowed_from: Iterable[SubscriberStatus],
    **values: Any,
) -> bool:
    """A guarded status change: True only for the caller whose UPDATE found the row in an
    allowed state, so two concurrent requests cannot both perform it."""
    stmt = (
        update(Subscriber)
        .where(Subscriber.id == subscriber_id, Subscriber.status.in_(list(allowed_from)))
        .values(status=to, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    changed: bool = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
    session.expire_all()
    return changed


def confirm(session: Session, subscriber_id: int, confirm_sent_at: datetime, **values: Any) -> bool:
    """Activate on a confirmation link, only if it answers the latest request."""
    stmt = (
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            Subscriber.confirm_sent_at == confirm_sent_at,
            Subscriber.status != SubscriberStatus.ACTIVE,
        )
        .values(status=SubscriberStatus.ACTIVE, confirm_sent_at=None, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    changed: bool = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
    session.expire_all()
    return changed


def set_flags(session: Session, subscriber_id: int, **values: bool) -> None:
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


def delete_subscriber(session: Session, subscriber_id: int) -> None:
    # Deliveries and votes point here with ON DELETE SET NULL: they stay counted, anonymous.
    session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
    session.expire_all()


# --- suppression ----------------------------------------------------------------------------


def _insert(session: Session, table: Any) -> Insert:
    """An INSERT that can say ON CONFLICT on the engine in use (SQLite or PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def suppress(session: Session, email_hash: str, reason: str, detail: str = "") -> None:
    """Add the address to the suppression list; the first reason recorded stays."""
    stmt = _insert(session, Suppression).values(
        email_hash=email_hash, reason=reason, detail=detail, created_at=utcnow()
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["email_hash"]))  # type: ignore[attr-defined]


def suppression_for(session: Session, email_hash: str) -> Suppression | None:
    return session.scalars(
        select(Suppression).where(Suppression.email_hash == email_hash)
    ).one_or_none()


def erased_among(session: Session, hashes: set[str]) -> set[str]:
    if not hashes:
        return set()
    return set(
        session.scalars(
            select(Suppression.email_hash).where(
                Suppression.email_hash.in_(sorted(hashes)), Suppression.reason == "erased"
            )
        )
    )


def lift_suppression(session: Session, email_hash: str) -> None:
    session.execute(delete(Suppression).where(Suppression.email_hash == email_hash))


def mark_erased(session: Session, email_hash: str, scrub_email: str) -> None:
    """The hash stays, marked erased; a bounce message naming the address (any case) does not."""
    suppress(session, email_hash, "erased")
    detail = session.scalar(select(Suppression.detail).where(Suppression.email_hash == email_hash))
    session.execute(
        update(Suppression)
        .where(Suppression.email_hash == email_hash)
        .values(reason="erased", detail=scrub(detail or "", scrub_email))
    )


def scrub_activity(session: Session, subscriber_id: int, email: str, email_hash: str) -> None:
    """Remove what names the person from every record before the row goes.

    Events keep their type, time, issue and link (the counts), but not the provider's raw
    payload (SendGrid's carries the address), the user agent, or a detail naming the address;
    that holds for events about mail outside the ledger too (confirmations, test copies),
    found by the address hash they were stored with. Errors of their deliveries and batches
    lose the address in any letter case. The tracking and sending tables have no erasure hook
    of their own yet, so it lives here.
    """
    deliveries = select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)
    events = session.execute(
        select(TrackingEvent.id, TrackingEvent.detail).where(
            or_(
                TrackingEvent.delivery_id.in_(deliveries),
                TrackingEvent.email_hash == email_hash,
            )
        )
    ).all()
    for event_id, detail in events:
        session.execute(
            update(TrackingEvent)
            .where(TrackingEvent.id == event_id)
            .values(
                raw=None,
                user_agent=None,
                email_hash=None,
                detail=scrub(detail, email) if detail else detail,
            )
            .execution_options(synchronize_session=False)
        )
    for table, ids in (
        (Delivery, deliveries),
        (SendBatch, select(Delivery.batch_id).where(Delivery.subscriber_id == subscriber_id)),
    ):
        for row_id, error in session.execute(
            select(table.id, table.error).where(table.id.in_(ids), table.error.is_not(None))
        ):
            cleaned = scrub(error or "", email)
            if cleaned != error:
                session.execute(
                    update(table)
                    .where(table.id == row_id)
                    .values(error=cleaned)
                    .execution_options(synchronize_session=False)
                )


def activity(session: Session, subscriber_id: int) -> dict[str, list[dict[str, Any]]]:
    """What the service recorded about a person's mail, for their own data export."""
    deliveries = session.execute(
        select(Delivery.id, Delivery.issue_id, Delivery.status, Delivery.sent_at)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id)
    ).all()
    events = session.execute(
        select(TrackingEvent.type, TrackingEvent.issue_id, TrackingEvent.occurred_at)
        .join(Delivery, Delivery.id == TrackingEvent.delivery_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(TrackingEvent.occurred_at, TrackingEvent.id)
    ).all()
    votes = session.execute(
        select(Vote.matchup_id, Vote.tool, Vote.voted_at)
        .where(Vote.subscriber_id == subscriber_id)
        .order_by(Vote.voted_at)
    ).all()
    return {
        "deliveries": [
            {"issue_id": d.issue_id, "status": str(d.status), "sent_at": d.sent_at}
            for d in deliveries
        ],
        "events": [
            {"type": str(e.type), "issue_id": e.issue_id, "at": e.occurred_at} for e in events
        ],
        "votes": [{"matchup_id": v.matchup_id, "tool": v.tool, "at": v.voted_at} for v in votes],
    }


# --- the list -------------------------------------------------------------------------------


def list_subscribers(
    session: Session,
    *,
    status: SubscriberStatus | None = None,
    search: str | None = None,
    limit: int | None = None,
) -> Iterator[Subscriber]:
    """Streams the list in id order (an export of a large list never sits in memory)."""
    stmt = select(Subscriber).order_by(Subscriber.id)
    if status is not None:
        stmt = stmt.where(Subscriber.status == status)
    if search:
        pattern = f"%{search.strip().lower()}%"
        stmt = stmt.where(
            or_(Subscriber.email.like(pattern), func.lower(Subscriber.name).like(pattern))
        )
    if limit is not None:
        stmt = stmt.limit(limit)
    yield from session.scalars(stmt.execution_options(yield_per=2000))


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Subscriber.status, func.count()).group_by(Subscriber.status)
    ).all()
    return {str(status): count for status, count in rows}


# --- bulk import ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Existing:
    id: int
    name: str
    status: SubscriberStatus


def prepare_bulk_write(session: Session) -> None:
    """A larger page cache for this connection while it bulk-writes: SQLite's default (2 MB)
    evicts index pages between random-order inserts and reads them back from disk. Bounded,
    so memory still does not grow with the file."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA cache_size = -65536"))  # KiB: 64 MB


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


INSERT_ROWS_PER_STATEMENT = 1000  # x 16 columns stays under SQLite's parameter limit


def insert_new(
    session: Session, people: Sequence[tuple[str, str, str]], shared: dict[str, Any]
) -> list[Row[Any]]:
    """Insert many subscribers, `(email, email_hash, name)` each, every other column from
    `shared`; an address that appeared meanwhile is left alone (ON CONFLICT DO NOTHING).
    Returns (id, email, name, public_id) of the rows that went in.

    Multi-row INSERT through the driver: SQLAlchemy's per-value type processing (a datetime
    formatted for SQLite fifteen times a row) cost more than the database's own work. The
    shared values go through the columns' own bind processors once, so they are stored exactly
    as the ORM would store them.
    """
    if not people:
        return []
    table = Subscriber.__table__
    connection = session.connection()
    dialect = connection.dialect
    names = ["email", "email_hash", "name", "public_id", *shared]
    constants = []
    for key, value in shared.items():
        processor = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
        constants.append(processor(value) if processor else value)
    if dialect.name == "postgresql":
        # Three arrays and the shared values: a short query however many rows.
        casts = ", ".join(
            f"CAST(%s AS {table.c[key].type.compile(dialect=dialect)})" for key in shared
        )
        sql = (
            f"INSERT INTO subscribers ({', '.join(names)}) SELECT e, h, n, p, {casts} "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS t(e, h, n, p) "
            "ON CONFLICT DO NOTHING RETURNING id, email, name, public_id"
        )
        emails, hashes, person_names = (list(column) for column in zip(*people, strict=True))
        public_ids = [new_public_id() for _ in people]
        params = (*constants, emails, hashes, person_names, public_ids)
        return list(connection.exec_driver_sql(sql, params).all())
    row_marks = "(" + ", ".join(["?"] * len(names)) + ")"
    returned: list[Row[Any]] = []
    for start in range(0, len(people), INSERT_ROWS_PER_STATEMENT):
        chunk = people[start : start + INSERT_ROWS_PER_STATEMENT]
        sql = (
            f"INSERT INTO subscribers ({', '.join(names)}) VALUES "
            + ", ".join([row_marks] * len(chunk))
            + " ON CONFLICT DO NOTHING RETURNING id, email, name, public_id"
        )
        values: list[Any] = []
        for person in chunk:
            values.extend(person)
            values.append(new_public_id())
            values.extend(constants)
        returned.extend(connection.exec_driver_sql(sql, tuple(values)).all())
    return returned


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


# Keyset pages for the admin list, written for a list of a million: newest first by primary
# key, `id < :before` instead of OFFSET (page 20,000 costs what page 1 costs), an email search
# that is a range on the unique email index (addresses are stored lower-cased), and a name search
# that scans newest-first and stops at the first page of hits.
# Above every character an address can contain, so [q, q + END) is "starts with q".
_END = "\U0010ffff"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def subscribers_page(
    session: Session,
    *,
    status: SubscriberStatus | None = None,
    search: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Subscriber]:
    stmt = select(Subscriber).order_by(Subscriber.id.desc()).limit(limit)
    if before_id:
        stmt = stmt.where(Subscriber.id < before_id)
    if status is not None:
        stmt = stmt.where(Subscriber.status == status)
    term = (search or "").strip().lower()
    if term:
        starts = and_(Subscriber.email >= term, Subscriber.email < term + _END)
        if "@" in term:
            stmt = stmt.where(starts)
        else:
            pattern = f"%{_escape_like(term)}%"
            # SQLite's LIKE already ignores ASCII case (and its lower() folds only ASCII too), so
            # a plain LIKE finds the same rows about four times faster on a full scan; other
            # engines need ILIKE.
            if session.get_bind().dialect.name == "sqlite":
                named = Subscriber.name.like(pattern, escape="\\")
            else:
                named = Subscriber.name.ilike(pattern, escape="\\")
            stmt = stmt.where(or_(starts, named))
    return list(session.scalars(stmt))


def suppressions_page(
    session: Session, *, before_id: int | None = None, limit: int = 50
) -> list[Suppression]:
    stmt = select(Suppression).order_by(Suppression.id.desc()).limit(limit)
    if before_id:
        stmt = stmt.where(Suppression.id < before_id)
    return list(session.scalars(stmt))


def suppression_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Suppression)) or 0

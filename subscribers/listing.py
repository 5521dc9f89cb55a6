"""The admin's list: pages under a filter and a sort, counts, search, the suppression list.

Reads only: what changes a subscriber is subscribers/service.py's (through repository.py).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, column, func, literal, or_, select, table, text, tuple_
from sqlalchemy.orm import Session

from subscribers import repository
from subscribers import search as search_index
from subscribers.models import (
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    SubscriberTopic,
    Suppression,
)

# `within`, in the functions below: a SELECT of subscriber ids the rows must be among (a
# segment's members, newsletter/audience), or None for the whole list.


def list_subscribers(
    session: Session,
    *,
    status: SubscriberStatus | None = None,
    search: str | None = None,
    limit: int | None = None,
    ids: Sequence[int] | None = None,
    within: Select[Any] | None = None,
) -> Iterator[Subscriber]:
    """Streams the list in id order (an export of a large list never sits in memory)."""
    stmt, _ = _filtered(session, select(Subscriber), status, _term(search), within)
    stmt = stmt.order_by(Subscriber.id)
    if ids is not None:
        stmt = stmt.where(Subscriber.id.in_(list(ids)))
    if limit is not None:
        stmt = stmt.limit(limit)
    yield from session.scalars(stmt.execution_options(yield_per=2000))


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Subscriber.status, func.count()).group_by(Subscriber.status)
    ).all()
    return {str(status): count for status, count in rows}


# Keyset pages for the admin list, written for a list of a million: `(key, id) < (:key, :id)`
# instead of OFFSET (page 20,000 costs what page 1 costs), each sort key backed by an index
# ending in id, and substring search through the engine's trigram index (subscribers/search.py).


class SortKey(enum.StrEnum):
    # "Date joined" is the id: a row is inserted when the person joins (created_at is set then
    # and never changed), so id order is join order and needs no index of its own.
    JOINED = "joined"
    EMAIL = "email"
    NAME = "name"
    STATUS = "status"


_SORT_COLUMNS: dict[SortKey, Any] = {
    SortKey.EMAIL: Subscriber.email,
    SortKey.NAME: Subscriber.name,
    SortKey.STATUS: Subscriber.status,
}


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the sort key's value (None for JOINED) and the id, the tie-break."""

    key: Any
    id: int


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts_phrase(term: str) -> str:
    # One FTS5 string: inside double quotes every character is literal (a doubled quote is one).
    return '"' + term.replace('"', '""') + '"'


_fts = table(search_index.FTS_TABLE, column("rowid"))


def _filtered(
    session: Session,
    stmt: Select[Any],
    status: SubscriberStatus | None,
    term: str,
    within: Select[Any] | None = None,
) -> tuple[Select[Any], Any]:
    """The list filter on a SELECT over subscribers; returns it and the id column to page by
    (the FTS table's rowid when the search drives the query, so FTS5 walks it in order)."""
    if within is not None:
        stmt = stmt.where(Subscriber.id.in_(within))
    if status is not None:
        stmt = stmt.where(Subscriber.status == status)
    if not term:
        return stmt, Subscriber.id
    dialect = session.get_bind().dialect.name
    if (
        dialect == "sqlite"
        and len(term) >= search_index.MIN_INDEXED_CHARS
        and repository._fts_ready(session)
    ):
        stmt = stmt.join(_fts, _fts.c.rowid == Subscriber.id).where(
            text(f"{search_index.FTS_TABLE} MATCH :phrase").bindparams(phrase=_fts_phrase(term))
        )
        return stmt, _fts.c.rowid
    pattern = f"%{_escape_like(term)}%"
    # Addresses are stored lower-cased, so LIKE on the lowered term is exact. SQLite's LIKE
    # ignores ASCII case already; PostgreSQL needs ILIKE for names (pg_trgm's GIN serves both).
    if dialect == "sqlite":
        named = Subscriber.name.like(pattern, escape="\\")
    else:
        named = Subscriber.name.ilike(pattern, escape="\\")
    return stmt.where(or_(Subscriber.email.like(pattern, escape="\\"), named)), Subscriber.id


def _term(search_text: str | None) -> str:
    return (search_text or "").strip().lower()


def subscribers_page(
    session: Session,
    *,
    status: SubscriberStatus | None = None,
    search: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
    sort: SortKey = SortKey.JOINED,
    descending: bool = True,
    after: Cursor | None = None,
    within: Select[Any] | None = None,
) -> list[Subscriber]:
    """One page of the list under a filter and a sort; `after` is the last row of the page
    before (`before_id` is the same for the default newest-first order)."""
    if after is None and before_id:
        after = Cursor(None, before_id)
    stmt, id_column = _filtered(session, select(Subscriber), status, _term(search), within)
    key = _SORT_COLUMNS.get(sort)

    def order(column: Any) -> Any:
        return column.desc() if descending else column.asc()

    if key is None:
        stmt = stmt.order_by(order(id_column))
        if after is not None:
            stmt = stmt.where(id_column < after.id if descending else id_column > after.id)
    else:
        stmt = stmt.order_by(order(key), order(id_column))
        if after is not None:
            pair, mark = tuple_(key, id_column), tuple_(literal(after.key, key.type), after.id)
            stmt = stmt.where(pair < mark if descending else pair > mark)
    return list(session.scalars(stmt.limit(limit)))


def count_matching(
    session: Session,
    *,
    status: SubscriberStatus | None = None,
    search: str | None = None,
    ids: Sequence[int] | None = None,
    cap: int | None = None,
    within: Select[Any] | None = None,
) -> int:
    """How many rows the filter matches, counting at most `cap` (a common search term on a
    million rows would otherwise cost a full count on every page)."""
    stmt, _ = _filtered(session, select(Subscriber.id), status, _term(search), within)
    if ids is not None:
        stmt = stmt.where(Subscriber.id.in_(list(ids)))
    if cap is not None:
        stmt = stmt.limit(cap)
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def matching_ids(
    session: Session,
    *,
    status: SubscriberStatus | None = None,
    search: str | None = None,
    ids: Sequence[int] | None = None,
    limit: int,
    within: Select[Any] | None = None,
) -> list[int]:
    """Ids under the filter (and among `ids` when a selection is given), oldest first."""
    stmt, id_column = _filtered(session, select(Subscriber.id), status, _term(search), within)
    if ids is not None:
        stmt = stmt.where(Subscriber.id.in_(list(ids)))
    return list(session.scalars(stmt.order_by(id_column).limit(limit)))


def suppressions_page(
    session: Session, *, before_id: int | None = None, limit: int = 50
) -> list[Suppression]:
    stmt = select(Suppression).order_by(Suppression.id.desc()).limit(limit)
    if before_id:
        stmt = stmt.where(Suppression.id < before_id)
    return list(session.scalars(stmt))


def suppression_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Suppression)) or 0


# --- what a segment asks of the list (newsletter/audience/rules.py) --------------------------


def tag_names(session: Session) -> list[str]:
    """Every imported tag there is, A to Z (what a segment's tags are chosen from)."""
    return list(session.scalars(select(SubscriberTag.name).distinct().order_by(SubscriberTag.name)))


def tags_named(session: Session, names: Sequence[str]) -> list[str]:
    """The stored tags that `names` name, case aside (Unicode case: SQLite's lower() knows
    ASCII only, so the few distinct tags are matched here)."""
    wanted = {" ".join(n.split()).casefold() for n in names}
    return [tag for tag in tag_names(session) if " ".join(tag.split()).casefold() in wanted]


def members_select(
    *,
    statuses: Sequence[SubscriberStatus] = (),
    topics: Sequence[str] = (),
    tags: Sequence[str] = (),
    joined_from: datetime | None = None,
    joined_before: datetime | None = None,
    sources: Sequence[str] = (),
) -> Select[Any]:
    """The ids of subscribers who meet every condition given (`tags` as stored: tags_named).
    Each is a condition on the row or one EXISTS on a primary key, so the engine reads the list
    once."""
    stmt = select(Subscriber.id)
    if statuses:
        stmt = stmt.where(Subscriber.status.in_(list(statuses)))
    if topics:
        stmt = stmt.where(
            select(SubscriberTopic.subscriber_id)
            .where(
                SubscriberTopic.subscriber_id == Subscriber.id,
                SubscriberTopic.name.in_(list(topics)),
            )
            .exists()
        )
    if tags:
        stmt = stmt.where(
            select(SubscriberTag.subscriber_id)
            .where(SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.name.in_(list(tags)))
            .exists()
        )
    if joined_from is not None:
        stmt = stmt.where(Subscriber.created_at >= joined_from)
    if joined_before is not None:
        stmt = stmt.where(Subscriber.created_at < joined_before)
    if sources:
        stmt = stmt.where(
            or_(
                *(
                    or_(
                        Subscriber.source == source,
                        Subscriber.source.like(f"{_escape_like(source)}:%", escape="\\"),
                    )
                    for source in sources
                )
            )
        )
    return stmt

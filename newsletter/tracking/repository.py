"""All SQL on tracking_events, and the read-only joins the numbers need (votes are written by
newsletter.votes).

Writes use Core inserts rather than ORM objects: a pixel hit or a 1,000-event webhook post is
one statement, not a unit of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, case, distinct, func, select
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueLink
from newsletter.matchups.models import MatchupTool
from newsletter.orm import unnest_insert, upsert_insert
from newsletter.sending.models import Delivery, DeliveryStatus
from newsletter.tracking import rollups
from newsletter.tracking.models import EventType, TrackingEvent, TrackingFirst
from newsletter.votes.models import Vote
from subscribers.models import Subscriber


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """What tracking needs to know about a delivery, read in one joined query."""

    id: int
    issue_id: int
    subscriber_id: int | None
    sent_at: datetime | None
    tracking_opt_out: bool
    # The subscriber's public id (None once erased): what a delivery token must name.
    public_id: str | None = None


@dataclass(frozen=True, slots=True)
class HitTarget:
    """A pixel or click hit's delivery, and the issue link it names (None when the issue has no
    link by that key, or for the pixel)."""

    delivery: DeliveryInfo
    link_url: str | None
    link_matchup_id: int | None


# --- events -----------------------------------------------------------------------------------


# Built once: a pixel or click is the hottest path of the app, and constructing a statement
# costs more than executing a cached one.
_INSERT_EVENT = TrackingEvent.__table__.insert()  # type: ignore[attr-defined]


def add_event(db: Session | Connection, **values: Any) -> None:
    """Store one first-party event (pixel, click, vote), counted into its issue's figures."""
    add_events(db, [values])


def add_events(db: Session | Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store first-party events, all with the same columns, in one executemany, and count them
    into their issues' figures in the same transaction (one upsert per figure per batch)."""
    if rows:
        connection = _connection(db)
        connection.execute(_INSERT_EVENT, list(rows))
        rollups.roll_up(connection, rows)


def _connection(db: Session | Connection) -> Connection:
    # The pixel and click endpoints run on a bare Core connection (no unit of work to set up
    # and flush); everything else passes its Session.
    return db.connection() if isinstance(db, Session) else db


def insert_new_provider_events(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert provider events, skipping any whose provider_event_id is already stored.

    Returns the ids actually inserted: only those may have side effects (suppression,
    unsubscribe) and only those are counted (`roll_up`), so a redelivered event changes
    nothing.
    """
    if not rows:
        return set()
    table = TrackingEvent.__table__
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        inserted = unnest_insert(
            connection,
            table,  # type: ignore[arg-type]
            rows,
            "ON CONFLICT (provider_event_id) DO NOTHING RETURNING provider_event_id",
        ).scalars()
        return {event_id for event_id in inserted if event_id is not None}
    stmt = (
        upsert_insert(session, table)
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(table.c.provider_event_id)
    )
    # On the Core connection: the ORM's bulk path would run (and splice) one INSERT per row.
    inserted = connection.execute(stmt, list(rows)).scalars()
    return {event_id for event_id in inserted if event_id is not None}


def roll_up(
    session: Session,
    rows: Sequence[dict[str, Any]],
    resumed_at: dict[int, datetime | None] | None = None,
) -> None:
    """Count newly stored provider events into their issues' figures (`resumed_at`: when an
    editor last resumed each issue's send, for the reputation check's counts since then)."""
    rollups.roll_up(session.connection(), rows, resumed_at)


def delivery_infos(session: Session, delivery_ids: Iterable[int]) -> dict[int, DeliveryInfo]:
    """Deliveries (with their subscriber's tracking choice) by id; unknown ids are absent.

    Read here, in one query per webhook batch, because matching 1,000 events one delivery at a
    time would dominate ingestion.
    """
    ids = sorted(set(delivery_ids))
    if not ids:
        return {}
    stmt = (
        select(
            Delivery.id,
            Delivery.issue_id,
            Delivery.subscriber_id,
            Delivery.sent_at,
            func.coalesce(Subscriber.tracking_opt_out, False),
            Subscriber.public_id,
        )
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids))
    )
    return {
        row[0]: DeliveryInfo(row[0], row[1], row[2], row[3], bool(row[4]), row[5])
        for row in session.execute(stmt)
    }


# One indexed read per pixel or click: the delivery, its subscriber's tracking choice, and the
# issue link the click names. The link comes from the database on every hit rather than from a
# cache: a draft's links may still change URL, and this join costs one index probe.
_HIT_TARGET = (
    select(
        Delivery.id,
        Delivery.issue_id,
        Delivery.subscriber_id,
        Delivery.sent_at,
        func.coalesce(Subscriber.tracking_opt_out, False),
        IssueLink.url,
        IssueLink.matchup_id,
        Subscriber.public_id,
    )
    .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
    .outerjoin(
        IssueLink,
        and_(IssueLink.issue_id == Delivery.issue_id, IssueLink.key == bindparam("link_key")),
    )
    .where(Delivery.id == bindparam("delivery_id"))
)


def hit_target(
    db: Session | Connection, delivery_id: int, link_key: str | None = None
) -> HitTarget | None:
    """The delivery a pixel or click names (None if there is no such delivery)."""
    row = (
        _connection(db)
        .execute(_HIT_TARGET, {"delivery_id": delivery_id, "link_key": link_key})
        .first()
    )
    if row is None:
        return None
    info = DeliveryInfo(row[0], row[1], row[2], row[3], bool(row[4]), row[7])
    return HitTarget(info, row[5], row[6])


# --- a reader's own record ------------------------------------------------------------------


def reader_votes(session: Session, subscriber_id: int) -> list[tuple[str, int, int, int]]:
    """A subscriber's own (people's, not machines') votes: (issue week, tool voted, panel ship %
    of tool 0, of tool 1), oldest issue first."""
    first = MatchupTool.__table__.alias("first_tool")
    second = MatchupTool.__table__.alias("second_tool")
    stmt = (
        select(Issue.week, Vote.tool, first.c.panel_ship_pct, second.c.panel_ship_pct)
        .join(Delivery, Delivery.id == Vote.delivery_id)
        .join(Issue, Issue.id == Delivery.issue_id)
        .join(first, and_(first.c.matchup_id == Vote.matchup_id, first.c.position == 0))
        .join(second, and_(second.c.matchup_id == Vote.matchup_id, second.c.position == 1))
        .where(Vote.subscriber_id == subscriber_id, Vote.machine.is_(False))
        .order_by(Issue.week, Vote.matchup_id)
    )
    return [(week, tool, a, b) for week, tool, a, b in session.execute(stmt)]


# --- who reads ------------------------------------------------------------------------------

# What only a reader does: a person's open (a proxy's or a scanner's is flagged machine), a
# click, a vote.
_READING = (EventType.OPENED, EventType.CLICKED, EventType.VOTED)


def silent_in_all(session: Session, issue_ids: Sequence[int]) -> list[int]:
    """Subscribers sent every one of these issues who left no person's open, click or vote on
    any of them."""
    if not issue_ids:
        return []
    read = (
        select(TrackingEvent.delivery_id)
        .where(
            TrackingEvent.delivery_id == Delivery.id,
            TrackingEvent.type.in_(_READING),
            TrackingEvent.machine.is_(False),
        )
        .exists()
    )
    stmt = (
        select(Delivery.subscriber_id)
        .where(
            Delivery.issue_id.in_(list(issue_ids)),
            Delivery.subscriber_id.is_not(None),
            Delivery.status == DeliveryStatus.SENT,
        )
        .group_by(Delivery.subscriber_id)
        .having(func.count(distinct(Delivery.issue_id)) == len(set(issue_ids)))
        .having(func.sum(case((read, 1), else_=0)) == 0)
    )
    return [int(s) for s in session.scalars(stmt) if s is not None]


def last_read(
    session: Session, subscriber_ids: Sequence[int], since: datetime
) -> dict[int, datetime]:
    """When each of `subscriber_ids` last opened (as a person), clicked or voted, if since
    `since`."""
    if not subscriber_ids:
        return {}
    stmt = (
        select(Delivery.subscriber_id, func.max(TrackingEvent.occurred_at))
        .join(TrackingEvent, TrackingEvent.delivery_id == Delivery.id)
        .where(
            Delivery.subscriber_id.in_(sorted(set(subscriber_ids))),
            TrackingEvent.type.in_(_READING),
            TrackingEvent.machine.is_(False),
            TrackingEvent.occurred_at >= since,
        )
        .group_by(Delivery.subscriber_id)
    )
    return {int(s): at for s, at in session.execute(stmt) if s is not None and at is not None}


def readers_select(issue_ids: Sequence[int], kinds: Sequence[str]) -> Any:
    """The ids of subscribers with a first of one of `kinds` (rollups' names: clicked:h...) on
    their delivery of one of these issues: found through the firsts' primary key (issue, kind,
    delivery), so it costs what those readers are, not what the list is."""
    return (
        select(Delivery.subscriber_id)
        .select_from(TrackingFirst)
        .join(Delivery, Delivery.id == TrackingFirst.delivery_id)
        .where(
            TrackingFirst.issue_id.in_(list(issue_ids)),
            TrackingFirst.kind.in_(list(kinds)),
            Delivery.subscriber_id.is_not(None),
        )
    )


def readers_by_subject(
    session: Session, issue_id: int, kinds: dict[str, Sequence[str]], split_at: datetime | None
) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, int]]]:
    """Per subject of the issue's subject test (deliveries.subject): how many deliveries have a
    first of each group of `kinds` (a name -> the rollups' kinds it counts, one delivery once
    per name), (of all of them, of those made before `split_at`: the test's share). One pass
    over the issue's firsts of those kinds; with no `split_at` the two are the same."""
    counted: list[ColumnElement[Any]] = []
    for group in kinds.values():
        among = TrackingFirst.kind.in_(list(group))
        counted.append(func.count(distinct(case((among, TrackingFirst.delivery_id)))))
        if split_at is not None:
            early = and_(among, Delivery.created_at < split_at)
            counted.append(func.count(distinct(case((early, TrackingFirst.delivery_id)))))
    every_kind = sorted({kind for group in kinds.values() for kind in group})
    query = (
        select(Delivery.subject, *counted)
        .select_from(TrackingFirst)
        .join(Delivery, Delivery.id == TrackingFirst.delivery_id)
        .where(
            TrackingFirst.issue_id == issue_id,
            TrackingFirst.kind.in_(every_kind),
            Delivery.issue_id == issue_id,
            Delivery.subject.is_not(None),
        )
        .group_by(Delivery.subject)
    )
    step = 1 if split_at is None else 2
    every: dict[int, dict[str, int]] = {}
    share: dict[int, dict[str, int]] = {}
    for number, *values in session.execute(query):
        if number is None:  # not selected (the WHERE): for the type checker
            continue
        for index, name in enumerate(kinds):
            whole, early = values[index * step], values[index * step + step - 1]
            if whole:
                every.setdefault(int(number), {})[name] = int(whole)
            if early:
                share.setdefault(int(number), {})[name] = int(early)
    return every, share

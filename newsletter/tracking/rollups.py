"""An issue's figures kept as its events arrive, so reading them costs the same at 6,000,000
events as at 60,000: all the SQL on `tracking_firsts` and `tracking_rollups`.

A unique figure counts deliveries, not events. `tracking_firsts` holds one row per (issue,
kind, delivery): the first time that delivery did that thing. A batch of events inserts its
firsts with ON CONFLICT DO NOTHING ... RETURNING; only the rows really inserted add to the
counts (`tracking_rollups`, one row per (issue, kind), incremented with ON CONFLICT DO UPDATE
SET n = n + excluded.n). Both statements are safe under concurrency on PostgreSQL (a second
transaction inserting the same first waits for the first one and then does nothing) and on
SQLite (one writer at a time). A replayed webhook event is never handed here (ingest stores
it once by sg_event_id); a second open by the same person finds its first already there.

Kinds (`kind` column, the same in both tables):
- `<event type>:h` / `<event type>:m`: deliveries with a person's / a machine's event of
  that type (delivered:h, opened:m, complained:h, unsubscribed:h, voted:h, ...; not for
  processed, deferred and the like, which no figure reads)
- `bounced_as:<SendGrid type>`: deliveries that bounced, per SendGrid's kind (bounce, blocked)
- `click_link:<key>`, `click_matchup:<id>`: deliveries a person clicked from, per link/matchup
- `since:<resumed at>:bounce|complained`: the reputation check's counts since an editor
  resumed the send (only what arrived after counts, newsletter/sending guard_reputation)
- `variant:<mask>:<kind>` (rollups only), for the kinds of `VARIANT_KINDS`: the same figure
  among the readers of one variant (issue_variants.mask: the topics they chose, issue 17),
  counted when the delivery's first is; readers of the whole issue have no variant and are
  the issue's figure less its variants'
- `open_hour:<YYYY-MM-DDTHH>` (rollups only): deliveries whose first person's open fell in
  that UTC hour. An open that arrives late but happened earlier (SendGrid's events come in any
  order) moves its delivery's first open, and so its hour.

Everything is written in the transaction of the events that cause it. Erasure keeps events
and deliveries (anonymous), so it changes no figure. `check` recounts from the events and
`repair` rewrites an issue's rows from that recount (after a retention run or a bug).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.orm import unnest_insert
from newsletter.sending.models import Delivery
from newsletter.tracking.models import EventType, TrackingEvent, TrackingFirst, TrackingRollup

FIRSTS: Table = TrackingFirst.__table__  # type: ignore[assignment]
ROLLUPS: Table = TrackingRollup.__table__  # type: ignore[assignment]
OPENED_H = f"{EventType.OPENED.value}:h"
OPEN_HOUR = "open_hour:"


# The figures kept per variant too (stats per topic): a person's delivery, open, click, vote
# and unsubscribe.
VARIANT_KINDS = frozenset(
    f"{t.value}:h"
    for t in (
        EventType.DELIVERED,
        EventType.OPENED,
        EventType.CLICKED,
        EventType.VOTED,
        EventType.UNSUBSCRIBED,
    )
)
VARIANT = "variant:"


def variant_kind(mask: int, kind: str) -> str:
    return f"{VARIANT}{mask}:{kind}"


def hour_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H")


def since_key(resumed_at: datetime) -> str:
    return resumed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


# The event types whose deliveries are counted. SendGrid's processed and deferred events are
# a third of a webhook's traffic and no figure reads them: no firsts for them.
COUNTED = (
    EventType.DELIVERED,
    EventType.BOUNCED,
    EventType.DROPPED,
    EventType.OPENED,
    EventType.CLICKED,
    EventType.COMPLAINED,
    EventType.UNSUBSCRIBED,
    EventType.VOTED,
)
_COUNTED = frozenset(COUNTED)


def _kinds(event: Mapping[str, Any], resumed_at: datetime | None) -> Iterable[str]:
    event_type = EventType(event["type"])
    if event_type not in _COUNTED:
        return
    machine = bool(event.get("machine"))
    yield f"{event_type.value}:{'m' if machine else 'h'}"
    provider_type = event.get("provider_type") or ""
    if event_type is EventType.BOUNCED:
        yield f"bounced_as:{provider_type}"
    if event_type is EventType.CLICKED and not machine:
        if event.get("link_key") is not None:
            yield f"click_link:{event['link_key']}"
        if event.get("matchup_id") is not None:
            yield f"click_matchup:{event['matchup_id']}"
    received_at = event.get("received_at")
    if resumed_at is not None and received_at is not None and received_at >= resumed_at:
        if event_type is EventType.BOUNCED and provider_type == "bounce":
            yield f"since:{since_key(resumed_at)}:bounce"
        if event_type is EventType.COMPLAINED and not machine:
            yield f"since:{since_key(resumed_at)}:complained"


def _dialect(db: Connection) -> Any:
    return postgresql if db.dialect.name == "postgresql" else sqlite


def roll_up(
    db: Connection,
    events: Sequence[Mapping[str, Any]],
    resumed_at: Mapping[int, datetime | None] | None = None,
) -> None:
    """Count these newly stored events into their issues' figures (same transaction)."""
    firsts: dict[tuple[int, str, int], datetime] = {}
    for event in events:
        delivery_id, issue_id = event.get("delivery_id"), event.get("issue_id")
        if delivery_id is None or issue_id is None:
            continue
        at = event["occurred_at"]
        for kind in _kinds(event, (resumed_at or {}).get(issue_id)):
            key = (issue_id, kind, delivery_id)
            if key not in firsts or at < firsts[key]:
                firsts[key] = at
    if not firsts:
        return
    # Sorted: concurrent batches on PostgreSQL take their row locks in the same order.
    keys = sorted(firsts)
    inserted = _insert_firsts(db, [(key, firsts[key]) for key in keys])
    deltas: Counter[tuple[int, str]] = Counter()
    for issue_id, kind, delivery_id in inserted:
        deltas[(issue_id, kind)] += 1
        if kind == OPENED_H:
            deltas[(issue_id, OPEN_HOUR + hour_of(firsts[(issue_id, kind, delivery_id)]))] += 1
    per_variant = [key for key in inserted if key[1] in VARIANT_KINDS]
    if per_variant:
        variants = _variants(db, {delivery_id for _, _, delivery_id in per_variant})
        for issue_id, kind, delivery_id in per_variant:
            mask = variants.get(delivery_id)
            if mask is not None:
                deltas[(issue_id, variant_kind(mask, kind))] += 1
    _move_earlier_opens(
        db, [k for k in keys if k[1] == OPENED_H and k not in inserted], firsts, deltas
    )
    _add(db, deltas)


def _variants(db: Connection, delivery_ids: set[int]) -> dict[int, int]:
    """The variant of each of these deliveries that has one (one indexed read per batch, of
    the deliveries whose first counted just now)."""
    rows = db.execute(
        select(Delivery.id, Delivery.variant).where(
            Delivery.id.in_(sorted(delivery_ids)), Delivery.variant.is_not(None)
        )
    )
    return {int(delivery_id): int(mask) for delivery_id, mask in rows if mask is not None}


# Rows per INSERT: 4 parameters each, far below SQLite's 32,766 and PostgreSQL's 65,535.
_FIRSTS_PER_STATEMENT = 1000


def _insert_firsts(
    db: Connection, rows: Sequence[tuple[tuple[int, str, int], datetime]]
) -> set[tuple[int, str, int]]:
    """Insert these firsts where there are none yet; the keys really inserted.

    One multi-row INSERT built here rather than an executemany of the Core statement: this runs
    for every webhook POST and every group of pixel hits, and SQLAlchemy's per-row parameter
    processing cost more than the INSERT itself (bench.webhook)."""
    if db.dialect.name != "sqlite":
        # One statement of four arrays, whatever the number of rows (orm.unnest_insert).
        stored = unnest_insert(
            db,
            FIRSTS,
            [
                {"issue_id": i, "kind": k, "delivery_id": d, "first_at": at}
                for (i, k, d), at in rows
            ],
            "ON CONFLICT DO NOTHING RETURNING issue_id, kind, delivery_id",
        )
        return {(int(i), str(k), int(d)) for i, k, d in map(tuple, stored)}
    # SQLite: multi-row VALUES lists, a thousand rows each.
    inserted: set[tuple[int, str, int]] = set()
    for start in range(0, len(rows), _FIRSTS_PER_STATEMENT):
        part = rows[start : start + _FIRSTS_PER_STATEMENT]
        params: list[Any] = []
        for (issue_id, kind, delivery_id), at in part:
            params += (issue_id, kind, delivery_id, _sqlite_time(at))
        values = ", ".join(["(?, ?, ?, ?)"] * len(part))
        result = db.exec_driver_sql(
            "INSERT INTO tracking_firsts (issue_id, kind, delivery_id, first_at) VALUES "
            + values
            + " ON CONFLICT DO NOTHING RETURNING issue_id, kind, delivery_id",
            tuple(params),
        )
        inserted.update((int(i), str(k), int(d)) for i, k, d in result)
    return inserted


def _sqlite_time(at: datetime) -> str:
    # What SQLAlchemy's SQLite DateTime stores (UTCDateTime: UTC, no offset), so the column
    # reads back, compares and sorts the same whoever wrote it.
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _move_earlier_opens(
    db: Connection,
    known: list[tuple[int, str, int]],
    firsts: Mapping[tuple[int, str, int], datetime],
    deltas: Counter[tuple[int, str]],
) -> None:
    """A person's open that happened before the first one stored moves that delivery's hour."""
    by_issue: dict[int, list[int]] = {}
    for issue_id, _, delivery_id in known:
        by_issue.setdefault(issue_id, []).append(delivery_id)
    for issue_id, delivery_ids in by_issue.items():
        stmt = select(FIRSTS.c.delivery_id, FIRSTS.c.first_at).where(
            FIRSTS.c.issue_id == issue_id,
            FIRSTS.c.kind == OPENED_H,
            FIRSTS.c.delivery_id.in_(delivery_ids),
        )
        stmt = stmt.order_by(FIRSTS.c.delivery_id)
        if db.dialect.name == "postgresql":
            # Locked, and read as committed by whoever held it: the hour moved is the one stored.
            stmt = stmt.with_for_update()
        moved = []
        for delivery_id, stored in db.execute(stmt):
            new = firsts[(issue_id, OPENED_H, delivery_id)]
            if new < stored:
                moved.append({"i": issue_id, "d": delivery_id, "at": new})
                deltas[(issue_id, OPEN_HOUR + hour_of(stored))] -= 1
                deltas[(issue_id, OPEN_HOUR + hour_of(new))] += 1
        if moved:
            db.execute(
                update(FIRSTS)
                .where(
                    FIRSTS.c.issue_id == bindparam("i"),
                    FIRSTS.c.kind == OPENED_H,
                    FIRSTS.c.delivery_id == bindparam("d"),
                )
                .values(first_at=bindparam("at")),
                moved,
            )


def _add(db: Connection, deltas: Mapping[tuple[int, str], int]) -> None:
    rows = [
        {"issue_id": issue_id, "kind": kind, "n": n}
        for (issue_id, kind), n in sorted(deltas.items())
        if n
    ]
    if not rows:
        return
    stmt = _dialect(db).insert(ROLLUPS)
    db.execute(
        stmt.on_conflict_do_update(
            index_elements=[ROLLUPS.c.issue_id, ROLLUPS.c.kind],
            set_={"n": ROLLUPS.c.n + stmt.excluded.n},
        ),
        rows,
    )


# --- reading --------------------------------------------------------------------------------


def figures(session: Session, issue_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Every kept figure of these issues (one range read of the primary key per issue)."""
    out: dict[int, dict[str, int]] = {i: {} for i in issue_ids}
    if not issue_ids:
        return out
    rows = session.execute(
        select(ROLLUPS.c.issue_id, ROLLUPS.c.kind, ROLLUPS.c.n).where(
            ROLLUPS.c.issue_id.in_(list(issue_ids))
        )
    )
    for issue_id, kind, n in rows:
        if n:
            out[issue_id][kind] = int(n)
    return out


# --- the recount ----------------------------------------------------------------------------


def _kind_selects(issue_id: int, resumed_at: datetime | None) -> list[Any]:
    """(kind, delivery_id, first occurred_at) of every first the issue's events hold, one
    SELECT per family of kinds."""
    e = TrackingEvent
    base = and_(e.issue_id == issue_id, e.delivery_id.is_not(None))
    first = func.min(e.occurred_at)
    flag = case((e.machine.is_(True), ":m"), else_=":h")
    selects = [
        select(cast(e.type, String(32)) + flag, e.delivery_id, first)
        .where(base, e.type.in_(COUNTED))
        .group_by(e.type, e.machine, e.delivery_id),
        select(literal("bounced_as:") + e.provider_type, e.delivery_id, first)
        .where(base, e.type == EventType.BOUNCED)
        .group_by(e.provider_type, e.delivery_id),
        select(literal("click_link:") + e.link_key, e.delivery_id, first)
        .where(base, e.type == EventType.CLICKED, e.machine.is_(False), e.link_key.is_not(None))
        .group_by(e.link_key, e.delivery_id),
        select(literal("click_matchup:") + cast(e.matchup_id, String(32)), e.delivery_id, first)
        .where(base, e.type == EventType.CLICKED, e.machine.is_(False), e.matchup_id.is_not(None))
        .group_by(e.matchup_id, e.delivery_id),
    ]
    if resumed_at is not None:
        key = since_key(resumed_at)
        since = and_(base, e.received_at >= resumed_at)
        selects += [
            select(literal(f"since:{key}:bounce"), e.delivery_id, first)
            .where(since, e.type == EventType.BOUNCED, e.provider_type == "bounce")
            .group_by(e.delivery_id),
            select(literal(f"since:{key}:complained"), e.delivery_id, first)
            .where(since, e.type == EventType.COMPLAINED, e.machine.is_(False))
            .group_by(e.delivery_id),
        ]
    return selects


def _variant_select(issue_id: int) -> Any:
    """(variant kind, delivery_id, first occurred_at) of the readers of each variant, from the
    events and the deliveries' variants: the recount of the `variant:` figures."""
    e, d = TrackingEvent, Delivery
    types = [EventType(kind.split(":")[0]) for kind in sorted(VARIANT_KINDS)]
    kind = literal(VARIANT) + cast(d.variant, String(32)) + ":" + cast(e.type, String(32)) + ":h"
    return (
        select(kind, e.delivery_id, func.min(e.occurred_at))
        .join(d, d.id == e.delivery_id)
        .where(
            e.issue_id == issue_id,
            d.variant.is_not(None),
            e.machine.is_(False),
            e.type.in_(types),
        )
        .group_by(d.variant, e.type, e.delivery_id)
    )


def recount(session: Session, issue_id: int, resumed_at: datetime | None) -> dict[str, int]:
    """What the figures should be, counted from the issue's events (a scan of them all)."""
    counts: Counter[str] = Counter()
    for stmt in [*_kind_selects(issue_id, resumed_at), _variant_select(issue_id)]:
        kind = next(iter(stmt.subquery().c))
        for k, n in session.execute(select(kind, func.count()).group_by(kind)):
            counts[str(k)] += int(n)
    e = TrackingEvent
    first_opens = (
        select(func.min(e.occurred_at))
        .where(
            e.issue_id == issue_id,
            e.delivery_id.is_not(None),
            e.type == EventType.OPENED,
            e.machine.is_(False),
        )
        .group_by(e.delivery_id)
    )
    for at in session.scalars(first_opens):
        counts[OPEN_HOUR + hour_of(_aware(at))] += 1
    return {k: n for k, n in counts.items() if n}


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def repair(
    session: Session, issue_id: int, resumed_at: datetime | None, *, variants: bool = True
) -> None:
    """Rewrite the issue's firsts and figures from its events. `variants=False`: for an older
    schema (the upgrade to 0009), whose deliveries have no variant yet."""
    session.execute(delete(FIRSTS).where(FIRSTS.c.issue_id == issue_id))
    session.execute(delete(ROLLUPS).where(ROLLUPS.c.issue_id == issue_id))
    for stmt in _kind_selects(issue_id, resumed_at):
        sub = stmt.subquery()
        session.execute(
            FIRSTS.insert().from_select(
                ["issue_id", "kind", "delivery_id", "first_at"],
                select(literal(issue_id), *sub.c),
            )
        )
    session.execute(
        ROLLUPS.insert().from_select(
            ["issue_id", "kind", "n"],
            select(FIRSTS.c.issue_id, FIRSTS.c.kind, func.count())
            .where(FIRSTS.c.issue_id == issue_id)
            .group_by(FIRSTS.c.issue_id, FIRSTS.c.kind),
        )
    )
    hours: Counter[tuple[int, str]] = Counter()
    for (at,) in session.execute(
        select(FIRSTS.c.first_at).where(FIRSTS.c.issue_id == issue_id, FIRSTS.c.kind == OPENED_H)
    ):
        hours[(issue_id, OPEN_HOUR + hour_of(_aware(at)))] += 1
    # The variants' figures, from the firsts just written and the deliveries' variants.
    if variants:
        per_variant = session.execute(
            select(Delivery.variant, FIRSTS.c.kind, func.count())
            .join(Delivery, Delivery.id == FIRSTS.c.delivery_id)
            .where(
                FIRSTS.c.issue_id == issue_id,
                FIRSTS.c.kind.in_(sorted(VARIANT_KINDS)),
                Delivery.variant.is_not(None),
            )
            .group_by(Delivery.variant, FIRSTS.c.kind)
        )
        for mask, kind, n in per_variant:
            hours[(issue_id, variant_kind(int(mask), str(kind)))] += int(n)
    _add(session.connection(), hours)


@dataclass(frozen=True, slots=True)
class Reputation:
    hard_bounces: int
    complaints: int


def reputation(session: Session, issue_id: int, resumed_at: datetime | None) -> Reputation:
    """Hard bounces and people's spam complaints of the issue's send, each delivery once; only
    those that arrived after `resumed_at` when an editor resumed the send."""
    if resumed_at is None:
        bounce, complained = "bounced_as:bounce", f"{EventType.COMPLAINED.value}:h"
    else:
        bounce = f"since:{since_key(resumed_at)}:bounce"
        complained = f"since:{since_key(resumed_at)}:complained"
    n = figures(session, [issue_id])[issue_id]
    return Reputation(n.get(bounce, 0), n.get(complained, 0))

"""How long tracking keeps the detail of an event: SendGrid's raw payload (it carries the
address), the user agent and the provider's detail text go after
NEWSLETTER_EVENT_DETAIL_RETENTION_DAYS; the facts stay (type, times, delivery, issue, link,
matchup, human or machine, the provider's event id that keeps ingestion idempotent, the address
hash erasure looks events up by). Every number, export and history reads the facts only.

Cleared in id order, in batches, each its own transaction with the id it reached
(`instance_state`, `event_detail_cleared_through`): a run interrupted anywhere leaves every
batch either wholly cleared and counted or untouched, and the next run goes on from there
instead of scanning the year already cleared. A batch stops at the first event still young
(ids grow with arrival time), so a run reads each old row once and each young one at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, null, or_, select, update
from sqlalchemy.orm import Session

from newsletter.instance import get_value, set_value
from newsletter.tracking.models import TrackingEvent

CLEARED_THROUGH = "event_detail_cleared_through"


@dataclass(frozen=True)
class DetailBatch:
    cleared: int  # events whose detail went
    reached: int  # the highest id looked at: every older id is done
    finished: bool  # nothing older than the cut is left after `reached`


def _has_detail() -> object:
    return or_(
        TrackingEvent.raw.is_not(None),
        TrackingEvent.user_agent.is_not(None),
        TrackingEvent.detail.is_not(None),
    )


def cleared_through(session: Session) -> int:
    value = get_value(session, CLEARED_THROUGH)
    return int(value) if value is not None and value.isdigit() else 0


def clear_old_detail(session: Session, *, before: datetime, limit: int) -> DetailBatch:
    """Clear the detail of up to `limit` events received before `before`, the oldest first,
    and remember how far it got, in the caller's transaction (one batch: commit it)."""
    after = cleared_through(session)
    rows = session.execute(
        select(TrackingEvent.id, TrackingEvent.received_at)
        .where(TrackingEvent.id > after)
        .order_by(TrackingEvent.id)
        .limit(limit)
    ).all()
    old = 0
    for _, received_at in rows:
        if received_at >= before:
            break
        old += 1
    if old == 0:
        return DetailBatch(0, after, True)
    reached = int(rows[old - 1][0])
    result = session.execute(
        update(TrackingEvent)
        .where(TrackingEvent.id > after, TrackingEvent.id <= reached)
        .where(_has_detail())  # type: ignore[arg-type]
        .values(raw=null(), user_agent=None, detail=None)  # null(): None would store JSON 'null'
        .execution_options(synchronize_session=False)
    )
    set_value(session, CLEARED_THROUGH, str(reached))
    finished = old < len(rows) or len(rows) < limit
    return DetailBatch(int(result.rowcount or 0), reached, finished)  # type: ignore[attr-defined]


def old_detail_count(session: Session, *, before: datetime) -> int:
    """How many events a run would clear now (for `--dry-run`); reads only."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(TrackingEvent)
            .where(TrackingEvent.id > cleared_through(session))
            .where(TrackingEvent.received_at < before)
            .where(_has_detail())  # type: ignore[arg-type]
        )
        or 0
    )

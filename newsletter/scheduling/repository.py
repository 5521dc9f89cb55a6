"""All SQL about scheduler runs (and the one read-only question the scheduler asks of issues).

Every state change here is conditional (a unique key or an UPDATE … WHERE on the current
state), so two schedulers sharing one database never both act on the same run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.scheduling.models import RunStatus, SchedulerRun


def get_run(session: Session, run_key: str) -> SchedulerRun | None:
    return session.scalars(select(SchedulerRun).where(SchedulerRun.run_key == run_key)).first()


def _insert(session: Session, run: SchedulerRun) -> bool:
    # A savepoint keeps the caller's transaction usable when the key is already taken. On
    # PostgreSQL a concurrent INSERT of the same key waits for the first to commit, then fails.
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        # The savepoint's rollback already expunged the pending row.
        if run in session:
            session.expunge(run)
        return False
    return True


def claim_run(
    session: Session, *, run_key: str, week: str, slot_at: datetime, worker: str, now: datetime
) -> SchedulerRun | None:
    """Insert the run as running; None when another scheduler already holds the key."""
    run = SchedulerRun(
        run_key=run_key,
        week=week,
        slot_at=slot_at,
        status=RunStatus.RUNNING,
        claimed_by=worker,
        attempts=1,
        started_at=now,
    )
    return run if _insert(session, run) else None


def record_missed(
    session: Session, *, run_key: str, week: str, slot_at: datetime, now: datetime, detail: str
) -> bool:
    """Record a slot that passed while nobody ran it; False when it is already recorded."""
    run = SchedulerRun(
        run_key=run_key,
        week=week,
        slot_at=slot_at,
        status=RunStatus.MISSED,
        claimed_by="",
        attempts=0,
        started_at=now,
        finished_at=now,
        detail=detail,
        settled_at=now,
    )
    return _insert(session, run)


def reclaim_run(
    session: Session,
    *,
    run_key: str,
    worker: str,
    now: datetime,
    stale_before: datetime,
    retry_before: datetime,
    max_attempts: int,
    dead_holder: str | None = None,
) -> SchedulerRun | None:
    """Take over a run whose scheduler died mid-way, or retry a failed one, at most once each
    time: the WHERE on the state it was read in makes a second taker update nothing.

    A run still held by `dead_holder` (a scheduler known to have died) is taken at once rather
    than after `stale_before`."""
    running = SchedulerRun.status == RunStatus.RUNNING
    abandoned = SchedulerRun.started_at < stale_before
    if dead_holder is not None:
        abandoned = abandoned | (SchedulerRun.claimed_by == dead_holder)
    stmt = (
        update(SchedulerRun)
        .where(SchedulerRun.run_key == run_key)
        .where(SchedulerRun.attempts < max_attempts)
        .where(
            (running & abandoned)
            | (
                (SchedulerRun.status == RunStatus.FAILED)
                & (SchedulerRun.finished_at < retry_before)
            )
        )
        .values(
            status=RunStatus.RUNNING,
            claimed_by=worker,
            started_at=now,
            finished_at=None,
            attempts=SchedulerRun.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
        return None
    run = get_run(session, run_key)
    if run is not None:
        session.refresh(run)
    return run


def finish_run(
    session: Session,
    run_id: int,
    *,
    worker: str,
    status: RunStatus,
    now: datetime,
    detail: str,
    issue_id: int | None = None,
    send_at: datetime | None = None,
    settled: bool = False,
) -> bool:
    """Close a run this worker holds; False if it was taken over meanwhile (then the other
    scheduler's result stands)."""
    stmt = (
        update(SchedulerRun)
        .where(SchedulerRun.id == run_id)
        .where(SchedulerRun.status == RunStatus.RUNNING)
        .where(SchedulerRun.claimed_by == worker)
        .values(
            status=status,
            finished_at=now,
            detail=detail,
            issue_id=issue_id,
            send_at=send_at,
            settled_at=now if settled else None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]


def planned_sends(session: Session, now: datetime) -> list[SchedulerRun]:
    """Runs whose issue is planned to go by now and has not left the waiting states yet."""
    stmt = (
        select(SchedulerRun)
        .where(SchedulerRun.status == RunStatus.DONE)
        .where(SchedulerRun.issue_id.is_not(None))
        .where(SchedulerRun.settled_at.is_(None))
        .where(SchedulerRun.send_at <= now)
        .order_by(SchedulerRun.send_at, SchedulerRun.id)
    )
    return list(session.scalars(stmt))


def planned_send_for(session: Session, issue_id: int) -> datetime | None:
    """When the weekly run plans this issue to go (the editor's page shows it), if it still
    waits for that time."""
    stmt = (
        select(SchedulerRun.send_at)
        .where(SchedulerRun.issue_id == issue_id)
        .where(SchedulerRun.settled_at.is_(None))
        .where(SchedulerRun.send_at.is_not(None))
        .order_by(SchedulerRun.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


SEEN_AT = "scheduler_seen_at"
REENGAGED_AT = "reengagement_ran_at"


def _moment(session: Session, name: str) -> datetime | None:
    """A time kept in instance_state (None: never, or not a time)."""
    from newsletter.instance import get_value

    value = get_value(session, name)
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _mark(session: Session, name: str, now: datetime) -> None:
    from newsletter.instance import set_value

    set_value(session, name, now.isoformat())


def mark_seen(session: Session, now: datetime) -> None:
    """A running scheduler says so every tick; the web app warns when none has for a while."""
    _mark(session, SEEN_AT, now)


def last_seen(session: Session) -> datetime | None:
    return _moment(session, SEEN_AT)


def settle(session: Session, run_id: int, *, now: datetime, detail: str) -> bool:
    stmt = (
        update(SchedulerRun)
        .where(SchedulerRun.id == run_id)
        .where(SchedulerRun.settled_at.is_(None))
        .values(settled_at=now, detail=SchedulerRun.detail + "; " + detail)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]


MAINTAINED_AT = "maintenance_ran_at"


def claim_daily(session: Session, name: str, now: datetime, every: timedelta) -> bool:
    """Claim a job done at most once per `every` across every scheduler: a compare-and-set on
    the time it last ran, so of two schedulers ticking together one wins, the other skips."""
    from newsletter.instance import compare_and_set, get_value

    last = get_value(session, name)
    if last is not None:
        try:
            if now - datetime.fromisoformat(last) < every:
                return False
        except (ValueError, TypeError):
            pass  # not a time: claim it over
    return compare_and_set(session, name, last, now.isoformat())

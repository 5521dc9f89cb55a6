"""`newsletter maintenance`: tracking events older than the retention lose their raw payload,
user agent and provider detail, the facts stay; stale limiter rows go; a crash between batches
leaves nothing half-done and a rerun finishes; the scheduler runs it once a day, once across
two schedulers."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app as cli
from newsletter.db import transaction
from newsletter.instance import get_value
from newsletter.limits import AttemptCounter
from newsletter.people.export import personal_data
from newsletter.people.history import history
from newsletter.scheduling import maintenance
from newsletter.scheduling.clock import ManualClock
from newsletter.scheduling.runner import Scheduler
from newsletter.settings import get_settings
from newsletter.tracking.models import EventType, TrackingEvent
from newsletter.tracking.stats import issue_stats
from newsletter.web.ratelimit import AttemptLimiter
from subscribers.models import Subscriber
from tests.support import arrange

NOW = datetime(2027, 3, 3, 12, 0, tzinfo=UTC)  # a Wednesday: no weekly slot near
OLD = NOW - timedelta(days=120)
YOUNG = NOW - timedelta(days=10)
runner = CliRunner()

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"


def _events(delivery: int, issue: int, at: datetime, n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        kind = [EventType.DELIVERED, EventType.OPENED, EventType.CLICKED][i % 3]
        rows.append(
            {
                "type": kind,
                "source": "sendgrid" if kind is EventType.DELIVERED else "first_party",
                "provider_event_id": f"sg-{delivery}-{at:%j}-{i}"
                if kind is EventType.DELIVERED
                else None,
                "provider_type": "delivered" if kind is EventType.DELIVERED else "",
                "delivery_id": delivery,
                "issue_id": issue,
                "link_key": "m0" if kind is EventType.CLICKED else None,
                "machine": i % 2 == 1,
                "occurred_at": at + timedelta(seconds=i),
                "received_at": at + timedelta(seconds=i),
                "user_agent": UA if kind is not EventType.DELIVERED else None,
                "detail": "250 2.0.0 OK reader@example.com"
                if kind is EventType.DELIVERED
                else None,
                "raw": {"email": "reader@example.com", "event": "delivered", "ip": "203.0.113.9"}
                if kind is EventType.DELIVERED
                else None,
            }
        )
    return rows


@pytest.fixture
def events(db: Session) -> dict[str, Any]:
    """Three readers of an issue sent 200 days ago; each has 30 old events and 30 young ones
    (ids in arrival order, as the service writes them)."""
    sent = arrange.add_sent_issue(db, readers=3, sent_at=NOW - timedelta(days=200))
    for when in (OLD, YOUNG):
        for delivery in sent.deliveries:
            db.execute(insert(TrackingEvent), _events(delivery, sent.issue_id, when, 30))
    db.commit()
    return {"sent": sent}


def _facts(db: Session) -> list[tuple[Any, ...]]:
    db.rollback()
    return list(
        db.execute(
            select(
                TrackingEvent.id,
                TrackingEvent.type,
                TrackingEvent.delivery_id,
                TrackingEvent.issue_id,
                TrackingEvent.link_key,
                TrackingEvent.machine,
                TrackingEvent.occurred_at,
                TrackingEvent.provider_event_id,
            ).order_by(TrackingEvent.id)
        )
    )


def _with_detail(db: Session) -> tuple[int, int]:
    """(old events with any detail left, young events with any detail left)."""
    db.rollback()
    rows = db.execute(
        select(TrackingEvent.received_at).where(
            (TrackingEvent.raw.is_not(None))
            | (TrackingEvent.user_agent.is_not(None))
            | (TrackingEvent.detail.is_not(None))
        )
    ).all()
    cut = NOW - timedelta(days=90)
    return sum(r < cut for (r,) in rows), sum(r >= cut for (r,) in rows)


def _person(db: Session) -> tuple[Any, Any]:
    subscriber = db.scalars(select(Subscriber).order_by(Subscriber.id)).first()
    assert subscriber is not None
    export = personal_data(db, subscriber)
    return export["events"], history(db, subscriber.id)["events"]


def test_old_events_lose_their_detail_the_facts_and_numbers_stay(
    db: Session, events: dict[str, Any]
) -> None:
    issue = events["sent"].issue_id
    facts, numbers, person = _facts(db), issue_stats(db, issue), _person(db)
    assert _with_detail(db) == (90, 90)

    done = maintenance.run(NOW, batch_size=7)

    assert done.events_cleared == 90
    assert _with_detail(db) == (0, 90)  # the young keep theirs
    assert _facts(db) == facts
    assert issue_stats(db, issue) == numbers
    assert _person(db) == person  # the export and the admin's history read the facts
    # A second run finds nothing more to do and reads no old row again.
    again = maintenance.run(NOW, batch_size=7)
    assert again.events_cleared == 0 and again.event_batches == 1


def test_the_cli_dry_run_counts_and_changes_nothing_then_the_run_clears(
    db: Session, events: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cut is relative to now: these events are 120 and 10 days old.
    monkeypatch.setattr("newsletter.orm.utcnow", lambda: NOW)
    dry = runner.invoke(cli, ["maintenance", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.output)
    assert report["dry_run"] is True and report["events_cleared"] == 90
    assert _with_detail(db) == (90, 90)
    real = runner.invoke(cli, ["maintenance", "--batch-size", "50"])
    assert real.exit_code == 0, real.output
    assert "cleared the raw payload, user agent and provider detail of 90 events" in real.output
    assert "attempt limits: deleted 0 rows" in real.output
    assert _with_detail(db) == (0, 90)
    for bad in (["--batch-size", "0"], ["--batch-size", str(2**63)], ["--batch-size", "x"]):
        refused = runner.invoke(cli, ["maintenance", *bad])
        assert refused.exit_code == 2, refused.output
        assert "Traceback" not in refused.output


def test_a_crash_between_batches_leaves_whole_batches_and_a_rerun_finishes(
    db: Session, events: dict[str, Any]
) -> None:
    facts = _facts(db)
    calls = 0

    def crash() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("killed between batches")

    with pytest.raises(RuntimeError, match="killed"):
        maintenance.run(NOW, batch_size=20, between_batches=crash)
    # Two batches of 20 committed, whole, and the point reached with them.
    ids = [row[0] for row in facts]
    with transaction() as session:
        reached = int(get_value(session, "event_detail_cleared_through") or 0)
    assert reached == ids[39]
    db.rollback()
    left = db.scalars(
        select(TrackingEvent.id).where(
            (TrackingEvent.raw.is_not(None)) | (TrackingEvent.user_agent.is_not(None))
        )
    ).all()
    assert all(i > reached for i in left)
    assert _with_detail(db) == (50, 90)

    done = maintenance.run(NOW, batch_size=20)
    assert done.events_cleared == 50
    assert _with_detail(db) == (0, 90)
    assert _facts(db) == facts


def test_stale_limiter_rows_are_deleted(db_url: str) -> None:
    limiter = AttemptLimiter(clock=lambda: (NOW - timedelta(days=2)).timestamp())
    for n in range(25):
        limiter.record_failure("10.0.0.1", f"guess{n}@example.com")
    AttemptLimiter(clock=lambda: NOW.timestamp()).record_failure("10.0.0.2", "now@example.com")
    assert maintenance.run(NOW, dry_run=True).limiter_rows_deleted == 26
    done = maintenance.run(NOW, batch_size=10)
    assert done.limiter_rows_deleted == 26
    with transaction() as session:
        assert session.query(AttemptCounter).count() == 2


def test_retention_zero_keeps_everything(
    db: Session, events: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_EVENT_DETAIL_RETENTION_DAYS", "0")
    done = maintenance.run(NOW, settings=type(get_settings())())
    assert done.events_cleared == 0 and done.detail_before is None
    assert _with_detail(db) == (90, 90)


def test_the_scheduler_runs_it_once_a_day_once_across_two_schedulers(
    db: Session, events: dict[str, Any]
) -> None:
    clock = ManualClock(NOW)
    first, second = Scheduler(clock=clock), Scheduler(clock=clock)
    reports = []
    start = threading.Barrier(2)

    def tick(scheduler: Scheduler) -> None:
        start.wait()
        reports.append(scheduler.tick())

    threads = [threading.Thread(target=tick, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ran = [r.maintenance for r in reports if r.maintenance is not None]
    assert len(ran) == 1 and ran[0].events_cleared == 90
    assert _with_detail(db) == (0, 90)
    # Later the same day: nobody runs it again; the next day one does.
    clock.advance(timedelta(hours=23))
    assert first.tick().maintenance is None and second.tick().maintenance is None
    clock.advance(timedelta(hours=1, seconds=1))
    assert first.tick().maintenance is not None
    assert second.tick().maintenance is None

"""What each owner gives and forgets of one person, to the letter (the mutants that survived
the people package's first mutation sample: an erasure of nobody, the export's event keys,
a scrubbed detail that must keep its other words, the history's order)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.people import erasure
from newsletter.people.export import personal_data
from newsletter.people.history import history
from newsletter.tracking.models import EventType, TrackingEvent
from subscribers.models import Subscriber
from tests.tracking.conftest import SENT_AT, build_world


def _event(
    world_delivery: int, issue_id: int, kind: EventType, at_hours: int, **extra: object
) -> TrackingEvent:
    return TrackingEvent(
        type=kind,
        source="sendgrid",
        delivery_id=world_delivery,
        issue_id=issue_id,
        machine=False,
        occurred_at=SENT_AT + timedelta(hours=at_hours),
        **extra,
    )


def test_erasing_nobody_says_so_and_changes_nothing(db: Session) -> None:
    world = build_world(db, readers=1)
    assert erasure.erase(db, 987654) is False
    assert db.scalar(select(Subscriber.id)) == world.subscribers[0]


def test_the_export_names_each_event_by_its_type_and_issue(db: Session) -> None:
    world = build_world(db, readers=1)
    db.add(_event(world.deliveries[0], world.issue_id, EventType.DELIVERED, 1))
    db.commit()
    person = db.get(Subscriber, world.subscribers[0])
    assert person is not None
    [event] = personal_data(db, person)["events"]
    assert set(event) == {"type", "issue_id", "at"}
    assert (event["type"], event["issue_id"]) == ("delivered", world.issue_id)


def test_erasure_blanks_the_address_in_a_detail_and_keeps_the_rest(db: Session) -> None:
    world = build_world(db, readers=1)
    db.add(
        _event(
            world.deliveries[0],
            world.issue_id,
            EventType.BOUNCED,
            1,
            detail="550 5.1.1 reader0@example.com: mailbox unknown",
        )
    )
    db.commit()
    assert erasure.erase(db, world.subscribers[0])
    db.commit()
    assert db.scalar(select(TrackingEvent.detail)) == "550 5.1.1 [erased]: mailbox unknown"


def test_the_admins_history_lists_events_newest_first_by_when_they_happened(db: Session) -> None:
    world = build_world(db, readers=1)
    # Stored in the other order: the later event first.
    db.add(_event(world.deliveries[0], world.issue_id, EventType.OPENED, 5))
    db.add(_event(world.deliveries[0], world.issue_id, EventType.CLICKED, 2))
    db.add(_event(world.deliveries[0], world.issue_id, EventType.DELIVERED, 9))
    db.commit()
    kinds = [str(e["type"]) for e in history(db, world.subscribers[0])["events"]]
    assert kinds == ["delivered", "opened", "clicked"]

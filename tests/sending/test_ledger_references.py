"""Deliveries have no foreign keys (0015_ledger): what the keys guarded holds without them.

Nobody erased keeps a delivery naming them, also when the erasure runs while a snapshot of
the audience is being taken; a delivery never names a subscriber, issue or batch that is not
there.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from newsletter.db import get_engine, session_factory
from newsletter.issues.models import Issue
from newsletter.people.erasure import erase
from newsletter.sending import repository, service
from newsletter.sending.models import Delivery, SendBatch
from subscribers.models import Subscriber
from tests.support.arrange import add_frozen_issue, add_subscribers


def _dangling(db: Session) -> dict[str, int]:
    """Deliveries naming a row that does not exist, per column."""
    db.expire_all()

    def missing(column: object, table: type) -> int:
        return int(
            db.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(
                    column.is_not(None),  # type: ignore[attr-defined]
                    ~select(table.id).where(table.id == column).exists(),  # type: ignore[attr-defined]
                )
            )
            or 0
        )

    return {
        "subscriber_id": missing(Delivery.subscriber_id, Subscriber),
        "issue_id": missing(Delivery.issue_id, Issue),
        "batch_id": missing(Delivery.batch_id, SendBatch),
    }


def _issue(db: Session) -> int:
    issue_id = add_frozen_issue(db, html="<p>__NL_TOKEN__</p>", text="t", untracked_html="<p></p>")
    db.commit()
    return issue_id


def test_the_table_has_no_foreign_keys_and_keeps_its_indexes(db_url: str) -> None:
    found = inspect(get_engine(db_url))
    assert found.get_foreign_keys("deliveries") == []
    indexed = {tuple(i["column_names"]) for i in found.get_indexes("deliveries")}
    assert {("batch_id",), ("subscriber_id",)} <= indexed
    assert ("issue_id",) not in indexed  # the unique (issue_id, subscriber_id) serves


def test_an_erasure_during_a_snapshot_waits_and_leaves_no_delivery_naming_the_person(
    db_url: str, db: Session
) -> None:
    add_subscribers(db, 50)
    db.commit()
    issue_id = _issue(db)
    victim = db.scalar(select(Subscriber.id).where(Subscriber.email == "reader7@mail.example.com"))
    assert victim is not None

    snapshot = session_factory(db_url)()
    assert service.start_send(snapshot, issue_id)  # snapshot taken, not committed yet
    assert snapshot.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.subscriber_id == victim)
    )
    erased = threading.Event()
    errors: list[BaseException] = []

    def erasure() -> None:
        try:
            with session_factory(db_url)() as other:
                assert erase(other, victim)
                other.commit()
            erased.set()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=erasure)
    thread.start()
    # The erasure cannot finish while the snapshot is open (PostgreSQL: the audience lock;
    # SQLite: the write lock).
    time.sleep(0.5)
    assert not erased.is_set()
    snapshot.commit()
    snapshot.close()
    thread.join(timeout=30)
    assert not errors, errors
    assert erased.is_set()

    assert db.get(Subscriber, victim) is None
    assert _dangling(db) == {"subscriber_id": 0, "issue_id": 0, "batch_id": 0}
    # The person's delivery is still counted, anonymous.
    assert (
        db.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.subscriber_id.is_(None))
        )
        == 1
    )
    assert db.scalar(select(func.count()).select_from(Delivery)) == 50


def test_a_snapshot_after_an_erasure_does_not_plan_the_erased_person(
    db_url: str, db: Session
) -> None:
    add_subscribers(db, 5)
    db.commit()
    victim = db.scalar(select(Subscriber.id).where(Subscriber.email == "reader2@mail.example.com"))
    assert victim is not None
    issue_id = _issue(db)
    eraser = session_factory(db_url)()
    assert erase(eraser, victim)  # not committed: the snapshot has to wait for it

    done = threading.Event()

    def snapshot() -> None:
        with session_factory(db_url)() as session:
            assert service.start_send(session, issue_id)
            session.commit()
        done.set()

    thread = threading.Thread(target=snapshot)
    thread.start()
    time.sleep(0.5)
    assert not done.is_set()
    eraser.commit()
    eraser.close()
    thread.join(timeout=30)
    assert done.is_set()
    assert db.scalar(select(func.count()).select_from(Delivery)) == 4
    assert _dangling(db) == {"subscriber_id": 0, "issue_id": 0, "batch_id": 0}


def test_an_erasure_shares_the_audience_lock_and_a_snapshot_takes_it_alone(
    db_url: str, db: Session
) -> None:
    if db.get_bind().dialect.name == "sqlite":
        repository.lock_audience(db, shared=True)  # nothing to take: SQLite's writers queue
        db.rollback()
        return
    key = int.from_bytes(b"nl-audi", "big")
    repository.lock_audience(db, shared=True)
    with session_factory(db_url)() as other:
        # Another erasure shares it; a snapshot would have to wait.
        assert other.scalar(text("SELECT pg_try_advisory_xact_lock_shared(:k)"), {"k": key})
        other.rollback()
        assert not other.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
        other.rollback()
        db.rollback()
        assert other.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
        other.rollback()

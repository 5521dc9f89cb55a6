"""A claimed batch is in flight as one row (0015_ledger): its deliveries stay queued in the
table, yet every reader of the ledger sees them in flight, a cancel leaves them to their worker,
a crash makes them uncertain, and each counts the requests its batch was claimed for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.sending import claims, recovery, service
from newsletter.sending.models import Delivery, DeliveryStatus
from tests.support.arrange import add_frozen_issue, add_subscribers

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _sending(db: Session, people: int) -> int:
    add_subscribers(db, people)
    issue_id = add_frozen_issue(db, html="<p>__NL_TOKEN__</p>", text="t", untracked_html="<p></p>")
    assert service.start_send(db, issue_id, now=NOW)
    db.commit()
    return issue_id


def _rows(db: Session, batch_id: int) -> list[tuple[str, int]]:
    db.expire_all()
    return [
        (str(status), attempts)
        for status, attempts in db.execute(
            select(Delivery.status, Delivery.attempts).where(Delivery.batch_id == batch_id)
        )
    ]


def test_a_claim_writes_one_row_and_the_counts_say_in_flight(db: Session) -> None:
    issue_id = _sending(db, 1500)  # batches of 1,000 and 500
    claim = claims.claim_batch(db, issue_id, "w1", NOW)
    assert claim is not None
    recipients = claims.put_in_flight(db, claim.batch_id, NOW, skip_reason="left")
    db.commit()
    assert len(recipients) == 1000
    # The table keeps them queued; the ledger's counts put them in flight.
    assert {status for status, _ in _rows(db, claim.batch_id)} == {"queued"}
    counts = service.status_counts(db, issue_id)
    assert (counts["in_flight"], counts["queued"], counts["recipients"]) == (1000, 500, 1500)

    assert claims.mark_sent(db, claim.batch_id, None, "msg-1", NOW) == 1000
    assert claims.finish_batch(db, claim.batch_id, NOW)
    db.commit()
    assert _rows(db, claim.batch_id) == [("sent", 1)] * 1000
    counts = service.status_counts(db, issue_id)
    assert (counts["sent"], counts["in_flight"], counts["queued"]) == (1000, 0, 500)


def test_a_cancel_leaves_the_batch_in_flight_to_its_worker(db: Session) -> None:
    issue_id = _sending(db, 1500)
    claim = claims.claim_batch(db, issue_id, "w1", NOW)
    assert claim is not None
    claims.put_in_flight(db, claim.batch_id, NOW, skip_reason="left")
    db.commit()
    assert service.cancel_send(db, issue_id, now=NOW) == 500
    db.commit()
    # The request may be on its way: those 1,000 are the worker's to settle, not skipped.
    assert {status for status, _ in _rows(db, claim.batch_id)} == {"queued"}
    assert claims.mark_sent(db, claim.batch_id, None, "msg-1", NOW) == 1000
    db.commit()
    counts = service.status_counts(db, issue_id)
    assert (counts["sent"], counts["skipped"], counts["queued"]) == (1000, 500, 0)


def test_a_dead_workers_batch_becomes_uncertain_and_attempts_count_each_claim(
    db: Session,
) -> None:
    issue_id = _sending(db, 10)
    first = claims.claim_batch(db, issue_id, "w1", NOW)
    assert first is not None
    # SendGrid answered 429: the batch goes back, nothing in it was settled.
    assert claims.release_batch(db, first.batch_id, retry_at=None, error="429", now=NOW)
    db.commit()
    again = claims.claim_batch(db, issue_id, "w2", NOW)
    assert again is not None and again.batch_id == first.batch_id and again.attempts == 2
    db.commit()
    # w2 dies with the batch in flight: the sweeper finds it.
    swept = service.sweep_stuck(db, older_than=timedelta(seconds=1), issue_id=issue_id)
    db.commit()
    assert swept
    assert _rows(db, first.batch_id) == [(DeliveryStatus.UNCERTAIN.value, 2)] * 10
    assert recovery.in_flight_batches(db, issue_id) == []

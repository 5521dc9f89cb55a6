"""Uncertain deliveries heal themselves from SendGrid's evidence (issue 18).

A crash leaves a request uncertain: nobody knows whether SendGrid took it. SendGrid's signed
Event Webhook answers: a processed, delivered, deferred or bounce event for one of its
deliveries settles it as sent, a dropped one as failed with SendGrid's reason, each recorded as
settled by that evidence. A delivery it never names, once the webhook has shown SendGrid took
the requests made after it and NEWSLETTER_UNCERTAIN_RESEND_AFTER_SECONDS has passed, is sent
again once by the scheduler's tick; everything else waits with its reason.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueStatus
from newsletter.scheduling.clock import ManualClock
from newsletter.scheduling.runner import Scheduler
from newsletter.sending import service as sending
from newsletter.sending.models import BatchStatus, Delivery, DeliveryStatus, SendBatch
from newsletter.settings import reset_settings
from tests.subscribers.helpers import cli, outbox
from tests.tracking.conftest import World, build_world
from tests.tracking.test_webhook import URL, signed

HTML = '<html><body><p>Verdicts</p><a href="https://nl.example/u/__NL_TOKEN__">u</a></body></html>'
TEXT = "Verdicts\n\nUnsubscribe: https://nl.example/u/__NL_TOKEN__\n"
CRASH = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture
def crashed(db: Session) -> World:
    """Nine readers in three requests of three: the first and last went out, the middle one
    was in flight when its worker died (uncertain), as the sweeper leaves it."""
    world = build_world(db, readers=9)
    db.execute(
        update(Issue)
        .where(Issue.id == world.issue_id)
        .values(
            rendered_subject="Verdicts",
            rendered_preheader="",
            rendered_html=HTML,
            rendered_text=TEXT,
            rendered_untracked_html=HTML,
            rendered_untracked_text=TEXT,
            rendered_at=CRASH - timedelta(hours=1),
        )
    )
    for n in range(3):
        batch = SendBatch(
            issue_id=world.issue_id,
            status=BatchStatus.DONE,
            claimed_at=CRASH - timedelta(minutes=3 - n),
            attempts=1,
            created_at=CRASH - timedelta(minutes=10),
        )
        db.add(batch)
        db.flush()
        mine = world.deliveries[3 * n : 3 * n + 3]
        values: dict[str, Any] = {"batch_id": batch.id}
        if n == 1:
            values.update(
                status=DeliveryStatus.UNCERTAIN,
                sent_at=None,
                error="the worker stopped while the request was in flight",
                updated_at=CRASH,
            )
        db.execute(update(Delivery).where(Delivery.id.in_(mine)).values(**values))
    db.commit()
    return world


def sendgrid_event(
    world: World, index: int, name: str, event_id: str, **extra: Any
) -> dict[str, Any]:
    return {
        "email": f"reader{index}@example.com",
        "timestamp": int(time.time()) - 30,
        "event": name,
        "sg_event_id": event_id,
        "sg_message_id": f"msg{index}.filter0001",
        "delivery_id": str(world.deliveries[index]),
        "issue_id": str(world.issue_id),
        **extra,
    }


def post(client: TestClient, key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]]) -> None:
    body, headers = signed(key, events)
    answer = client.post(URL, content=body, headers=headers)
    assert answer.status_code == 200, answer.text


def ledger(db: Session, world: World) -> list[tuple[str, str | None, str | None]]:
    db.expire_all()
    rows = db.execute(
        select(Delivery.status, Delivery.settled_by, Delivery.error)
        .where(Delivery.issue_id == world.issue_id)
        .order_by(Delivery.id)
    )
    return [(str(status), by, error) for status, by, error in rows]


def test_sendgrids_events_settle_uncertain_deliveries_and_only_those(
    client: TestClient, crashed: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    events = [
        sendgrid_event(crashed, 3, "processed", "p3"),
        sendgrid_event(crashed, 3, "delivered", "d3"),
        sendgrid_event(crashed, 4, "dropped", "x4", reason="Bounced Address"),
        sendgrid_event(crashed, 0, "delivered", "d0"),  # sent already: nothing to settle
    ]
    post(client, signing_key, events)
    before = ledger(db, crashed)
    assert before[3][:2] == ("sent", "evidence:processed")
    assert before[4] == ("failed", "evidence:dropped", "dropped by SendGrid: Bounced Address")
    assert before[5][:2] == ("uncertain", None)
    assert before[0][:2] == ("sent", None)
    sent_at = db.scalar(select(Delivery.sent_at).where(Delivery.id == crashed.deliveries[3]))
    assert sent_at is not None and abs(sent_at.timestamp() - (time.time() - 30)) < 5
    # The requests SendGrid has shown it took: the first and the middle one, not the last.
    evidence = list(db.scalars(select(SendBatch.evidence_at).order_by(SendBatch.id)))
    assert evidence[0] is not None and evidence[1] is not None and evidence[2] is None
    # SendGrid delivers at least once: the same events again change nothing.
    post(client, signing_key, events)
    assert ledger(db, crashed) == before


def test_a_request_sendgrid_never_names_is_sent_again_once_when_later_ones_show_up(
    client: TestClient, crashed: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    after = 600
    reset_settings()
    healing_at = CRASH + timedelta(seconds=after + 1)

    def waiting() -> list[str]:
        with_reasons = sending.heal_uncertain(db, now=CRASH + timedelta(seconds=1), act=False)
        return [w.reason for w in with_reasons.waiting]

    # Nothing from SendGrid yet about the later request: healing waits for it.
    assert waiting() == [
        "waiting for SendGrid's events to show it took the requests made after this one"
    ]
    post(client, signing_key, [sendgrid_event(crashed, 6, "processed", "p6")])
    assert waiting() == ["no event from SendGrid for it yet: resent if none comes"]
    report = sending.heal_uncertain(db, now=healing_at, act=False)
    assert [(w.deliveries, w.resend_at) for w in report.waiting] == [
        (3, CRASH + timedelta(seconds=3600))
    ]

    # The scheduler's tick after the wait: the three go out again, in small batches, once.
    tick = Scheduler(clock=ManualClock(CRASH + timedelta(seconds=3601)))
    assert tick.dispatch().resent_uncertain == 3
    assert sorted(str(m["To"]) for m in outbox()) == [
        "reader3@example.com",
        "reader4@example.com",
        "reader5@example.com",
    ]
    assert [row[:2] for row in ledger(db, crashed)[3:6]] == [("sent", "resend:auto")] * 3
    assert (
        Scheduler(clock=ManualClock(CRASH + timedelta(seconds=7200))).dispatch().resent_uncertain
        == 0
    )
    assert len(outbox()) == 3

    # Uncertain again after its one automatic resend: an operator decides.
    db.execute(
        update(Delivery)
        .where(Delivery.id == crashed.deliveries[3])
        .values(status=DeliveryStatus.UNCERTAIN)
    )
    db.commit()
    late = sending.heal_uncertain(db, now=CRASH + timedelta(days=1))
    assert late.resent == 0
    assert [w.reason for w in late.waiting] == [
        "resent automatically once already and uncertain again: an operator decides"
    ]
    shown = cli("issue", "status", str(crashed.issue_id))
    assert shown.exit_code == 0, shown.output
    assert "settled after an uncertain hand-off: 3 resend:auto" in shown.output
    assert (
        "1 uncertain: resent automatically once already and uncertain again: an operator decides"
        in shown.output
    )


def test_the_last_request_of_a_send_heals_from_the_others_evidence(
    client: TestClient, crashed: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    # Make the uncertain request the last one claimed.
    db.execute(
        update(SendBatch)
        .where(SendBatch.issue_id == crashed.issue_id)
        .values(claimed_at=CRASH - timedelta(minutes=4))
    )
    middle = db.scalar(select(Delivery.batch_id).where(Delivery.id == crashed.deliveries[3]))
    db.execute(update(SendBatch).where(SendBatch.id == middle).values(claimed_at=CRASH))
    db.commit()
    post(client, signing_key, [sendgrid_event(crashed, 0, "delivered", "d0")])
    report = sending.heal_uncertain(db, now=CRASH + timedelta(hours=2))
    assert report.resent == 3 and report.waiting == []


@pytest.mark.parametrize(
    ("setting", "status", "reason"),
    [
        (
            "false",
            None,
            "automatic resends are off (NEWSLETTER_UNCERTAIN_AUTO_RESEND): an operator decides",
        ),
        ("true", IssueStatus.PAUSED, "the send is paused: healing goes on once it is resumed"),
        (
            "true",
            IssueStatus.CANCELLED,
            "the send was cancelled: mark sent what SendGrid's activity feed shows",
        ),
    ],
)
def test_what_healing_leaves_to_an_operator_says_why(
    client: TestClient,
    crashed: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    status: IssueStatus | None,
    reason: str,
) -> None:
    monkeypatch.setenv("NEWSLETTER_UNCERTAIN_AUTO_RESEND", setting)
    reset_settings()
    if status is not None:
        db.execute(update(Issue).where(Issue.id == crashed.issue_id).values(status=status))
        db.commit()
    post(client, signing_key, [sendgrid_event(crashed, 6, "processed", "p6")])
    report = sending.heal_uncertain(db, now=CRASH + timedelta(days=1))
    assert report.resent == 0
    assert [(w.deliveries, w.reason) for w in report.waiting] == [(3, reason)]
    shown = cli("issue", "status", str(crashed.issue_id), "--json")
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.stdout)
    assert summary["uncertain"] == 3
    assert [w["reason"] for w in summary["uncertain_waiting"]] == [reason]


# --- found by the fault benchmark (bench/faults.py) -------------------------------------------


def test_events_that_arrive_while_the_request_is_in_flight_settle_it_when_its_worker_dies(
    client: TestClient, crashed: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    """SendGrid took the request and said so before the worker heard back (a slow answer
    the client gave up on, or a worker killed after sending): the events are the only word
    about those deliveries, so they must not be lost while the worker still holds them."""
    middle = db.scalar(select(Delivery.batch_id).where(Delivery.id == crashed.deliveries[3]))
    db.execute(
        update(SendBatch)
        .where(SendBatch.id == middle)
        .values(status=BatchStatus.IN_FLIGHT, claimed_by="elsewhere:1:0")
    )
    db.execute(
        update(Delivery)
        .where(Delivery.batch_id == middle)
        .values(status=DeliveryStatus.IN_FLIGHT, error=None)
    )
    # The third is an automatic resend on its way: it stays recorded as one.
    db.execute(
        update(Delivery)
        .where(Delivery.id == crashed.deliveries[5])
        .values(settled_by="resend:auto")
    )
    db.commit()
    post(
        client,
        signing_key,
        [sendgrid_event(crashed, i, "processed", f"p{i}") for i in (3, 4, 5, 6)],
    )
    # The worker is gone: the sweep finds nothing left in doubt.
    assert sending.sweep_stuck(db, older_than=timedelta(minutes=1)) == 0
    db.commit()
    assert [row[:2] for row in ledger(db, crashed)[3:6]] == [
        ("sent", "evidence:processed"),
        ("sent", "evidence:processed"),
        ("sent", "resend:auto"),
    ]
    report = sending.heal_uncertain(db, now=datetime.now(UTC) + timedelta(days=1))
    assert report.resent == 0 and report.waiting == []


def test_a_request_never_named_heals_beside_one_of_its_batch_that_sendgrid_took(
    client: TestClient, crashed: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    """One batch can be several requests (tracking opt-outs get their own, a 400 resends the
    rest): SendGrid naming the deliveries of one of them says nothing of the other's."""
    post(
        client,
        signing_key,
        [sendgrid_event(crashed, i, "processed", f"p{i}") for i in (3, 4, 6)],
    )
    named_at = datetime.now(UTC)
    assert [row[:2] for row in ledger(db, crashed)[3:6]] == [
        ("sent", "evidence:processed"),
        ("sent", "evidence:processed"),
        ("uncertain", None),
    ]
    # The request's other events may still come: it waits as long as any request would.
    early = sending.heal_uncertain(db, now=named_at + timedelta(seconds=60), act=False)
    assert [(w.deliveries, w.reason) for w in early.waiting] == [
        (1, "SendGrid named others of its batch: resent if no event comes for it")
    ]
    assert early.waiting[0].resend_at is not None
    assert early.waiting[0].resend_at >= named_at + timedelta(seconds=3599)
    late = sending.heal_uncertain(db, now=named_at + timedelta(seconds=3601))
    assert late.resent == 1 and late.waiting == []


def test_events_for_deliveries_a_worker_is_settling_are_refused_at_once_and_posted_again(
    client: TestClient,
    crashed: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    db_url: str,
) -> None:
    """The worker settling a batch holds its deliveries' rows, then takes the batch's; the
    webhook taking the batch's row first and then waiting for the deliveries' deadlocked on
    PostgreSQL (found by bench/faults.py --postgres). It waits for no row a worker holds: it
    answers 500 at once and SendGrid's next post settles them."""
    from newsletter.db import session_factory

    middle = db.scalar(select(Delivery.batch_id).where(Delivery.id == crashed.deliveries[3]))
    db.execute(
        update(Delivery)
        .where(Delivery.batch_id == middle)
        .values(status=DeliveryStatus.IN_FLIGHT, error=None)
    )
    db.commit()
    events = [sendgrid_event(crashed, i, "processed", f"p{i}") for i in (3, 4, 5)]
    if db_url.startswith("postgresql"):
        worker = session_factory(db_url)()
        try:
            # A worker in the middle of settling the batch: its rows are locked.
            worker.execute(update(Delivery).where(Delivery.batch_id == middle).values(attempts=2))
            began = time.monotonic()
            body, headers = signed(signing_key, events)
            refused = client.post(URL, content=body, headers=headers)
            assert refused.status_code == 500
            assert time.monotonic() - began < 5
        finally:
            worker.rollback()
            worker.close()
        assert [row[0] for row in ledger(db, crashed)[3:6]] == ["in_flight"] * 3
    post(client, signing_key, events)
    assert [row[:2] for row in ledger(db, crashed)[3:6]] == [("sent", "evidence:processed")] * 3

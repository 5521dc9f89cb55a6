"""The send loop's branches, each asserted on the ledger it leaves: what each delivery and batch
says, with which words and which retry time, and what SendGrid was asked. Both engines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.issues.models import Issue, IssueStatus
from newsletter.mail.message import (
    BatchOutcome,
    BatchResult,
    MailContent,
    OutgoingMessage,
    Recipient,
    SendResult,
)
from newsletter.mail.sendgrid_transport import SendGridTransport
from newsletter.sending import claims, service, worker
from newsletter.sending.models import BatchStatus, Delivery, DeliveryStatus, SendBatch
from newsletter.sending.worker import RateLimiter, backoff, run_until_done
from newsletter.settings import reset_settings
from subscribers.models import Subscriber
from tests.sending.conftest import add_subscribers, make_issue
from tests.support.sendgrid_server import SendGridServer


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "100")
    monkeypatch.setenv("NEWSLETTER_SEND_CONCURRENCY", "1")
    reset_settings()


Hook = Callable[[Sequence[Recipient]], None]


class Scripted(SendGridTransport):
    """The real transport; before its n-th request the n-th hook runs (it may raise)."""

    def __init__(self, *hooks: Hook | None) -> None:
        super().__init__()
        self.hooks = list(hooks)
        self.calls = 0

    def send_batch(
        self,
        content: MailContent,
        recipients: Sequence[Recipient],
        *,
        issue_id: int,
        categories: Sequence[str] = (),
    ) -> BatchResult:
        hook = self.hooks[self.calls] if self.calls < len(self.hooks) else None
        self.calls += 1
        if hook is not None:
            hook(recipients)
        return super().send_batch(content, recipients, issue_id=issue_id, categories=categories)


class Answers:
    """A transport that answers with bare results (no error text), as any transport may."""

    name = "answers"

    def __init__(self, *results: BatchResult) -> None:
        self.results = list(results)

    def send_one(self, message: OutgoingMessage) -> SendResult:
        raise AssertionError("not used by the send loop")

    def send_batch(
        self,
        content: MailContent,
        recipients: Sequence[Recipient],
        *,
        issue_id: int,
        categories: Sequence[str] = (),
    ) -> BatchResult:
        return self.results.pop(0) if self.results else BatchResult(BatchOutcome.ACCEPTED)


def started(db: Session, count: int, **kwargs: int) -> int:
    add_subscribers(db, count, **kwargs)
    issue_id = make_issue(db)
    with transaction() as session:
        assert service.start_send(session, issue_id)
    return issue_id


def send(issue_id: int, **kwargs: object) -> None:
    run_until_done(issue_id, worker_id=service.default_worker_id(), **kwargs)  # type: ignore[arg-type]


def deliveries(db: Session, issue_id: int) -> dict[str, Delivery]:
    """Each delivery by its subscriber's address."""
    db.expire_all()
    rows = db.execute(
        select(Subscriber.email, Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id)
    )
    return {email: delivery for email, delivery in rows}


def states(db: Session, issue_id: int) -> dict[str, tuple[DeliveryStatus, str | None]]:
    return {e: (d.status, d.error) for e, d in deliveries(db, issue_id).items()}


def batches(db: Session, issue_id: int) -> list[SendBatch]:
    db.expire_all()
    return list(db.scalars(select(SendBatch).where(SendBatch.issue_id == issue_id)))


def issue_status(db: Session, issue_id: int) -> IssueStatus:
    db.expire_all()
    issue = db.get(Issue, issue_id)
    assert issue is not None
    return IssueStatus(issue.status)


def stop_after_first_request(stop: threading.Event) -> Scripted:
    """Stops the worker as its first request goes out: it settles that batch, then returns."""
    return Scripted(lambda _: stop.set())


# --- what SendGrid is asked -------------------------------------------------------------------


def test_each_request_carries_the_issues_categories_and_one_line_names(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 2)
    db.execute(
        update(Subscriber)
        .where(Subscriber.email == "reader1@mail.example.com")
        .values(name="Ann\r\nBcc: x@evil.example")
    )
    db.commit()
    send(issue_id)
    [request] = sendgrid.accepted
    payload = request.payload or {}
    assert payload["categories"] == ["weekly-verdicts", "2026-W47"]
    assert [p["to"] for p in payload["personalizations"]] == [
        [{"email": "reader0@mail.example.com", "name": "Reader 0"}],
        [{"email": "reader1@mail.example.com", "name": "Ann Bcc: x@evil.example"}],
    ]
    rows = deliveries(db, issue_id)
    assert {d.status for d in rows.values()} == {DeliveryStatus.SENT}
    assert {d.message_id for d in rows.values()} == {request.message_id}
    [batch] = batches(db, issue_id)
    assert (batch.status, batch.error) == (BatchStatus.DONE, None)
    assert issue_status(db, issue_id) is IssueStatus.SENT


def test_the_two_renders_go_in_two_requests_each_settled_with_its_own_message_id(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 4, opt_out_every=2)  # readers 0 and 2 opted out of tracking
    send(issue_id)
    tracked, untracked = sendgrid.accepted
    assert [r.email for r in tracked.recipients] == [
        "reader1@mail.example.com",
        "reader3@mail.example.com",
    ]
    assert "/o/" in str((tracked.payload or {})["content"])
    assert "/o/" not in str((untracked.payload or {})["content"])
    rows = deliveries(db, issue_id)
    assert {e: (d.status, d.message_id) for e, d in rows.items()} == {
        "reader0@mail.example.com": (DeliveryStatus.SENT, untracked.message_id),
        "reader1@mail.example.com": (DeliveryStatus.SENT, tracked.message_id),
        "reader2@mail.example.com": (DeliveryStatus.SENT, untracked.message_id),
        "reader3@mail.example.com": (DeliveryStatus.SENT, tracked.message_id),
    }
    assert [b.status for b in batches(db, issue_id)] == [BatchStatus.DONE]


def test_with_tracking_off_everyone_gets_the_untracked_render_in_one_request(
    db: Session, sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_TRACKING", "false")
    reset_settings()
    issue_id = started(db, 3, opt_out_every=2)
    send(issue_id)
    [request] = sendgrid.accepted
    assert len(request.recipients) == 3 and "/o/" not in str((request.payload or {})["content"])


def test_an_issue_that_is_not_sending_is_left_alone(db: Session, sendgrid: SendGridServer) -> None:
    add_subscribers(db, 2)
    approved = make_issue(db)
    send(approved)
    send(approved + 1000)  # no such issue
    assert sendgrid.requests == 0
    assert issue_status(db, approved) is IssueStatus.APPROVED


# --- how long to wait before trying again -----------------------------------------------------


def released_retry(db: Session, issue_id: int) -> tuple[SendBatch, float, float]:
    stop = threading.Event()
    began = datetime.now(UTC)
    send(issue_id, stop=stop, transport=stop_after_first_request(stop))
    ended = datetime.now(UTC)
    [batch] = batches(db, issue_id)
    assert batch.status == BatchStatus.PENDING and batch.next_attempt_at is not None
    return (
        batch,
        (batch.next_attempt_at - began).total_seconds(),
        (batch.next_attempt_at - ended).total_seconds(),
    )


def test_a_429_with_retry_after_is_tried_again_when_sendgrid_says(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 3)
    sendgrid.fail_next(429, headers={"Retry-After": "30"}, body={"errors": [{"message": "slow"}]})
    batch, after_start, after_end = released_retry(db, issue_id)
    assert after_start >= 30 and after_end <= 30
    assert batch.error == "SendGrid 429: slow"
    assert {s for s, _ in states(db, issue_id).values()} == {DeliveryStatus.QUEUED}
    assert issue_status(db, issue_id) is IssueStatus.SENDING


@pytest.mark.parametrize("status", [429, 503])
def test_without_retry_after_the_first_retry_backs_off_a_quarter_second_at_most(
    db: Session, sendgrid: SendGridServer, status: int
) -> None:
    issue_id = started(db, 3)
    sendgrid.fail_next(status, headers={"Retry-After": "30"} if status == 503 else None)
    batch, after_start, after_end = released_retry(db, issue_id)
    # backoff(1): 0.25 s with jitter down to half; a 5xx's Retry-After is not SendGrid's word.
    assert after_start >= 0.125 and after_end <= 0.25
    assert batch.error == f"SendGrid {status}: injected {status}"


def test_a_retry_that_would_land_past_the_deadline_fails_the_batch_at_once(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 2)
    sendgrid.fail_next(429, headers={"Retry-After": "7200"}, body={"errors": [{"message": "no"}]})
    send(issue_id)
    reason = "gave up at the retry deadline; last answer: SendGrid 429: no"
    assert set(states(db, issue_id).values()) == {(DeliveryStatus.FAILED, reason)}
    [batch] = batches(db, issue_id)
    assert (batch.status, batch.error) == (BatchStatus.DONE, reason)
    assert sendgrid.requests == 1
    assert issue_status(db, issue_id) is IssueStatus.SENT


def test_backoff_doubles_per_attempt_with_jitter_and_a_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker, "random", SimpleNamespace(uniform=lambda low, high: high))
    assert [backoff(n) for n in (0, 1, 2, 3, 8, 9, 50)] == [0.25, 0.25, 0.5, 1.0, 32.0, 60.0, 60.0]
    monkeypatch.setattr(worker, "random", SimpleNamespace(uniform=lambda low, high: low))
    assert [backoff(n) for n in (1, 3, 50)] == [0.125, 0.5, 30.0]


def test_the_rate_limiter_spaces_handoffs_across_calls(db_url: str) -> None:
    class Clock:
        now = 1000.0

    waited: list[float] = []

    class Stop:
        def wait(self, seconds: float) -> None:
            waited.append(seconds)

    limiter = RateLimiter(100.0, clock=lambda: Clock.now)
    # A second worker process meets the same bucket: only the database is shared.
    other = RateLimiter(100.0, clock=lambda: Clock.now)
    limiter.wait(50, Stop())  # type: ignore[arg-type]
    other.wait(50, Stop())  # type: ignore[arg-type]
    Clock.now += 0.2
    limiter.wait(100, Stop())  # type: ignore[arg-type]
    other.give_back(30)
    Clock.now += 5.0
    limiter.wait(10, Stop())  # type: ignore[arg-type]
    # 50 at 100/s: free again after 0.5 s; the next 100 wait for 1.0 - 0.2; idle time is not
    # saved up for a burst later.
    assert waited == [pytest.approx(0.5), pytest.approx(0.8)]


# --- faults in the middle of a batch ----------------------------------------------------------


def test_a_transport_error_mid_batch_leaves_what_is_unknown_uncertain_and_raises(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 4, opt_out_every=2)

    def explode(_: Sequence[Recipient]) -> None:
        raise RuntimeError("socket exploded")

    with pytest.raises(RuntimeError, match="socket exploded"):
        send(issue_id, transport=Scripted(None, explode))
    reason = "worker error while sending: RuntimeError('socket exploded')"
    assert states(db, issue_id) == {
        "reader0@mail.example.com": (DeliveryStatus.UNCERTAIN, reason),
        "reader1@mail.example.com": (DeliveryStatus.SENT, None),
        "reader2@mail.example.com": (DeliveryStatus.UNCERTAIN, reason),
        "reader3@mail.example.com": (DeliveryStatus.SENT, None),
    }
    [batch] = batches(db, issue_id)
    assert (batch.status, batch.error) == (BatchStatus.DONE, reason)
    assert batch.finished_at is not None


def test_an_error_in_one_of_several_threads_stops_the_others_and_is_raised(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 300)
    calls: list[int] = []

    def explode_first(recipients: Sequence[Recipient]) -> None:
        calls.append(len(recipients))
        if len(calls) == 1:
            raise RuntimeError("thread died")

    transport = Scripted(*(explode_first for _ in range(10)))
    stop = threading.Event()
    with pytest.raises(RuntimeError, match="thread died"):
        send(issue_id, transport=transport, concurrency=2, stop=stop)
    # The caller's stop is the caller's: the scheduler passes its own, and one send thread's
    # error (a database deadlock, found by bench/faults.py) once ended the whole scheduler.
    assert not stop.is_set()
    finished = [b for b in batches(db, issue_id) if b.error]
    assert [b.error for b in finished] == [
        "worker error while sending: RuntimeError('thread died')"
    ]
    # The other thread stops at its next batch: not all three are sent.
    assert len(sendgrid.accepted) <= 2 and sendgrid.duplicates == 0


def test_no_answer_to_one_of_two_requests_makes_only_its_recipients_uncertain(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 4, opt_out_every=2)
    sendgrid.drop_next(1)
    send(issue_id)
    got = states(db, issue_id)
    assert {e: s for e, (s, _) in got.items()} == {
        "reader0@mail.example.com": DeliveryStatus.SENT,
        "reader1@mail.example.com": DeliveryStatus.UNCERTAIN,
        "reader2@mail.example.com": DeliveryStatus.SENT,
        "reader3@mail.example.com": DeliveryStatus.UNCERTAIN,
    }
    assert (got["reader1@mail.example.com"][1] or "").startswith(
        "no answer from SendGrid after the request: "
    )


def test_a_lone_recipient_refused_fails_with_sendgrids_own_words(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 1)
    sendgrid.reject_addresses({"reader0@mail.example.com": "Invalid mailbox."})
    send(issue_id)
    assert states(db, issue_id) == {
        "reader0@mail.example.com": (DeliveryStatus.FAILED, "SendGrid 400: Invalid mailbox.")
    }
    assert issue_status(db, issue_id) is IssueStatus.SENT


def test_a_400_naming_nobody_is_split_down_to_each_lone_recipient(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 3)
    sendgrid.fail_next(400, times=5, body={"errors": [{"message": "Bad Request", "field": None}]})
    send(issue_id)
    # [3] -> [1] + [2] -> [2] splits into [1] + [1]: five requests, each refused.
    assert sendgrid.statuses[400] == 5 and not sendgrid.accepted
    failed = (DeliveryStatus.FAILED, "SendGrid 400: Bad Request")
    assert set(states(db, issue_id).values()) == {failed}
    [batch] = batches(db, issue_id)
    assert (batch.status, batch.error) == (BatchStatus.DONE, None)


def test_a_400_naming_a_position_outside_the_request_is_not_trusted(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 2)
    # Positions count from 0: in a request of two, 2 is already outside.
    sendgrid.fail_next(400, body={"errors": [{"message": "?", "field": "personalizations.2.to"}]})
    send(issue_id)
    assert [len(r.recipients) for r in sendgrid.accepted] == [1, 1]
    assert {s for s, _ in states(db, issue_id).values()} == {DeliveryStatus.SENT}


def test_a_413_is_split_in_halves_until_it_fits(db: Session, sendgrid: SendGridServer) -> None:
    issue_id = started(db, 4)
    sendgrid.fail_next(413, times=2)
    send(issue_id)
    # [4] -> [2] refused again -> [1] + [1], then the other [2].
    assert [len(r.recipients) for r in sendgrid.accepted] == [1, 1, 2]
    assert {s for s, _ in states(db, issue_id).values()} == {DeliveryStatus.SENT}


def test_a_401_after_a_split_pauses_the_send_with_the_rest_queued(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 4)
    sendgrid.fail_next(413)
    sendgrid.fail_next(401, body={"errors": [{"message": "revoked"}]})
    send(issue_id)
    assert issue_status(db, issue_id) is IssueStatus.PAUSED
    assert {s for s, _ in states(db, issue_id).values()} == {DeliveryStatus.QUEUED}
    [batch] = batches(db, issue_id)
    assert (batch.status, batch.error) == (BatchStatus.PENDING, "SendGrid 401: revoked")
    assert batch.next_attempt_at is None


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [
        (BatchOutcome.UNKNOWN, DeliveryStatus.UNCERTAIN, "no answer"),
        (BatchOutcome.REJECTED, DeliveryStatus.FAILED, "rejected"),
        (BatchOutcome.TOO_LARGE, DeliveryStatus.FAILED, "rejected"),
    ],
)
def test_a_transport_that_gives_no_reason_still_leaves_one(
    db: Session, outcome: BatchOutcome, status: DeliveryStatus, error: str
) -> None:
    issue_id = started(db, 1)
    send(issue_id, transport=Answers(BatchResult(outcome)))
    assert set(states(db, issue_id).values()) == {(status, error)}


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        (BatchOutcome.RATE_LIMITED, "rate limited"),
        (BatchOutcome.UNAVAILABLE, "unavailable"),
        (BatchOutcome.UNAUTHORIZED, "unauthorized"),
    ],
)
def test_a_retry_or_pause_without_a_reason_still_names_one(
    db: Session, outcome: BatchOutcome, error: str
) -> None:
    issue_id = started(db, 1)
    stop = threading.Event()

    class Once(Answers):
        def send_batch(self, *args: object, **kwargs: object) -> BatchResult:
            stop.set()
            return BatchResult(outcome)

    send(issue_id, transport=Once(), stop=stop)
    [batch] = batches(db, issue_id)
    assert (batch.status, batch.error) == (BatchStatus.PENDING, error)


def test_per_message_ids_from_a_transport_are_kept_on_each_delivery(db: Session) -> None:
    issue_id = started(db, 2)
    with transaction() as session:
        ids = [d.id for d in session.scalars(select(Delivery).order_by(Delivery.id))]
    named = BatchResult(BatchOutcome.ACCEPTED, message_ids={ids[0]: "m-a", ids[1]: "m-b"})
    send(issue_id, transport=Answers(named))
    rows = sorted(deliveries(db, issue_id).values(), key=lambda d: d.id)
    assert [(d.status, d.message_id) for d in rows] == [
        (DeliveryStatus.SENT, "m-a"),
        (DeliveryStatus.SENT, "m-b"),
    ]


def test_a_dead_workers_batch_is_swept_when_a_worker_starts(
    db: Session, sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SEND_STUCK_SECONDS", "1")
    reset_settings()
    issue_id = started(db, 2)
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    with transaction() as session:
        claim = claims.claim_batch(session, issue_id, "elsewhere:1", long_ago)
        assert claim is not None
        claims.put_in_flight(session, claim.batch_id, long_ago)
    send(issue_id)
    assert {s for s, _ in states(db, issue_id).values()} == {DeliveryStatus.UNCERTAIN}
    assert sendgrid.requests == 0
    assert issue_status(db, issue_id) is IssueStatus.SENT


def test_a_worker_waits_for_a_retry_that_is_due_soon_then_sends(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 2)
    sendgrid.fail_next(429, headers={"Retry-After": "0.3"})
    began = time.monotonic()
    send(issue_id)
    assert time.monotonic() - began >= 0.3
    assert len(sendgrid.accepted) == 1
    assert {s for s, _ in states(db, issue_id).values()} == {DeliveryStatus.SENT}


# --- who holds a batch, and for how long --------------------------------------------------------


def test_a_single_thread_claims_as_the_worker_and_threads_by_their_number(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 2)
    run_until_done(issue_id, worker_id="host:1")
    assert [b.claimed_by for b in batches(db, issue_id)] == ["host:1"]

    issue_id = make_issue(db, week="2026-W48")  # the next week's, to the same two readers
    with transaction() as session:
        assert service.start_send(session, issue_id)
    run_until_done(issue_id, worker_id="host:2", concurrency=2)
    assert {b.claimed_by for b in batches(db, issue_id)} <= {"host:2:0", "host:2:1"}
    assert {s for s, _ in states(db, issue_id).values()} == {DeliveryStatus.SENT}


def test_each_request_of_a_split_batch_renews_the_workers_hold_on_it(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 2)
    sendgrid.fail_next(413)
    second: list[datetime] = []
    transport = Scripted(None, None, lambda _: second.append(datetime.now(UTC)))
    send(issue_id, transport=transport)
    [batch] = batches(db, issue_id)
    # Settling each half touched the batch: its hold dates from after the last request began.
    assert batch.claimed_at is not None and batch.claimed_at >= second[0]


def test_a_batch_left_by_a_worker_elsewhere_is_swept_while_this_one_waits(
    db: Session, sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SEND_STUCK_SECONDS", "0.5")
    reset_settings()
    issue_id = started(db, 2)
    with transaction() as session:
        claim = claims.claim_batch(session, issue_id, "elsewhere:1", datetime.now(UTC))
        assert claim is not None
        claims.put_in_flight(session, claim.batch_id, datetime.now(UTC))
    stop = threading.Event()
    timer = threading.Timer(5, stop.set)  # a worker that never sweeps would wait for ever
    timer.start()
    try:
        send(issue_id, stop=stop)
    finally:
        timer.cancel()
    assert not stop.is_set()
    assert {s for s, _ in states(db, issue_id).values()} == {DeliveryStatus.UNCERTAIN}
    assert issue_status(db, issue_id) is IssueStatus.SENT and sendgrid.requests == 0


def test_a_429_on_the_first_of_two_requests_holds_back_the_second(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 4, opt_out_every=2)
    sendgrid.fail_next(429, headers={"Retry-After": "30"})
    batch, _, _ = released_retry(db, issue_id)
    assert sendgrid.requests == 1 and batch.error == "SendGrid 429: injected 429"
    assert {s for s, _ in states(db, issue_id).values()} == {DeliveryStatus.QUEUED}


def test_a_400_naming_someone_fails_them_and_resends_the_rest_in_one_request(
    db: Session, sendgrid: SendGridServer
) -> None:
    issue_id = started(db, 3)
    sendgrid.reject_addresses({"reader0@mail.example.com": "Invalid mailbox."})
    send(issue_id)
    assert sendgrid.statuses[400] == 1
    assert [len(r.recipients) for r in sendgrid.accepted] == [2]
    assert states(db, issue_id)["reader0@mail.example.com"] == (
        DeliveryStatus.FAILED,
        "SendGrid 400: Invalid mailbox.",
    )

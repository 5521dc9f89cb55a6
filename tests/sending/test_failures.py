"""Every answer SendGrid can give, and every way a send can be interrupted, on both engines."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.issues import service as issues_service
from newsletter.issues.models import IssueStatus
from newsletter.mail.message import BatchResult, MailContent, Recipient
from newsletter.mail.sendgrid_transport import SendGridTransport
from newsletter.sending import claims, repository, service
from newsletter.sending.models import BatchStatus, Delivery, DeliveryStatus, SendBatch
from newsletter.sending.worker import run_until_done
from newsletter.settings import reset_settings
from subscribers.models import Subscriber, SubscriberStatus
from tests.sending.conftest import add_subscribers, make_issue
from tests.support.sendgrid_server import SendGridServer


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "100")
    monkeypatch.setenv("NEWSLETTER_SEND_CONCURRENCY", "1")
    reset_settings()


def start(issue_id: int) -> None:
    with transaction() as session:
        assert service.start_send(session, issue_id)


def send(issue_id: int, **kwargs: object) -> None:
    run_until_done(issue_id, worker_id=service.default_worker_id(), **kwargs)  # type: ignore[arg-type]


def by_status(db: Session, issue_id: int) -> dict[DeliveryStatus, list[Delivery]]:
    db.expire_all()
    out: dict[DeliveryStatus, list[Delivery]] = {}
    for d in db.scalars(select(Delivery).where(Delivery.issue_id == issue_id)):
        out.setdefault(DeliveryStatus(d.status), []).append(d)
    return out


def issue_status(issue_id: int) -> IssueStatus | None:
    with transaction() as session:
        return issues_service.status_of(session, issue_id)


def assert_nobody_twice(server: SendGridServer) -> None:
    assert server.duplicates == 0
    assert set(server.received.values()) <= {1}


def test_429_waits_for_the_rate_limit_reset_then_sends(
    db: Session, sendgrid: SendGridServer
) -> None:
    emails = add_subscribers(db, 150)
    issue_id = make_issue(db)
    start(issue_id)
    sendgrid.rate_limit_next(1, reset_in=0.4)
    began = time.monotonic()
    send(issue_id)
    assert time.monotonic() - began >= 0.35
    assert sendgrid.statuses[429] == 1
    assert len(by_status(db, issue_id)[DeliveryStatus.SENT]) == 150
    assert len(sendgrid.received) == len(emails)
    assert_nobody_twice(sendgrid)
    assert issue_status(issue_id) == IssueStatus.SENT


def test_5xx_is_retried_then_sent(db: Session, sendgrid: SendGridServer) -> None:
    add_subscribers(db, 100)
    issue_id = make_issue(db)
    start(issue_id)
    sendgrid.fail_next(503, times=2)
    send(issue_id)
    assert sendgrid.statuses[503] == 2
    assert len(by_status(db, issue_id)[DeliveryStatus.SENT]) == 100
    assert_nobody_twice(sendgrid)


def test_5xx_until_the_deadline_fails_the_batch_with_the_reason(
    db: Session, sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SEND_DEADLINE_SECONDS", "1")
    reset_settings()
    add_subscribers(db, 100)
    issue_id = make_issue(db)
    start(issue_id)
    sendgrid.fail_next(500, times=1000)
    send(issue_id)
    failed = by_status(db, issue_id)[DeliveryStatus.FAILED]
    assert len(failed) == 100
    assert all("deadline" in (d.error or "") and "SendGrid 500" in (d.error or "") for d in failed)
    assert sendgrid.statuses[500] >= 2 and not sendgrid.received
    assert issue_status(issue_id) == IssueStatus.SENT  # every delivery has an end state


def test_connection_refused_is_retried_until_the_deadline(
    db: Session, monkeypatch: pytest.MonkeyPatch, sendgrid: SendGridServer
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("SENDGRID_API_HOST", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("NEWSLETTER_SEND_DEADLINE_SECONDS", "0.8")
    reset_settings()
    add_subscribers(db, 20)
    issue_id = make_issue(db)
    start(issue_id)
    send(issue_id)
    failed = by_status(db, issue_id)[DeliveryStatus.FAILED]
    assert len(failed) == 20 and "unreachable" in (failed[0].error or "")


def test_a_timeout_after_the_request_went_out_is_uncertain_never_resent(
    db: Session, sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_TIMEOUT_SECONDS", "0.3")
    reset_settings()
    add_subscribers(db, 200)
    issue_id = make_issue(db)
    start(issue_id)
    sendgrid.slow_next(0.8)
    send(issue_id)
    states = by_status(db, issue_id)
    assert len(states[DeliveryStatus.UNCERTAIN]) == 100  # exactly the batch that timed out
    assert len(states[DeliveryStatus.SENT]) == 100
    assert "no answer from SendGrid" in (states[DeliveryStatus.UNCERTAIN][0].error or "")
    time.sleep(0.6)  # the slow request completes server-side: SendGrid did take it
    assert len(sendgrid.received) == 200
    assert_nobody_twice(sendgrid)
    assert issue_status(issue_id) == IssueStatus.SENT

    with transaction() as session:
        assert service.resolve_mark_sent(session, issue_id) == 100
    assert len(by_status(db, issue_id)[DeliveryStatus.SENT]) == 200


def test_a_dropped_connection_is_uncertain_and_resend_sends_only_those(
    db: Session, sendgrid: SendGridServer
) -> None:
    add_subscribers(db, 300)
    issue_id = make_issue(db)
    start(issue_id)
    sendgrid.drop_next(1, accepted=False)
    send(issue_id)
    states = by_status(db, issue_id)
    assert len(states[DeliveryStatus.UNCERTAIN]) == 100
    assert len(sendgrid.received) == 200
    uncertain = {d.id for d in states[DeliveryStatus.UNCERTAIN]}

    with transaction() as session:
        assert service.resolve_requeue(session, issue_id) == 100
    send(issue_id, resolving=True)
    states = by_status(db, issue_id)
    assert len(states[DeliveryStatus.SENT]) == 300
    resent = {int(r.delivery_id or 0) for r in sendgrid.accepted[-1].recipients}
    assert resent == uncertain
    assert_nobody_twice(sendgrid)


def test_400_fails_only_the_offending_recipients_with_sendgrids_message(
    db: Session, sendgrid: SendGridServer
) -> None:
    emails = add_subscribers(db, 250)
    bad = {emails[3]: "The email address is on a blocklist.", emails[160]: "Invalid mailbox."}
    sendgrid.reject_addresses(bad)
    issue_id = make_issue(db)
    start(issue_id)
    send(issue_id)
    states = by_status(db, issue_id)
    failed = {d.subscriber_id: d.error for d in states[DeliveryStatus.FAILED]}
    assert len(failed) == 2 and len(states[DeliveryStatus.SENT]) == 248
    emails_by_id = {row[0]: row[1] for row in db.execute(select(Subscriber.id, Subscriber.email))}
    assert {emails_by_id[i]: e for i, e in failed.items() if i is not None} == {
        a: f"SendGrid 400: {m}" for a, m in bad.items()
    }
    assert set(sendgrid.received) == {(str(issue_id), e) for e in emails if e not in bad}
    assert_nobody_twice(sendgrid)


def test_400_that_names_nobody_is_narrowed_down_by_splitting(
    db: Session, sendgrid: SendGridServer
) -> None:
    add_subscribers(db, 100)
    issue_id = make_issue(db)
    start(issue_id)
    sendgrid.fail_next(400, body={"errors": [{"message": "Bad Request", "field": None}]})
    send(issue_id)
    assert len(by_status(db, issue_id)[DeliveryStatus.SENT]) == 100
    assert sorted(len(r.recipients) for r in sendgrid.accepted) == [50, 50]


def test_401_pauses_the_whole_send_and_marks_nothing_failed(
    db: Session, sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked")
    reset_settings()
    add_subscribers(db, 250)
    issue_id = make_issue(db)
    start(issue_id)
    send(issue_id)
    assert issue_status(issue_id) == IssueStatus.PAUSED
    states = by_status(db, issue_id)
    assert set(states) == {DeliveryStatus.QUEUED}
    with transaction() as session:
        assert "SendGrid 401" in (repository.last_batch_error(session, issue_id) or "")
    assert sendgrid.statuses[401] == 1  # it stopped at once, not once per batch

    monkeypatch.setenv("SENDGRID_API_KEY", "SG.loopback-test-key")
    reset_settings()
    with transaction() as session:
        service.resume(session, issue_id)
    send(issue_id)
    assert len(by_status(db, issue_id)[DeliveryStatus.SENT]) == 250
    assert issue_status(issue_id) == IssueStatus.SENT


class AfterFirstBatch(SendGridTransport):
    """The real transport, plus something that happens while the first batch is out."""

    def __init__(self, hook: Callable[[], None]) -> None:
        super().__init__()
        self.hook: Callable[[], None] | None = hook

    def send_batch(
        self,
        content: MailContent,
        recipients: Sequence[Recipient],
        *,
        issue_id: int,
        categories: Sequence[str] = (),
    ) -> BatchResult:
        result = super().send_batch(content, recipients, issue_id=issue_id, categories=categories)
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return result


def test_someone_who_unsubscribes_mid_send_is_not_mailed(
    db: Session, sendgrid: SendGridServer
) -> None:
    emails = add_subscribers(db, 300)
    issue_id = make_issue(db)
    start(issue_id)
    leaver = emails[250]

    def unsubscribe() -> None:
        with transaction() as session:
            session.execute(
                update(Subscriber)
                .where(Subscriber.email == leaver)
                .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=datetime.now(UTC))
            )

    send(issue_id, transport=AfterFirstBatch(unsubscribe))
    states = by_status(db, issue_id)
    assert len(states[DeliveryStatus.SKIPPED]) == 1
    assert "no longer mailable" in (states[DeliveryStatus.SKIPPED][0].error or "")
    assert (str(issue_id), leaver) not in sendgrid.received
    assert len(sendgrid.received) == 299
    assert issue_status(issue_id) == IssueStatus.SENT


def test_pause_stops_workers_between_batches_and_resume_finishes(
    db: Session, sendgrid: SendGridServer
) -> None:
    add_subscribers(db, 400)
    issue_id = make_issue(db)
    start(issue_id)

    def pause() -> None:
        with transaction() as session:
            service.pause(session, issue_id)

    send(issue_id, transport=AfterFirstBatch(pause))
    assert issue_status(issue_id) == IssueStatus.PAUSED
    states = by_status(db, issue_id)
    assert len(states[DeliveryStatus.SENT]) == 100 and len(states[DeliveryStatus.QUEUED]) == 300

    with transaction() as session:
        service.resume(session, issue_id)
    send(issue_id)
    assert len(by_status(db, issue_id)[DeliveryStatus.SENT]) == 400
    assert_nobody_twice(sendgrid)


def test_cancel_mid_send_skips_what_was_not_handed_off(
    db: Session, sendgrid: SendGridServer
) -> None:
    add_subscribers(db, 300)
    issue_id = make_issue(db)
    start(issue_id)

    def cancel() -> None:
        with transaction() as session:
            service.cancel_send(session, issue_id)

    send(issue_id, transport=AfterFirstBatch(cancel))
    states = by_status(db, issue_id)
    assert len(states[DeliveryStatus.SENT]) == 100
    assert len(states[DeliveryStatus.SKIPPED]) == 200
    assert "cancelled" in (states[DeliveryStatus.SKIPPED][0].error or "")
    assert issue_status(issue_id) == IssueStatus.CANCELLED
    assert len(sendgrid.received) == 100


def test_a_batch_left_in_flight_by_a_dead_worker_becomes_uncertain_not_resent(
    db: Session, sendgrid: SendGridServer
) -> None:
    add_subscribers(db, 300)
    issue_id = make_issue(db)
    start(issue_id)
    dead_worker = service.local_worker_id(2**22 + 12345)  # above pid_max: never alive
    with transaction() as session:
        claim = claims.claim_batch(session, issue_id, dead_worker, datetime.now(UTC))
        assert claim is not None
        claims.put_in_flight(session, claim.batch_id, datetime.now(UTC))
    send(issue_id)
    states = by_status(db, issue_id)
    assert {d.batch_id for d in states[DeliveryStatus.UNCERTAIN]} == {claim.batch_id}
    assert len(states[DeliveryStatus.UNCERTAIN]) == 100
    assert len(states[DeliveryStatus.SENT]) == 200 and len(sendgrid.received) == 200
    db.expire_all()
    batch = db.get(SendBatch, claim.batch_id)
    assert (
        batch is not None
        and batch.status == BatchStatus.DONE
        and dead_worker in (batch.error or "")
    )


def test_start_send_happens_once(db: Session, sendgrid: SendGridServer) -> None:
    add_subscribers(db, 10)
    issue_id = make_issue(db)
    start(issue_id)
    with transaction() as session:
        assert service.start_send(session, issue_id) is False
    assert repository.status_counts(db, issue_id)["recipients"] == 10


def test_rate_limit_setting_spaces_the_batches(
    db: Session, sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SEND_RATE_LIMIT", "500")
    reset_settings()
    add_subscribers(db, 300)
    issue_id = make_issue(db)
    start(issue_id)
    began = time.monotonic()
    send(issue_id)
    # 300 emails at 500/s: the first 100 go at once, the rest no faster than the limit.
    assert time.monotonic() - began >= 0.35
    assert len(by_status(db, issue_id)[DeliveryStatus.SENT]) == 300

"""Sending an issue through the real `sendgrid` client to the loopback SendGrid, both engines."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.issues.models import Issue, IssueStatus
from newsletter.security.delivery_tokens import read_delivery_token
from newsletter.sending import repository, service
from newsletter.sending.models import Delivery, DeliveryStatus
from newsletter.sending.worker import run_until_done
from tests.sending.conftest import add_subscribers, make_issue
from tests.support.sendgrid_server import SendGridServer


def start(issue_id: int) -> None:
    with transaction() as session:
        assert service.start_send(session, issue_id)


def counts(issue_id: int) -> dict[str, int]:
    with transaction() as session:
        return repository.status_counts(session, issue_id)


def deliveries(db: Session, issue_id: int) -> list[Delivery]:
    db.expire_all()
    return list(db.scalars(select(Delivery).where(Delivery.issue_id == issue_id)))


def test_an_issue_goes_out_in_requests_of_1000_each_address_once(
    db: Session, sendgrid: SendGridServer
) -> None:
    emails = add_subscribers(db, 2500, opt_out_every=10)
    issue_id = make_issue(db)
    start(issue_id)
    run_until_done(issue_id, worker_id="test-worker")

    sizes = sorted(len(r.recipients) for r in sendgrid.accepted)
    # The 250 tracking opt-outs get the untracked render, in a request of their own.
    assert sizes == [250, 250, 1000, 1000]
    untracked = [r for r in sendgrid.accepted if "/o/" not in str(r.payload["content"])]  # type: ignore[index]
    assert len(untracked) == 1 and len(untracked[0].recipients) == 250
    assert set(sendgrid.received) == {(str(issue_id), e) for e in emails}
    assert set(sendgrid.received.values()) == {1}
    assert counts(issue_id)["sent"] == 2500
    rows = deliveries(db, issue_id)
    message_ids = {r.message_id for r in sendgrid.accepted}
    assert all(d.status == DeliveryStatus.SENT and d.message_id in message_ids for d in rows)
    db.expire_all()
    assert db.get(Issue, issue_id).status == IssueStatus.SENT  # type: ignore[union-attr]
    # Every recipient's token names their own delivery, in the substitution and the header.
    by_delivery = {d.id: d for d in rows}
    for recipient in sendgrid.recipients():
        assert recipient.token is not None
        link = read_delivery_token(recipient.token)
        assert link is not None and link.public_id is not None
        delivery_id = link.delivery_id
        assert str(delivery_id) == recipient.delivery_id
        assert by_delivery[delivery_id].status == DeliveryStatus.SENT  # type: ignore[index]
        assert recipient.headers["List-Unsubscribe"] == f"<https://nl.example/u/{recipient.token}>"

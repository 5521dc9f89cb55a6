"""A `dropped` event for an address SendGrid refuses for ever suppresses it here too, so the
next issue does not hand SendGrid a known complainer again; a drop about the request changes
nothing (issue 18)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers import service as subscribers
from subscribers.models import Subscriber, SubscriberStatus, Suppression
from tests.tracking.conftest import build_world
from tests.tracking.test_healing import post, sendgrid_event

CASES = [
    ("Bounced Address", SubscriberStatus.BOUNCED, "bounced"),
    ("Invalid", SubscriberStatus.BOUNCED, "bounced"),
    ("Spam Reporting Address", SubscriberStatus.COMPLAINED, "complained"),
    ("Unsubscribed Address", SubscriberStatus.UNSUBSCRIBED, "unsubscribed"),
    ("Recipient List over Package Quota", SubscriberStatus.ACTIVE, None),
    ("Invalid SMTPAPI header", SubscriberStatus.ACTIVE, None),
    ("", SubscriberStatus.ACTIVE, None),
]


@pytest.mark.parametrize(("reason", "status", "suppressed"), CASES)
def test_a_drop_for_ever_suppresses_and_a_drop_of_the_request_does_not(
    client: TestClient,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    reason: str,
    status: SubscriberStatus,
    suppressed: str | None,
) -> None:
    world = build_world(db, readers=2)
    post(client, signing_key, [sendgrid_event(world, 0, "dropped", "x0", reason=reason)])
    db.expire_all()
    person = db.get(Subscriber, world.subscribers[0])
    assert person is not None and person.status is status
    found = db.scalar(select(Suppression).where(Suppression.email_hash == person.email_hash))
    assert (found.reason if found else None) == suppressed
    if found is not None and status is not SubscriberStatus.UNSUBSCRIBED:
        assert found.detail == f"dropped by SendGrid: {reason}"
    # The other reader is untouched, and the next issue's audience leaves the dropped one out.
    other = db.get(Subscriber, world.subscribers[1])
    assert other is not None and other.status is SubscriberStatus.ACTIVE
    mailable = set(db.scalars(subscribers.mailable_ids_select()))
    assert (world.subscribers[0] in mailable) is (suppressed is None)


def test_the_same_drop_twice_counts_once(
    client: TestClient, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    world = build_world(db, readers=1)
    event = sendgrid_event(world, 0, "dropped", "x0", reason="Spam Reporting Address")
    post(client, signing_key, [event])
    post(client, signing_key, [event])
    assert db.scalar(select(Subscriber.status)) is SubscriberStatus.COMPLAINED

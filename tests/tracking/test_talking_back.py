"""The loopback SendGrid talks back: a real send through the `sendgrid` transport, then the
signed Event Webhook batches SendGrid would post (late, duplicated, out of order) into the real
app under uvicorn, on both engines. What ends stored is what SendGrid reported, once."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.sending import service as sending_service
from newsletter.sending.models import Delivery
from newsletter.sending.worker import run_until_done
from newsletter.settings import reset_settings
from newsletter.tracking import webhook
from newsletter.tracking.models import TrackingEvent
from newsletter.web.app import create_app
from subscribers import service as subscribers_service
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus, Suppression
from tests.live_server import serving
from tests.sending.conftest import API_KEY, POSTAL_ADDRESS, add_subscribers, make_issue
from tests.support.event_webhook import EventWebhook, Outcome, TalkBack, check_loopback
from tests.support.sendgrid_server import SendGridServer

# What SendGrid reports per recipient, by outcome: `processed` and then these.
EXPECTED = {
    "delivered": ["processed", "delivered"],
    "bounce": ["processed", "bounce"],
    "blocked": ["processed", "blocked"],  # event=bounce, type=blocked: stored as "blocked"
    "deferred": ["processed", "deferred"],
    "dropped": ["processed", "dropped"],
    "open": ["processed", "delivered", "open"],
    "spamreport": ["processed", "delivered", "spamreport"],
}
# By subscriber index: the rest are delivered.
PLAN: dict[int, Outcome] = {
    1: Outcome("bounce"),
    2: Outcome("blocked"),
    3: Outcome("dropped", reason="Unsubscribed Address"),
    4: Outcome("deferred"),
    5: Outcome("open", machine=True),
    6: Outcome("spamreport"),
}


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> ec.EllipticCurvePrivateKey:
    """A P-256 key pair: the public half configured as SendGrid's, the private half the
    loopback server's."""
    private = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", webhook.encode_public_key(private))
    reset_settings()
    return private


@pytest.fixture
def app_url(db_url: str, key: ec.EllipticCurvePrivateKey) -> Iterator[str]:
    """The service's app under uvicorn on a loopback port, on the test database."""
    with serving(create_app()) as base:
        yield base


@contextmanager
def talking_sendgrid(monkeypatch: pytest.MonkeyPatch, config: TalkBack) -> Iterator[SendGridServer]:
    with SendGridServer(api_key=API_KEY, talk_back=config) as server:
        monkeypatch.setenv("NEWSLETTER_TRANSPORT", "sendgrid")
        monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
        monkeypatch.setenv("NEWSLETTER_POSTAL_ADDRESS", POSTAL_ADDRESS)
        monkeypatch.setenv("SENDGRID_API_HOST", server.url)
        monkeypatch.setenv("SENDGRID_TIMEOUT_SECONDS", "5")
        monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://nl.example")
        reset_settings()
        yield server
    reset_settings()


def send(issue_id: int) -> None:
    with transaction() as session:
        assert sending_service.start_send(session, issue_id)
    run_until_done(issue_id, worker_id="talk-back-test")


def plan_for(emails: list[str]) -> dict[str, Outcome]:
    return {emails[i]: outcome for i, outcome in PLAN.items() if i < len(emails)}


def hook(server: SendGridServer) -> EventWebhook:
    assert server.webhook is not None
    return server.webhook


def deliveries_by_email(db: Session, issue_id: int) -> dict[str, int]:
    db.expire_all()
    rows = db.execute(
        select(Subscriber.email, Delivery.id)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.issue_id == issue_id)
    )
    return {email: delivery_id for email, delivery_id in rows}


def stored_by_delivery(db: Session, issue_id: int) -> dict[int | None, Counter[str]]:
    db.expire_all()
    found: dict[int | None, Counter[str]] = {}
    for row in db.scalars(select(TrackingEvent).where(TrackingEvent.source == "sendgrid")):
        if row.issue_id == issue_id or row.issue_id is None:
            found.setdefault(row.delivery_id, Counter())[row.provider_type] += 1
    return found


def person(db: Session, email: str) -> tuple[SubscriberStatus, str | None]:
    db.expire_all()
    status = db.scalar(select(Subscriber.status).where(Subscriber.email == email))
    assert status is not None
    reason = db.scalar(
        select(Suppression.reason).where(Suppression.email_hash == address_hash(email))
    )
    return status, reason


def service_answers(server: SendGridServer) -> Counter[str]:
    """The service's own counts, summed over the batches it answered 200."""
    total: Counter[str] = Counter()
    for post in hook(server).posts:
        if post.status == 200:
            total.update({k: v for k, v in json.loads(post.response).items() if k != "received"})
    return total


def test_a_send_is_reported_back_once_per_event_whatever_the_webhook_repeats(
    db: Session,
    app_url: str,
    key: ec.EllipticCurvePrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emails = add_subscribers(db, 8)
    issue_id = make_issue(db)
    config = TalkBack(
        url=f"{app_url}/webhooks/sendgrid",
        private_key=key,
        outcomes=plan_for(emails),
        duplicate_fraction=0.5,
        delay=(0.0, 0.3),
        batch_size=5,
        seed=18,
    )
    with talking_sendgrid(monkeypatch, config) as server:
        send(issue_id)
        hook(server).flush(timeout=60)
        stats = hook(server).stats()

    deliveries = deliveries_by_email(db, issue_id)
    assert set(deliveries) == set(emails)
    stored = stored_by_delivery(db, issue_id)
    assert None not in stored, "every event names its delivery"
    for email, delivery_id in deliveries.items():
        kind = config.outcomes.get(email, Outcome("delivered"))
        assert isinstance(kind, Outcome)
        assert stored[delivery_id] == Counter(EXPECTED[kind.kind]), email
    # What was posted: every planned event at least once, some twice, all answered 200.
    unique = sum(stats["scheduled"].values())
    assert unique == sum(len(EXPECTED[o.kind]) for o in plan_for(emails).values()) + 2 * 2
    assert stats["duplicates"] > 0
    assert sum(stats["posted"].values()) == unique + stats["duplicates"]
    assert stats["failed_posts"] == stats["lost"] == stats["abandoned"] == 0
    assert stats["batches"] >= -(-sum(stats["posted"].values()) // 5)
    # The service's answers agree: each event stored once, every copy a duplicate.
    answers = service_answers(server)
    assert answers["stored"] == unique == sum(sum(c.values()) for c in stored.values())
    assert answers["duplicates"] == stats["duplicates"]
    assert answers["unmatched"] == 0
    # What the events mean for the person is subscribers' call.
    assert person(db, emails[1]) == (SubscriberStatus.BOUNCED, "bounced")
    assert person(db, emails[6]) == (SubscriberStatus.COMPLAINED, "complained")
    # A drop for an address on SendGrid's own unsubscribe list: unsubscribed here too.
    assert person(db, emails[3]) == (SubscriberStatus.UNSUBSCRIBED, "unsubscribed")
    # A block, a deferral, an open change nothing.
    for index in (0, 2, 4, 5, 7):
        assert person(db, emails[index]) == (SubscriberStatus.ACTIVE, None), index
    # The events carry what the request carried.
    message_ids = {r.message_id for r in server.accepted}
    for event in hook(server).events:
        assert event["issue_id"] == str(issue_id)
        assert event["delivery_id"] == str(deliveries[event["email"]])
        assert event["sg_message_id"].split(".filter")[0] in message_ids
    assert len({e["sg_event_id"] for e in hook(server).events}) == unique


def test_each_batch_is_signed_as_sendgrid_signs_and_a_tampered_one_is_refused(
    db: Session,
    app_url: str,
    key: ec.EllipticCurvePrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emails = add_subscribers(db, 3)
    issue_id = make_issue(db)
    config = TalkBack(url=f"{app_url}/webhooks/sendgrid", private_key=key, batch_size=2)
    with talking_sendgrid(monkeypatch, config) as server:
        hook(server).tamper_next(1)
        send(issue_id)
        hook(server).flush(timeout=60)
        posts = list(hook(server).posts)
        stats = hook(server).stats()

    public = webhook.load_public_key(webhook.encode_public_key(key))
    tampered = [p for p in posts if p.tampered]
    assert len(tampered) == 1 and tampered[0].status == 400
    assert b"signature does not match" in tampered[0].response
    with pytest.raises(webhook.SignatureError):
        webhook.verify(
            public,
            signature=tampered[0].signature,
            timestamp=tampered[0].timestamp,
            body=tampered[0].body,
            max_age_seconds=600,
        )
    intact = [p for p in posts if not p.tampered]
    assert intact and all(p.status == 200 for p in intact)
    for post in intact:  # the service's own verifier accepts what the double signed
        webhook.verify(
            public,
            signature=post.signature,
            timestamp=post.timestamp,
            body=post.body,
            max_age_seconds=600,
        )
    # The refused batch went again, intact (SendGrid retries anything but 2xx): nothing lost.
    assert stats["failed_posts"] == stats["retries"] == 1 and stats["lost"] == 0
    stored = stored_by_delivery(db, issue_id)
    assert sorted(stored.values(), key=str) == [Counter(processed=1, delivered=1)] * len(emails)


def state(db: Session, issue_id: int, prefix: str) -> dict[int, Any]:
    """Per subscriber number: stored event types (with the machine flag), status, suppression."""
    deliveries = deliveries_by_email(db, issue_id)
    db.expire_all()
    out: dict[int, Any] = {}
    for email, delivery_id in deliveries.items():
        rows = db.scalars(select(TrackingEvent).where(TrackingEvent.delivery_id == delivery_id))
        kinds = Counter((r.provider_type, r.machine) for r in rows)
        number = int(email.split("@")[0].removeprefix(prefix))
        out[number] = (sorted(kinds.items()), person(db, email))
    return out


def test_late_duplicated_and_shuffled_events_end_as_in_order_ones_do(
    db: Session,
    app_url: str,
    key: ec.EllipticCurvePrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count = 9
    calm = add_subscribers(db, count, prefix="calm")
    first = make_issue(db, week="2026-W47")
    config = TalkBack(
        url=f"{app_url}/webhooks/sendgrid", private_key=key, outcomes=plan_for(calm), seed=1
    )
    with talking_sendgrid(monkeypatch, config) as server:
        send(first)
        hook(server).flush(timeout=60)
        assert hook(server).stats()["duplicates"] == 0
        in_order = state(db, first, "calm")

        # The same plan for a second list, SendGrid at its worst: every event late by up to
        # 0.6 s, drawn apart from the recipient's other events, shuffled, 80% posted twice,
        # in batches of 3.
        with transaction() as session:
            for subscriber_id in session.scalars(select(Subscriber.id)):
                subscribers_service.set_paused(session, subscriber_id, True)
        rough = add_subscribers(db, count, prefix="rough")
        second = make_issue(db, week="2026-W48")
        hook(server).config = replace(
            config,
            outcomes=plan_for(rough),
            shuffle=True,
            duplicate_fraction=0.8,
            delay=(0.0, 0.6),
            batch_size=3,
        )
        send(second)
        assert hook(server).wait_idle(timeout=60)
        stats = hook(server).stats()

    assert stats["duplicates"] > 0 and stats["lost"] == 0
    # Out of order for real: some recipient's outcome was posted before its `processed`.
    assert any(_posted_out_of_order(hook(server)))
    assert state(db, second, "rough") == in_order
    assert in_order[1][1] == (SubscriberStatus.BOUNCED, "bounced")


def _posted_out_of_order(poster: EventWebhook) -> Iterator[bool]:
    seen: set[str] = set()
    for post in poster.posts:
        if post.status != 200:
            continue
        for event in json.loads(post.body):
            if event["event"] == "processed":
                seen.add(event["sg_message_id"])
            elif event["email"].startswith("rough"):
                yield event["sg_message_id"] not in seen


def test_it_posts_only_to_this_machine() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    for url in (
        "http://example.com/webhooks/sendgrid",
        "https://127.0.0.1/webhooks/sendgrid",
        "http://10.0.0.1:8000/hook",
        "http://127.0.0.1.example.com/hook",
        "ftp://localhost/hook",
    ):
        with pytest.raises(ValueError, match="only to"):
            check_loopback(url)
        with pytest.raises(ValueError):
            SendGridServer(talk_back=TalkBack(url=url, private_key=key), validate_schema=False)
    assert check_loopback("http://localhost:8123/webhooks/sendgrid?x=1") == (
        "localhost",
        8123,
        "/webhooks/sendgrid?x=1",
    )


def test_stopping_drops_what_still_waits_and_says_so() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    config = TalkBack(url="http://127.0.0.1:9/hook", private_key=key, delay=(30.0, 30.0))
    server = SendGridServer(talk_back=config, validate_schema=False).start()
    payload = {
        "personalizations": [
            {"to": [{"email": "a@example.com"}], "custom_args": {"delivery_id": "7"}}
        ]
    }
    hook(server).schedule("msg", payload)
    assert hook(server).stats()["pending"] == 2
    assert not hook(server).wait_idle(timeout=0.2)
    server.stop()
    stats = hook(server).stats()
    assert (stats["abandoned"], stats["posts"], stats["pending"]) == (2, 0, 0)


def test_sandbox_mode_reports_nothing_and_the_queue_is_bounded() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    config = TalkBack(
        url="http://127.0.0.1:9/hook", private_key=key, delay=(30.0, 30.0), max_pending=3
    )
    poster = EventWebhook(config)
    one = {"personalizations": [{"to": [{"email": "a@example.com"}, {"email": "b@example.com"}]}]}
    poster.schedule("sandboxed", {**one, "mail_settings": {"sandbox_mode": {"enable": True}}})
    assert poster.stats()["pending"] == 0
    poster.schedule("m", one)
    stats = poster.stats()
    assert (stats["pending"], stats["overflow"]) == (3, 1)


def test_batches_posted_at_once_each_count_once(
    db: Session,
    app_url: str,
    key: ec.EllipticCurvePrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four POSTs in flight at once, a copy of half the events racing its original: each
    event still counts once and each bounce and complaint suppresses once."""
    emails = add_subscribers(db, 40)
    issue_id = make_issue(db)
    config = TalkBack(
        url=f"{app_url}/webhooks/sendgrid",
        private_key=key,
        fractions={"bounce": 0.4, "spamreport": 0.2},
        shuffle=True,
        duplicate_fraction=0.5,
        batch_size=4,
        concurrency=4,
        max_attempts=6,
        seed=7,
    )
    with talking_sendgrid(monkeypatch, config) as server:
        send(issue_id)
        hook(server).flush(timeout=120)
        stats = hook(server).stats()
        planned = dict(hook(server).outcomes)
    assert stats["lost"] == 0
    stored = stored_by_delivery(db, issue_id)
    deliveries = deliveries_by_email(db, issue_id)
    for email in emails:
        assert stored[deliveries[email]] == Counter(EXPECTED[planned[email].kind]), email
        status, _ = person(db, email)
        want = {"bounce": SubscriberStatus.BOUNCED, "spamreport": SubscriberStatus.COMPLAINED}
        assert status == want.get(planned[email].kind, SubscriberStatus.ACTIVE), email


def test_a_batch_nobody_takes_is_tried_max_attempts_times_then_counted_lost() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with socket.socket() as closed:  # a port bound, never listened on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        config = TalkBack(
            url=f"http://127.0.0.1:{port}/hook",
            private_key=key,
            max_attempts=2,
            retry_backoff=0.01,
        )
        poster = EventWebhook(config).start()
        poster.schedule("m", {"personalizations": [{"to": [{"email": "a@example.com"}]}]})
        poster.flush(timeout=10)
        poster.stop()
    stats = poster.stats()
    assert (stats["posts"], stats["failed_posts"], stats["retries"], stats["lost"]) == (2, 2, 1, 2)
    assert stats["statuses"] == {"none": 2} and stats["batches"] == 0
    assert [p.attempt for p in poster.posts] == [1, 2]
    assert all(p.error and "Connection" in p.error for p in poster.posts)

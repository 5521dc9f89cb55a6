"""SendGrid's Signed Event Webhook: only SendGrid's signature gets in, each event counts once,
and each event type does what it means for the subscriber."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.tracking.models import EventType, TrackingEvent
from newsletter.tracking.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_payload
from subscribers.models import Subscriber, SubscriberStatus, Suppression
from tests.tracking.conftest import World

URL = "/webhooks/sendgrid"


def event(world: World, index: int, name: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": f"reader{index}@example.com",
        "timestamp": int(time.time()) - 60,
        "event": name,
        "sg_event_id": event_id,
        "sg_message_id": f"msg{index}.filter",
        # custom_args arrive flattened into each event, as strings.
        "delivery_id": str(world.deliveries[index]),
        "issue_id": str(world.issue_id),
        **extra,
    }


def signed(
    key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]], *, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()) if at is None else at)
    return body, {
        SIGNATURE_HEADER: sign_payload(key, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
        "Content-Type": "application/json",
    }


def stored(db: Session) -> list[TrackingEvent]:
    db.expire_all()
    return list(db.scalars(select(TrackingEvent).order_by(TrackingEvent.id)))


def subscriber(db: Session, subscriber_id: int) -> Subscriber:
    db.expire_all()
    found = db.get(Subscriber, subscriber_id)
    assert found is not None
    return found


# --- signatures -------------------------------------------------------------------------------


def test_a_validly_signed_batch_is_stored(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    body, headers = signed(signing_key, [event(world, 0, "delivered", "e1")])
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    [row] = stored(db)
    assert (row.type, row.delivery_id, row.issue_id) == (
        EventType.DELIVERED,
        world.deliveries[0],
        world.issue_id,
    )
    assert row.raw is not None and row.raw["sg_event_id"] == "e1"


def test_a_stored_event_says_what_sendgrid_said_field_by_field(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    an_hour_ago = int(time.time()) - 3600
    bounce = event(
        world,
        0,
        "bounce",
        "b1",
        timestamp=an_hour_ago,
        type="bounce",
        status="5.1.1",
        reason="no such user",
        useragent="Mozilla/5.0 (Mail)",
    )
    undated = {k: v for k, v in event(world, 1, "delivered", "d1").items() if k != "timestamp"}
    before = datetime.now(UTC).replace(microsecond=0)
    post(client, signing_key, [bounce, undated])
    after = datetime.now(UTC)
    dated, arrived = stored(db)
    # The event's own time, not the time the webhook happened to be called.
    assert dated.occurred_at == datetime.fromtimestamp(an_hour_ago, UTC)
    assert before <= dated.received_at <= after
    assert (
        dated.source,
        dated.type,
        dated.provider_type,
        dated.provider_event_id,
        dated.delivery_id,
        dated.issue_id,
        dated.matchup_id,
        dated.link_key,
        dated.machine,
        dated.user_agent,
        dated.detail,
    ) == (
        "sendgrid",
        EventType.BOUNCED,
        "bounce",
        "b1",
        world.deliveries[0],
        world.issue_id,
        None,
        None,
        False,
        "Mozilla/5.0 (Mail)",
        "5.1.1 | no such user",
    )
    assert dated.raw == bounce
    assert arrived.occurred_at == arrived.received_at and before <= arrived.received_at <= after
    assert (arrived.user_agent, arrived.detail) == (None, None)
    bounced = subscriber(db, world.subscribers[0])
    assert bounced.status is SubscriberStatus.BOUNCED


def test_a_tampered_body_is_refused_and_nothing_is_stored(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    body, headers = signed(signing_key, [event(world, 0, "spamreport", "e1")])
    tampered = body.replace(b"spamreport", b"delivered!")
    response = client.post(URL, content=tampered, headers=headers)
    assert response.status_code == 400
    assert stored(db) == []
    assert subscriber(db, world.subscribers[0]).status is SubscriberStatus.ACTIVE


def test_a_signature_from_another_key_is_refused(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    impostor = ec.generate_private_key(ec.SECP256R1())
    body, headers = signed(impostor, [event(world, 0, "delivered", "e1")])
    assert client.post(URL, content=body, headers=headers).status_code == 400
    assert stored(db) == []


def test_missing_headers_and_garbage_signatures_are_refused(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    body, headers = signed(signing_key, [event(world, 0, "delivered", "e1")])
    assert client.post(URL, content=body).status_code == 400
    for alone in (SIGNATURE_HEADER, TIMESTAMP_HEADER):
        response = client.post(URL, content=body, headers={alone: headers[alone]})
        assert (response.status_code, response.text) == (
            400,
            f"refused: missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header",
        )
    garbage = {**headers, SIGNATURE_HEADER: "not base64 at all!"}
    assert client.post(URL, content=body, headers=garbage).status_code == 400
    moved = {**headers, TIMESTAMP_HEADER: str(int(headers[TIMESTAMP_HEADER]) + 1)}
    assert client.post(URL, content=body, headers=moved).status_code == 400
    assert stored(db) == []


def test_a_stale_timestamp_is_refused_even_with_a_valid_signature(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    eleven_minutes_ago = int(time.time()) - 11 * 60
    body, headers = signed(signing_key, [event(world, 0, "delivered", "e1")], at=eleven_minutes_ago)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 400
    assert "stale" in response.text
    assert stored(db) == []


def test_a_replayed_request_is_counted_once(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    body, headers = signed(
        signing_key, [event(world, 0, "open", "e1"), event(world, 1, "open", "e2")]
    )
    first = client.post(URL, content=body, headers=headers)
    again = client.post(URL, content=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == {"received": 2, "stored": 0, "duplicates": 2, "unmatched": 0}
    assert len(stored(db)) == 2


def test_duplicates_inside_and_across_batches_are_counted_once(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    # SendGrid delivers at least once: the same sg_event_id can come in one post and the next.
    batch = [
        event(world, 0, "click", "c1", url="https://x.example"),
        event(world, 0, "click", "c1", url="https://x.example"),
    ]
    body, headers = signed(signing_key, batch)
    assert client.post(URL, content=body, headers=headers).json()["stored"] == 1
    body, headers = signed(
        signing_key, [*batch, event(world, 1, "click", "c2", url="https://x.example")]
    )
    assert client.post(URL, content=body, headers=headers).json()["stored"] == 1
    assert [e.provider_event_id for e in stored(db)] == ["c1", "c2"]


def test_without_a_configured_key_events_are_not_accepted(
    client: TestClient, world: World, db: Session
) -> None:
    # 5xx, not 2xx: SendGrid keeps the events and retries once the key is set.
    response = client.post(
        URL, content=b"[]", headers={TIMESTAMP_HEADER: "1", SIGNATURE_HEADER: "x"}
    )
    assert response.status_code == 503
    assert stored(db) == []


def test_a_signed_body_that_is_not_an_event_array_is_a_400(
    client: TestClient, signing_key: ec.EllipticCurvePrivateKey, db_url: str
) -> None:
    timestamp = str(int(time.time()))
    for body in (b'{"event": "open"}', b"[1, 2]", b"not json"):
        headers = {
            SIGNATURE_HEADER: sign_payload(signing_key, timestamp, body),
            TIMESTAMP_HEADER: timestamp,
        }
        assert client.post(URL, content=body, headers=headers).status_code == 400


def test_a_processing_failure_is_a_5xx_so_sendgrid_retries(
    client: TestClient,
    world: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from subscribers import service as subscribers_service

    real = subscribers_service.mark_complained
    database_down = True

    def flaky(*args: Any, **kwargs: Any) -> bool:
        if database_down:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(subscribers_service, "mark_complained", flaky)
    batch = [event(world, 1, "delivered", "d1"), event(world, 0, "spamreport", "s1")]
    body, headers = signed(signing_key, batch)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 500
    # Nothing half-written: the retry must find none of the batch already stored.
    assert stored(db) == []
    database_down = False
    assert client.post(URL, content=body, headers=headers).json()["stored"] == 2
    assert subscriber(db, world.subscribers[0]).status is SubscriberStatus.COMPLAINED


# --- what each event type does ----------------------------------------------------------------


def post(
    client: TestClient, key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]]
) -> dict[str, Any]:
    body, headers = signed(key, events)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_every_sendgrid_type_is_normalised_and_unknown_ones_are_kept(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    names = {
        "processed": EventType.PROCESSED,
        "delivered": EventType.DELIVERED,
        "deferred": EventType.DEFERRED,
        "dropped": EventType.DROPPED,
        "open": EventType.OPENED,
        "click": EventType.CLICKED,
        "group_resubscribe": EventType.RESUBSCRIBED,
        "account_status_change": EventType.UNKNOWN,
    }
    post(client, signing_key, [event(world, 1, name, f"id-{name}") for name in names])
    by_id = {e.provider_event_id: e for e in stored(db)}
    assert {name: by_id[f"id-{name}"].type for name in names} == names
    assert by_id["id-account_status_change"].provider_type == "account_status_change"
    # None of these changes whether the reader is mailed.
    assert subscriber(db, world.subscribers[1]).status is SubscriberStatus.ACTIVE


def test_a_hard_bounce_suppresses_but_a_block_does_not(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    post(
        client,
        signing_key,
        [
            event(world, 0, "bounce", "b1", type="bounce", status="5.1.1", reason="no such user"),
            event(world, 1, "bounce", "b2", type="blocked", status="4.7.1", reason="try later"),
        ],
    )
    assert subscriber(db, world.subscribers[0]).status is SubscriberStatus.BOUNCED
    assert subscriber(db, world.subscribers[1]).status is SubscriberStatus.ACTIVE
    assert db.scalar(select(func.count()).select_from(Suppression)) == 1
    kinds = {e.provider_event_id: (e.type, e.provider_type) for e in stored(db)}
    assert kinds == {"b1": (EventType.BOUNCED, "bounce"), "b2": (EventType.BOUNCED, "blocked")}


def test_a_spam_report_unsubscribes_and_suppresses(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    post(client, signing_key, [event(world, 2, "spamreport", "s1")])
    assert subscriber(db, world.subscribers[2]).status is SubscriberStatus.COMPLAINED
    assert db.scalar(select(func.count()).select_from(Suppression)) == 1


@pytest.mark.parametrize("name", ["unsubscribe", "group_unsubscribe"])
def test_unsubscribe_events_unsubscribe(
    name: str,
    client: TestClient,
    world: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
) -> None:
    post(client, signing_key, [event(world, 0, name, "u1")])
    assert subscriber(db, world.subscribers[0]).status is SubscriberStatus.UNSUBSCRIBED
    [row] = stored(db)
    assert row.type is EventType.UNSUBSCRIBED


def test_machine_opens_are_flagged(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    post(
        client,
        signing_key,
        [
            event(world, 0, "open", "o1", sg_machine_open=True),
            event(world, 1, "open", "o2", sg_machine_open=False),
        ],
    )
    flags = {e.provider_event_id: e.machine for e in stored(db)}
    assert flags == {"o1": True, "o2": False}


def test_events_for_unknown_deliveries_are_kept_unmatched(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    unknown = {**event(world, 0, "bounce", "x1", type="bounce"), "delivery_id": "999999"}
    no_args = {k: v for k, v in event(world, 0, "delivered", "x2").items() if k != "delivery_id"}
    assert post(client, signing_key, [unknown, no_args])["unmatched"] == 2
    assert [(e.delivery_id, e.issue_id) for e in stored(db)] == [(None, None), (None, None)]
    assert subscriber(db, world.subscribers[0]).status is SubscriberStatus.ACTIVE

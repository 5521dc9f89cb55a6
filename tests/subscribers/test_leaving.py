"""Every way out works at once: RFC 8058 one-click POST, the visible link's page, preferences;
bounces and complaints suppress; nothing changes on a GET."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.security.delivery_tokens import delivery_token
from newsletter.sending.models import Delivery
from newsletter.tracking.models import EventType, TrackingEvent
from subscribers import repository, service
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus, Suppression
from tests.subscribers.factories import active_subscriber, delivery_for
from tests.subscribers.helpers import client

ONE_CLICK = {
    "content": b"List-Unsubscribe=One-Click",
    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
}


def _status(db: Session, subscriber_id: int) -> SubscriberStatus:
    db.expire_all()
    subscriber = db.get(Subscriber, subscriber_id)
    assert subscriber is not None
    return subscriber.status


def _mailable(db: Session) -> set[int]:
    return set(db.scalars(repository.mailable_ids_select()))


def _issue_token(db: Session, email: str) -> tuple[int, str]:
    subscriber_id = active_subscriber(db, email, "Nia")
    delivery = delivery_for(db, subscriber_id)
    db.commit()
    public_id = db.get(Subscriber, subscriber_id).public_id  # type: ignore[union-attr]
    return subscriber_id, delivery_token(delivery.id, public_id)


def _delivery_id(db: Session, subscriber_id: int) -> int:
    found = db.scalar(select(Delivery.id).where(Delivery.subscriber_id == subscriber_id))
    assert found is not None
    return found


def test_one_click_post_unsubscribes_at_once_and_get_does_not(db: Session) -> None:
    subscriber_id, token = _issue_token(db, "nia@example.com")
    delivery_id = _delivery_id(db, subscriber_id)
    web = client()
    page = web.get(f"/u/{token}")
    assert page.status_code == 200
    assert "nia@example.com" in page.text and f'action="/u/{token}"' in page.text
    assert _status(db, subscriber_id) == SubscriberStatus.ACTIVE
    assert subscriber_id in _mailable(db)

    # What Gmail or Apple Mail sends: no cookie, no CSRF field, just the RFC 8058 body.
    response = web.post(f"/u/{token}", **ONE_CLICK)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert _status(db, subscriber_id) == SubscriberStatus.UNSUBSCRIBED
    assert subscriber_id not in _mailable(db)
    reasons = db.scalars(select(Suppression.reason)).all()
    assert reasons == ["unsubscribed"]
    # A second POST (the client retrying) is harmless.
    assert web.post(f"/u/{token}", **ONE_CLICK).status_code == 200  # type: ignore[arg-type]
    # The issue it came from is charged with one unsubscribe, once.
    events = db.execute(select(TrackingEvent.type, TrackingEvent.delivery_id)).all()
    assert [(e.type, e.delivery_id) for e in events] == [(EventType.UNSUBSCRIBED, delivery_id)]


def test_a_forged_or_altered_token_unsubscribes_nobody(db: Session) -> None:
    subscriber_id, token = _issue_token(db, "oli@example.com")
    for bad in (token[:-2] + "xx", "nonsense", service.subscriber_token("nobody") + "a"):
        assert client().post(f"/u/{bad}", **ONE_CLICK).status_code == 404  # type: ignore[arg-type]
    assert _status(db, subscriber_id) == SubscriberStatus.ACTIVE


def test_preferences_pause_resume_tracking_and_resubscribe(db: Session) -> None:
    subscriber_id, token = _issue_token(db, "pia@example.com")
    web = client()
    assert web.get(f"/p/{token}").status_code == 200

    assert web.post(f"/p/{token}/pause").status_code == 200  # followed the 303
    assert subscriber_id not in _mailable(db)
    assert "Resume" in web.get(f"/p/{token}").text
    web.post(f"/p/{token}/resume")
    assert subscriber_id in _mailable(db)

    web.post(f"/p/{token}/tracking-off")
    db.expire_all()
    assert db.get(Subscriber, subscriber_id).tracking_opt_out is True  # type: ignore[union-attr]
    web.post(f"/p/{token}/tracking-on")
    db.expire_all()
    assert db.get(Subscriber, subscriber_id).tracking_opt_out is False  # type: ignore[union-attr]

    web.post(f"/u/{token}", **ONE_CLICK)  # type: ignore[arg-type]
    assert subscriber_id not in _mailable(db)
    page = web.get(f"/p/{token}")
    assert "Subscribe again" in page.text
    web.post(f"/p/{token}/resubscribe")
    assert _status(db, subscriber_id) == SubscriberStatus.ACTIVE
    assert subscriber_id in _mailable(db)
    db.expire_all()
    subscriber = db.get(Subscriber, subscriber_id)
    assert subscriber is not None and subscriber.consent_method == "preferences"
    assert db.scalars(select(Suppression)).all() == []


def test_export_my_data_is_a_json_download(db: Session) -> None:
    _, token = _issue_token(db, "quinn@example.com")
    response = client().get(f"/p/{token}/export.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    data = json.loads(response.content)
    assert data["email"] == "quinn@example.com" and data["name"] == "Nia"
    assert data["consent"]["method"] == "admin"
    assert [d["issue_id"] for d in data["deliveries"]] != []


def test_subscriber_token_opens_the_same_pages(db: Session) -> None:
    subscriber_id = active_subscriber(db, "ray@example.com")
    db.commit()
    token = service.subscriber_token(db.get(Subscriber, subscriber_id).public_id)  # type: ignore[union-attr]
    assert "ray@example.com" in client().get(f"/p/{token}").text
    client().post(f"/u/{token}", **ONE_CLICK)  # type: ignore[arg-type]
    assert _status(db, subscriber_id) == SubscriberStatus.UNSUBSCRIBED


def test_bounces_and_complaints_suppress(db: Session) -> None:
    bounced = active_subscriber(db, "sam@example.com")
    complained = active_subscriber(db, "tia@example.com")
    assert service.mark_bounced(db, bounced, "550 5.1.1 user unknown")
    assert service.mark_complained(db, complained, "abuse report")
    assert service.unsubscribe(db, complained) is False  # a complaint outranks it
    db.commit()
    assert _status(db, bounced) == SubscriberStatus.BOUNCED
    assert _status(db, complained) == SubscriberStatus.COMPLAINED
    assert _mailable(db) == set()
    rows = {s.email_hash: s.reason for s in db.scalars(select(Suppression))}
    assert rows == {
        address_hash("sam@example.com"): "bounced",
        address_hash("tia@example.com"): "complained",
    }


def test_mailable_excludes_pending_paused_and_suppressed(db: Session) -> None:
    active = active_subscriber(db, "uma@example.com")
    paused = active_subscriber(db, "vic@example.com")
    service.set_paused(db, paused, True)
    service.request_confirmation(db, "wes@example.com", source="web")
    # An active row whose address is on the suppression list (say, restored from a backup)
    # is still never mailed.
    guarded = active_subscriber(db, "xan@example.com")
    repository.suppress(db, address_hash("xan@example.com"), "complained")
    db.commit()
    assert _mailable(db) == {active}
    assert guarded not in _mailable(db)

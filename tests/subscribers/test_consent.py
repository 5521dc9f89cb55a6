"""Every way onto the list ends with consent on record, and double opt-in only confirms on a
POST from the page the mailed link opens (mail scanners prefetch GETs)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers import repository, service
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus, Suppression
from tests.subscribers.helpers import cli, client, confirmation_link, outbox, path_of


def _subscriber(db: Session, email: str) -> Subscriber | None:
    db.expire_all()
    return db.scalars(select(Subscriber).where(Subscriber.email == email)).one_or_none()


def _mailable(db: Session) -> set[int]:
    return set(db.scalars(repository.mailable_ids_select()))


def _confirm_by_mail(db: Session, to: str) -> Subscriber:
    """Follow the last confirmation mail to `to` the way a reader does."""
    messages = [m for m in outbox() if to in str(m["To"])]
    assert messages, f"no confirmation mail to {to}"
    link = confirmation_link(messages[-1])
    web = client()
    page = web.get(path_of(link))
    assert page.status_code == 200
    assert f'action="{path_of(link)}"' in page.text and "<button" in page.text
    # The GET (what a scanner or preview does) confirmed nobody.
    subscriber = _subscriber(db, to)
    assert subscriber is not None and subscriber.status != SubscriberStatus.ACTIVE
    done = web.post(path_of(link))
    assert done.status_code == 200, done.text
    assert "subscribed" in done.text
    subscriber = _subscriber(db, to)
    assert subscriber is not None
    return subscriber


def test_web_form_double_opt_in_end_to_end(db: Session) -> None:
    response = client().post("/subscribe", data={"email": " Dana@Example.COM ", "name": "Dana"})
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    pending = _subscriber(db, "dana@example.com")
    assert pending is not None and pending.status == SubscriberStatus.PENDING
    assert pending.source == "web" and pending.consent_at is None
    assert pending.id not in _mailable(db)

    [mail] = outbox()
    assert mail["To"] == "dana@example.com"  # no typed name in a mail asking for consent
    assert "Confirm" in mail["Subject"]
    subscriber = _confirm_by_mail(db, "dana@example.com")
    assert subscriber.status == SubscriberStatus.ACTIVE
    assert subscriber.consent_method == "double-opt-in"
    assert subscriber.consent_ip == "testclient"  # the confirming request's address
    assert subscriber.consent_at is not None and subscriber.confirmed_at is not None
    assert subscriber.id in _mailable(db)


def test_api_double_opt_in_end_to_end(db: Session) -> None:
    response = client().post("/api/subscribe", json={"email": "eve@example.org", "name": "Eve"})
    assert response.status_code == 202
    assert _subscriber(db, "eve@example.org").status == SubscriberStatus.PENDING  # type: ignore[union-attr]
    subscriber = _confirm_by_mail(db, "eve@example.org")
    assert subscriber.status == SubscriberStatus.ACTIVE and subscriber.source == "api"

    bad = client().post("/api/subscribe", json={"email": "not an address"})
    assert bad.status_code == 422 and "not an address" in bad.json()["error"]


def test_cli_add_with_confirm_end_to_end(db: Session) -> None:
    result = cli("subscribers", "add", "Fay@Example.com", "--name", "Fay", "--confirm", "--json")
    assert result.exit_code == 0, result.output
    assert '"status": "pending"' in result.stdout
    subscriber = _confirm_by_mail(db, "fay@example.com")
    assert subscriber.status == SubscriberStatus.ACTIVE
    assert subscriber.name == "Fay" and subscriber.source == "cli"


def test_cli_add_without_confirm_is_the_admin_vouching(db: Session) -> None:
    result = cli("subscribers", "add", "gus@example.com", "--name", "Gus")
    assert result.exit_code == 0, result.output
    subscriber = _subscriber(db, "gus@example.com")
    assert subscriber is not None and subscriber.status == SubscriberStatus.ACTIVE
    assert subscriber.consent_method == "admin" and subscriber.consent_at is not None
    assert subscriber.id in _mailable(db)
    assert outbox() == []
    # Adding again changes nothing and is not an error.
    again = cli("subscribers", "add", "GUS@example.com", "--json")
    assert again.exit_code == 0 and '"outcome": "unchanged"' in again.stdout


def test_cli_add_refuses_bad_addresses_and_people_who_left(db: Session) -> None:
    bad = cli("subscribers", "add", "nobody@@example.com")
    assert bad.exit_code == 1 and "nobody@@example.com" in bad.stderr
    assert db.scalars(select(Subscriber)).all() == []

    assert cli("subscribers", "add", "hal@example.com").exit_code == 0
    assert cli("subscribers", "unsubscribe", "hal@example.com").exit_code == 0
    refused = cli("subscribers", "add", "hal@example.com")
    assert refused.exit_code == 1 and "unsubscribed" in refused.stderr
    assert _subscriber(db, "hal@example.com").status == SubscriberStatus.UNSUBSCRIBED  # type: ignore[union-attr]


def test_form_refuses_an_invalid_address_and_writes_nothing(db: Session) -> None:
    response = client().post("/subscribe", data={"email": "ivy@", "name": "Ivy"})
    assert response.status_code == 400
    assert "ivy@" in response.text and 'value="Ivy"' in response.text
    assert db.scalars(select(Subscriber)).all() == []
    assert outbox() == []


def test_an_active_subscriber_gets_no_mail_and_the_same_answer(db: Session) -> None:
    active = client().post("/subscribe", data={"email": "jo@example.com"})
    assert "Check your inbox" in active.text
    _confirm_by_mail(db, "jo@example.com")
    before = len(outbox())
    again = client().post("/subscribe", data={"email": "JO@example.com"})
    assert again.status_code == 200 and again.text.replace("JO@", "jo@") == active.text
    assert len(outbox()) == before


def test_a_newer_request_voids_the_older_link(db: Session) -> None:
    web = client()
    web.post("/subscribe", data={"email": "kim@example.com"})
    web.post("/subscribe", data={"email": "kim@example.com"})
    first, second = (confirmation_link(m) for m in outbox())
    assert web.post(path_of(first)).status_code == 404
    assert _subscriber(db, "kim@example.com").status == SubscriberStatus.PENDING  # type: ignore[union-attr]
    assert web.post(path_of(second)).status_code == 200
    assert _subscriber(db, "kim@example.com").status == SubscriberStatus.ACTIVE  # type: ignore[union-attr]


def test_confirmation_links_expire(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    web = client()
    web.post("/subscribe", data={"email": "lee@example.com"})
    link = path_of(confirmation_link(outbox()[0]))
    later = time.time() + service.CONFIRM_TTL_SECONDS + 60
    monkeypatch.setattr("newsletter.security.signing.time", SimpleNamespace(time=lambda: later))
    assert web.get(link).status_code == 404
    assert web.post(link).status_code == 404
    assert _subscriber(db, "lee@example.com").status == SubscriberStatus.PENDING  # type: ignore[union-attr]
    assert web.post(link.replace("/confirm/", "/confirm/x")).status_code == 404


def test_someone_who_left_comes_back_only_by_their_own_confirmation(db: Session) -> None:
    assert cli("subscribers", "add", "max@example.com").exit_code == 0
    assert cli("subscribers", "unsubscribe", "max@example.com").exit_code == 0
    subscriber = _subscriber(db, "max@example.com")
    assert subscriber is not None
    assert subscriber.id not in _mailable(db)

    client().post("/subscribe", data={"email": "max@example.com"})
    # Asking again is not consent yet: still unsubscribed, still suppressed.
    assert _subscriber(db, "max@example.com").status == SubscriberStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    assert subscriber.id not in _mailable(db)

    back = _confirm_by_mail(db, "max@example.com")
    assert back.status == SubscriberStatus.ACTIVE and back.consent_method == "double-opt-in"
    hashes = db.scalars(select(Suppression.email_hash)).all()
    assert address_hash("max@example.com") not in hashes
    assert back.id in _mailable(db)

"""The welcome mail after confirming: what to expect, the latest issue, the preferences; sent
through the configured transport once, and recorded on the subscriber."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.settings import reset_settings
from subscribers.models import Subscriber
from tests.subscribers.helpers import client, confirmation_link, outbox, path_of
from tests.support import arrange
from tests.support.sendgrid_server import SendGridServer

NAME = 'Dana <script>alert("x")</script>'


def _subscriber(db: Session, email: str) -> Subscriber:
    db.expire_all()
    return db.scalars(select(Subscriber).where(Subscriber.email == email)).one()


def _sign_up_and_confirm(email: str) -> None:
    web = client()
    assert web.post("/subscribe", data={"email": email, "name": NAME}).status_code == 200
    link = confirmation_link(outbox()[-1])
    done = web.post(path_of(link))
    assert done.status_code == 200 and "subscribed" in done.text
    # A second press of the button (a double click, a reload) sends no second welcome.
    assert web.post(path_of(link)).status_code in (200, 400, 404, 410)


def _welcomes(to: str) -> list:  # type: ignore[type-arg]
    return [m for m in outbox() if m["To"] == to and "Welcome" in str(m["Subject"])]


def test_confirming_sends_one_welcome_with_working_links(db: Session) -> None:
    sent_at = datetime.now(UTC) - timedelta(days=2)
    arrange.add_sent_issue(db, readers=1, sent_at=sent_at)
    db.commit()
    before = datetime.now(UTC)
    _sign_up_and_confirm("dana@example.com")

    [welcome] = _welcomes("dana@example.com")  # no name: the form's name is a stranger's words
    text = welcome.get_body(("plain",)).get_content()
    html = welcome.get_body(("html",)).get_content()
    assert "Dana" not in text and "Dana" not in html and "<script>" not in html
    assert "One email every Monday" in text and "One email every Monday" in html
    assert "[postal address: set NEWSLETTER_POSTAL_ADDRESS]" in text
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    subscriber = _subscriber(db, "dana@example.com")
    assert subscriber.welcome_sent_at is not None and subscriber.welcome_sent_at >= before

    web = client()
    latest = re.search(r"https?://\S+/issues/2026-W10", text)
    assert latest and f'href="{latest.group(0)}"' in html
    assert web.get(path_of(latest.group(0))).status_code == 200
    prefs = re.search(r"https?://\S+/p/\S+", text)
    assert prefs and f'href="{prefs.group(0)}"' in html
    page = web.get(path_of(prefs.group(0)))
    assert page.status_code == 200 and "dana@example.com" in page.text
    unsubscribe = re.search(r"<(https?://\S+/u/\S+)>", welcome["List-Unsubscribe"])
    assert unsubscribe
    gone = web.post(
        path_of(unsubscribe.group(1)),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert gone.status_code == 200
    assert _subscriber(db, "dana@example.com").status.value == "unsubscribed"


def test_without_an_issue_yet_the_welcome_points_to_the_archive(db: Session) -> None:
    _sign_up_and_confirm("eve@example.com")
    [welcome] = _welcomes("eve@example.com")
    text = welcome.get_body(("plain",)).get_content()
    assert "The first issue is on its way" in text and "/issues\n" in text


def test_the_welcome_goes_through_sendgrid_with_the_postal_address(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = client()
    assert web.post("/subscribe", data={"email": "fay@example.com"}).status_code == 200
    link = confirmation_link(outbox()[-1])
    with SendGridServer(api_key="SG.test", keep_payloads=True) as server:
        monkeypatch.setenv("NEWSLETTER_TRANSPORT", "sendgrid")
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.test")
        monkeypatch.setenv("SENDGRID_API_HOST", server.url)
        monkeypatch.setenv("NEWSLETTER_POSTAL_ADDRESS", "Verdicts SAS\\n1 rue Test\\n75001 Paris")
        reset_settings()
        assert client().post(path_of(link)).status_code == 200
        [request] = server.accepted
    payload = request.payload
    assert payload is not None
    assert payload["categories"] == ["welcome"]
    [personalization] = payload["personalizations"]
    assert personalization["to"] == [{"email": "fay@example.com"}]
    assert personalization["custom_args"] == {
        "subscriber_id": str(_subscriber(db, "fay@example.com").id)
    }
    body = json.dumps(payload["content"])
    assert "Verdicts SAS, 1 rue Test, 75001 Paris" in body
    assert _subscriber(db, "fay@example.com").welcome_sent_at is not None


def test_a_refused_welcome_keeps_the_confirmation_and_records_no_welcome(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = client()
    assert web.post("/subscribe", data={"email": "gil@example.com"}).status_code == 200
    link = confirmation_link(outbox()[-1])
    # SendGrid without a postal address: the transport refuses to send anything.
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "sendgrid")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test")
    reset_settings()
    done = client().post(path_of(link))
    assert done.status_code == 200 and "subscribed" in done.text
    subscriber = _subscriber(db, "gil@example.com")
    assert subscriber.status.value == "active" and subscriber.welcome_sent_at is None

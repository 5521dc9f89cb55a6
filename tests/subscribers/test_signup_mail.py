"""The sign-up form mails only addresses that can take it, and never a stranger's words.

Anyone can type any address and any name into the form. An address that bounced or complained
gets no confirmation mail (the answer on the page is the one everybody gets, so the form does
not tell who is suppressed), and the confirmation mail never carries the typed name: neither in
the greeting nor in the To: line.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import transaction
from subscribers import service
from subscribers.models import Subscriber, SubscriberStatus
from tests.subscribers.helpers import client, outbox

SPAM_NAME = "Claim your prize at https://evil.example/win now"


def _answer(email: str, name: str = "") -> tuple[int, str]:
    response = client().post("/subscribe", data={"email": email, "name": name})
    # The page names the address it was asked about; everything else must be the same.
    return response.status_code, re.sub(re.escape(email), "ADDRESS", response.text)


@pytest.mark.parametrize("how", ["bounced", "complained", "unsubscribed-then-complained"])
def test_an_address_that_bounced_or_complained_gets_no_mail_and_the_usual_answer(
    db: Session, how: str
) -> None:
    with transaction() as session:
        subscriber, _ = service.add_by_admin(session, "gone@example.com", "Gone")
        if how == "bounced":
            service.mark_bounced(session, subscriber.id, "550 5.1.1 user unknown")
        elif how == "complained":
            service.mark_complained(session, subscriber.id, "spamreport")
        else:
            service.unsubscribe(session, subscriber.id)
            service.mark_complained(session, subscriber.id, "spamreport")
    with transaction() as session:
        before = service.find(session, "gone@example.com")
        assert before is not None
        state = (before.status, before.confirm_sent_at, before.name)
    usual = _answer("new@example.com")
    assert len(outbox()) == 1  # a new address is mailed

    for spelling in ("gone@example.com", " GONE@Example.COM "):
        assert _answer(spelling.strip().lower()) == usual
        assert client().post("/api/subscribe", json={"email": spelling}).status_code == 202
    assert [str(m["To"]) for m in outbox()] == ["new@example.com"]
    with transaction() as session:
        after = service.find(session, "gone@example.com")
        assert after is not None
        assert (after.status, after.confirm_sent_at, after.name) == state
        assert after.status in (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


def test_someone_who_only_unsubscribed_can_still_ask_to_come_back(db: Session) -> None:
    with transaction() as session:
        subscriber, _ = service.add_by_admin(session, "back@example.com")
        service.unsubscribe(session, subscriber.id)
    assert _answer("back@example.com")[0] == 200
    assert [str(m["To"]) for m in outbox()] == ["back@example.com"]


@pytest.mark.parametrize("door", ["form", "api"])
def test_the_typed_name_is_not_in_the_confirmation_mail(db: Session, door: str) -> None:
    web = client()
    if door == "form":
        web.post("/subscribe", data={"email": "target@example.com", "name": SPAM_NAME})
    else:
        web.post("/api/subscribe", json={"email": "target@example.com", "name": SPAM_NAME})
    [message] = outbox()
    assert message["To"].addresses[0].display_name == ""
    assert str(message["To"]) == "target@example.com"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in (text, html, str(message)):
        assert "evil.example" not in part and "prize" not in part
    assert text.startswith("Hello,")
    # The name is kept for after the owner of the address confirms.
    with transaction() as session:
        assert session.scalar(select(Subscriber.name)) == SPAM_NAME

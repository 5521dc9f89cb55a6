"""The public sign-up form cannot be used to mail strangers in bulk."""

from __future__ import annotations

from tests.subscribers.helpers import client, outbox


def test_one_address_gets_at_most_five_confirmation_mails_an_hour(db_url: str) -> None:
    web = client()
    codes = [
        web.post("/subscribe", data={"email": "target@example.com"}).status_code for _ in range(7)
    ]
    assert codes == [200] * 5 + [429] * 2
    assert len(outbox()) == 5


def test_one_client_is_limited_across_addresses(db_url: str) -> None:
    web = client()
    codes = [
        web.post("/api/subscribe", json={"email": f"person{i}@example.com"}).status_code
        for i in range(32)
    ]
    assert codes[:30] == [202] * 30
    assert codes[30:] == [429, 429]
    refused = web.post("/api/subscribe", json={"email": "late@example.com"})
    assert int(refused.headers["Retry-After"]) > 0
    assert len(outbox()) == 30

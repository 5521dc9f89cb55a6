"""Attempt limits key on the address, not on how it was typed, and hold whatever is typed in
bounded memory.

A locked-out admin@example.com stays locked out under Unicode compatibility spellings
(fullwidth letters) and case; the sign-up limit of five mails an hour per address holds across
spellings of one mailbox. A 900 KB "address" costs the limiter what a short one does, and the
number of keys it keeps is capped.
"""

from __future__ import annotations

import tracemalloc

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from newsletter.web import ratelimit
from newsletter.web.ratelimit import AttemptLimiter, account_key
from tests.subscribers.helpers import outbox
from tests.web.conftest import ADMIN, PASSWORD, csrf_from

# Each spells admin@example.com (or its mailbox) in other code points.
LOOK_ALIKES = [
    "admin@ｅｘａｍｐｌｅ.com",  # fullwidth domain: the account's own normalisation maps it
    "ａｄｍｉｎ@example.com",  # fullwidth local part
    "ＡＤＭＩＮ@ＥＸＡＭＰＬＥ.ＣＯＭ",
    " Admin@Example.COM ",
    "admin@example.com\u3000",  # ideographic space
]


def _login(client: TestClient, email: str, password: str) -> int:
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    return response.status_code


def test_a_locked_out_account_stays_locked_whatever_the_spelling(app: FastAPI, staff: None) -> None:
    with TestClient(app) as attacker:
        assert _login(attacker, "admin@ｅｘａｍｐｌｅ.com", PASSWORD) == 303  # it is the account
    with TestClient(app) as attacker:
        for _ in range(5):
            assert _login(attacker, ADMIN, "wrong password!") == 401
        for spelling in LOOK_ALIKES:
            assert _login(attacker, spelling, PASSWORD) == 429, spelling


def test_failures_under_look_alike_spellings_lock_the_account(app: FastAPI, staff: None) -> None:
    with TestClient(app) as attacker:
        for spelling in LOOK_ALIKES:
            assert _login(attacker, spelling, "wrong password!") == 401
        assert _login(attacker, ADMIN, PASSWORD) == 429


def test_spellings_of_one_mailbox_share_one_sign_up_allowance(db_url: str, app: FastAPI) -> None:
    spellings = [
        "target@example.com",
        "TARGET@example.com",
        "target@ｅｘａｍｐｌｅ.com",
        "ｔａｒｇｅｔ@example.com",
        "Ｔａｒｇｅｔ@ＥＸＡＭＰＬＥ.com",
        " target@example.com\u3000",
        "target@EXAMPLE.COM",
        "ＴＡＲＧＥＴ@example.com",
        "target@example.com",
    ]
    with TestClient(app) as web:
        codes = [
            web.post("/subscribe", data={"email": s}).status_code
            if i % 2
            else web.post("/api/subscribe", json={"email": s}).status_code
            for i, s in enumerate(spellings)
        ]
    assert sum(code in (200, 202) for code in codes) == 5, codes
    assert codes.count(429) == 4
    assert len(outbox()) == 5


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("ａｄｍｉｎ@ｅｘａｍｐｌｅ.ｃｏｍ", "admin@example.com"),
        ("Straße@Example.com", "strasse@example.com"),
        ("not an address\ud800", "not an address\ud800"),
        ("x" * 5000, "x" * 321),
    ],
)
def test_the_account_key_is_the_normalised_address(raw: str, key: str) -> None:
    assert account_key(raw) == key


def _held_by_the_limiter(action: object) -> tuple[int, int]:
    """(bytes allocated by ratelimit.py and still held after `action`, the limiter's own
    count of what it stores)."""
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        assert callable(action)
        limiter: AttemptLimiter = action()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    only_limiter = [tracemalloc.Filter(True, ratelimit.__file__)]
    grown = sum(
        stat.size_diff
        for stat in after.filter_traces(only_limiter).compare_to(
            before.filter_traces(only_limiter), "filename"
        )
    )
    return grown, limiter.stored_bytes()


# The limiter is memory, the same on either engine.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sixty_sign_ups_of_900_kb_addresses_leave_the_limiter_a_few_kilobytes(
    db_url: str, app: FastAPI
) -> None:
    """The report: 60 such requests grew the server by 60 MB, kept for an hour."""
    huge = "a" * (900 * 1024) + "@example.com"

    def flood() -> AttemptLimiter:
        with TestClient(app) as web:
            for i in range(30):
                assert web.post("/subscribe", data={"email": f"{i}{huge}"}).status_code == 400
                answer = web.post("/api/subscribe", json={"email": f"{i}{huge}"})
                assert answer.status_code == 422
            # Just under the cap: counted, refused as an address, and kept as a 16-byte digest.
            for i in range(25):
                long = f"{i}" + "b" * 300 + "@example.com"
                assert web.post("/subscribe", data={"email": long}).status_code == 400
        limiter: AttemptLimiter = app.state.subscribe_limiter
        return limiter

    grown, stored = _held_by_the_limiter(flood)
    assert stored < 32 * 1024, stored
    assert grown < 64 * 1024, grown
    assert outbox() == []


def test_the_limiter_keeps_at_most_max_keys_whatever_arrives() -> None:
    limiter = AttemptLimiter(max_keys=1000)
    for i in range(5000):
        limiter.record_failure(f"10.0.{i // 250}.{i % 250}", f"person{i}@example.com" + "x" * 300)
    assert len(limiter._failures) == 1000
    # Bounded per key too: at most `limit` times, however often one key is hit.
    for _ in range(10_000):
        limiter.record_failure("10.9.9.9", ADMIN)
    per_key = max(len(times) for times in limiter._failures.values())
    assert per_key == limiter.per_address
    assert limiter.stored_bytes() < 1000 * 1024
    # The newest keys survive: the account just hammered is still locked.
    assert limiter.retry_after("10.1.1.1", ADMIN) > 0

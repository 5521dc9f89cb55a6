"""Attempt limits key on the address, not on how it was typed, and hold whatever is typed in
bounded memory.

A locked-out admin@example.com stays locked out under Unicode compatibility spellings
(fullwidth letters) and case; the sign-up limit of five mails an hour per address holds across
spellings of one mailbox. A 900 KB "address" costs the limiter what a short one does, and each
key keeps at most its limit of times.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

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


def _stored(db_url: str) -> tuple[int, int]:
    """(rows, bytes of keys and times) the limiter keeps in the database."""
    from sqlalchemy import func, select

    from newsletter.db import transaction
    from newsletter.limits import AttemptCounter

    with transaction(db_url) as session:
        rows, held = session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(func.length(AttemptCounter.key) + func.length(AttemptCounter.times)),
                    0,
                ),
            )
        ).one()
    return int(rows), int(held)


def test_sixty_sign_ups_of_900_kb_addresses_leave_the_limiter_a_few_kilobytes(
    db_url: str, app: FastAPI
) -> None:
    """The report: 60 such requests grew the server by 60 MB, kept for an hour. Now the counts
    are rows in the database: a digest per key, whatever was typed."""
    huge = "a" * (900 * 1024) + "@example.com"
    with TestClient(app) as web:
        for i in range(30):
            assert web.post("/subscribe", data={"email": f"{i}{huge}"}).status_code == 400
            answer = web.post("/api/subscribe", json={"email": f"{i}{huge}"})
            assert answer.status_code == 422
        # Just under the cap: counted, refused as an address, and kept as a 16-byte digest.
        for i in range(25):
            long = f"{i}" + "b" * 300 + "@example.com"
            assert web.post("/subscribe", data={"email": long}).status_code == 400
    rows, held = _stored(db_url)
    assert rows == 26  # the client address and the 25 counted addresses
    assert held < 4 * 1024, held
    assert outbox() == []


def test_one_key_keeps_at_most_its_limit_of_times(db_url: str) -> None:
    limiter = AttemptLimiter()
    for i in range(50):
        limiter.record_failure(f"10.0.0.{i}", f"person{i}@example.com" + "x" * 300)
    for _ in range(100):
        limiter.record_failure("10.9.9.9", ADMIN)
    rows, held = _stored(db_url)
    assert rows == 50 + 50 + 2
    assert held < 102 * (32 + 20 * 20), held
    # Bounded per key: at most `limit` times, however often one key is hit.
    assert limiter.retry_after("10.1.1.1", ADMIN) > 0
    assert limiter.retry_after("10.9.9.9", "someone@example.com") > 0

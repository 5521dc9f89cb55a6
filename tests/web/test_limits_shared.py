"""The login and sign-up limits hold across web processes: an attacker who spreads guesses over
two processes (or machines) gets the configured number of tries in total, not twice that.

One app is a real `newsletter serve` child process, the other is served by uvicorn in this
process; they share nothing but the database. Guesses fired at both at once still get exactly
the allowance: the check and the count are one atomic step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsletter.db import transaction
from newsletter.limits import AttemptCounter, delete_stale_attempts, stale_attempts
from newsletter.web.ratelimit import AttemptLimiter
from tests.live_server import free_port, serving
from tests.web.conftest import ADMIN, PASSWORD, csrf_from

REPO = Path(__file__).resolve().parents[2]
SERVE = ["--host", "127.0.0.1", "--port"]
TOO_MANY = "Too many failed attempts. Try again in about"


@pytest.fixture
def two_servers(db_url: str, staff: None, tmp_path: Path) -> Iterator[tuple[str, str]]:
    from newsletter.web.app import create_app

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": db_url,
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789",
    }
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from newsletter.cli import main; main()",
            "serve",
            *SERVE,
            str(port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    other = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(other + "/login", timeout=2)
                break
            except httpx.TransportError:
                assert child.poll() is None, child.stderr.read() if child.stderr else ""
                assert time.monotonic() < deadline, "newsletter serve did not start"
                time.sleep(0.2)
        with serving(create_app()) as here:
            yield here, other
    finally:
        child.terminate()
        child.wait(timeout=20)


def _login(base: str, email: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=30) as client:
        token = csrf_from(client.get("/login").text)
        return client.post(
            "/login",
            data={"email": email, "password": password, "csrf_token": token},
            follow_redirects=False,
        )


def test_five_wrong_passwords_in_total_across_two_processes(
    two_servers: tuple[str, str],
) -> None:
    here, other = two_servers
    codes = [_login(base, ADMIN, "wrong password!").status_code for base in [here, other] * 3]
    assert codes == [401, 401, 401, 401, 401, 429]
    for base in (here, other):
        refused = _login(base, "ADMIN@example.com", PASSWORD)  # even the right one, any spelling
        assert refused.status_code == 429
        assert TOO_MANY in refused.text
        assert int(refused.headers["Retry-After"]) > 0


def test_a_success_forgives_the_account_on_every_process(two_servers: tuple[str, str]) -> None:
    here, other = two_servers
    for base in (here, other, here, other):
        assert _login(base, ADMIN, "wrong password!").status_code == 401
    assert _login(other, ADMIN, PASSWORD).status_code == 303
    # The account's count is forgotten for both processes: five fresh tries.
    codes = [_login(base, ADMIN, "wrong!").status_code for base in [here, other] * 3]
    assert codes == [401] * 5 + [429]


def test_one_client_address_gets_twenty_tries_in_total_across_processes(
    two_servers: tuple[str, str],
) -> None:
    here, other = two_servers
    # Four accounts a time (under the per-account five), from the one loopback address.
    codes = [
        _login([here, other][n % 2], f"person{n // 4}@example.com", "guess").status_code
        for n in range(24)
    ]
    assert codes == [401] * 20 + [429] * 4


def test_parallel_guesses_at_both_processes_get_exactly_the_allowance(
    two_servers: tuple[str, str],
) -> None:
    here, other = two_servers
    clients = [httpx.Client(base_url=[here, other][n % 2], timeout=60) for n in range(16)]
    tokens = [csrf_from(c.get("/login").text) for c in clients]
    start = threading.Barrier(len(clients))
    codes: list[int] = []

    def guess(client: httpx.Client, token: str) -> None:
        start.wait()
        answer = client.post(
            "/login",
            data={"email": ADMIN, "password": "wrong password!", "csrf_token": token},
            follow_redirects=False,
        )
        codes.append(answer.status_code)

    threads = [
        threading.Thread(target=guess, args=pair) for pair in zip(clients, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert sorted(codes) == [401] * 5 + [429] * 11


def test_sign_up_limit_holds_across_processes_and_spellings(
    two_servers: tuple[str, str],
) -> None:
    here, other = two_servers
    spellings = [
        "target@example.com",
        "TARGET@example.com",
        "target@ｅｘａｍｐｌｅ.com",
        "ｔａｒｇｅｔ@example.com",
        " target@example.com\u3000",
        "Target@EXAMPLE.COM",
        "ＴＡＲＧＥＴ@example.com",
    ]
    codes = []
    for n, address in enumerate(spellings):
        with httpx.Client(base_url=[here, other][n % 2], timeout=30) as web:
            answer = web.post("/subscribe", data={"email": address})
            codes.append(answer.status_code)
            if answer.status_code == 429:
                assert "Too many sign-up attempts from here" in answer.text
                assert int(answer.headers["Retry-After"]) > 0
    assert codes == [200] * 5 + [429] * 2
    with httpx.Client(base_url=other, timeout=30) as web:
        refused = web.post("/api/subscribe", json={"email": "target@example.com"})
    assert refused.status_code == 429
    assert refused.json() == {"error": "too many sign-up attempts; try again later"}


def test_sign_ups_never_count_against_a_staff_login(two_servers: tuple[str, str]) -> None:
    """The sign-up form's allowance and the login's are separate counts: a script posting the
    public form (from an office NAT, or a proxy every reader comes through), or signing up the
    admin's own address, must not lock the editors out."""
    here, other = two_servers
    codes = []
    for n in range(25):
        with httpx.Client(base_url=[here, other][n % 2], timeout=30) as web:
            codes.append(web.post("/subscribe", data={"email": f"flood{n}@x.example"}).status_code)
    for _ in range(6):
        with httpx.Client(base_url=here, timeout=30) as web:
            codes.append(web.post("/subscribe", data={"email": ADMIN}).status_code)
    assert codes.count(200) == 30 and codes.count(429) == 1  # its own limits still hold
    signed_in = _login(other, ADMIN, PASSWORD)
    assert signed_in.status_code == 303, signed_in.text[:300]
    # And the other way round: failed logins leave the sign-up form's allowance whole.
    for _ in range(5):
        assert _login(here, "someone@example.com", "wrong password!").status_code == 401
    with httpx.Client(base_url=here, timeout=30) as web:
        assert web.post("/subscribe", data={"email": "someone@example.com"}).status_code in (
            200,
            429,  # the client address has had its 30 sign-ups this hour
        )
        assert (
            "Too many failed attempts"
            not in web.post("/subscribe", data={"email": "someone-else@x.example"}).text
        )


@pytest.mark.parametrize(
    "typed",
    [
        "admin@example.com\x00",
        "adm\ud800in@example.com",
        "\udcff" * 50,
        "x" * 10_000,
        "a" * 5000 + "@example.com",
        "ａｄｍｉｎ@ｅｘａｍｐｌｅ.ｃｏｍ\u200b",
        "",
    ],
)
def test_hostile_keys_neither_fail_nor_slip_past(db_url: str, typed: str) -> None:
    """What reaches the limiter from any door: no error, and counted like anything else."""
    limiter = AttemptLimiter()
    for _ in range(5):
        assert limiter.attempt("10.0.0.1", typed) == 0
    assert limiter.attempt("10.0.0.2", typed) > 0
    assert limiter.retry_after("10.0.0.3", typed) > 0


def test_hostile_logins_answer_and_count(db_url: str, staff: None) -> None:
    from urllib.parse import quote

    from fastapi.testclient import TestClient

    from newsletter.web.app import create_app

    # As a browser or script would send them: NUL, a lone surrogate (its UTF-8 form, not valid
    # UTF-8), 10 KB, a look-alike.
    typed = [
        quote("admin@example.com\x00"),
        "adm%ED%A0%80in%40example.com",
        "x" * 10_000,
        quote("ＡＤＭＩＮ@example.com"),
    ]
    with TestClient(create_app()) as web:
        for email in typed:
            token = csrf_from(web.get("/login").text)
            answer = web.post(
                "/login",
                content=f"email={email}&password=wrong&csrf_token={token}".encode(),
                headers={"content-type": "application/x-www-form-urlencoded"},
                follow_redirects=False,
            )
            assert answer.status_code in (400, 401, 422), (email[:20], answer.status_code)
        # The look-alike was counted against admin@example.com.
        for _ in range(4):
            token = csrf_from(web.get("/login").text)
            data = {"email": ADMIN, "password": "wrong", "csrf_token": token}
            web.post("/login", data=data, follow_redirects=False)
        token = csrf_from(web.get("/login").text)
        data = {"email": ADMIN, "password": PASSWORD, "csrf_token": token}
        assert web.post("/login", data=data, follow_redirects=False).status_code == 429


def test_stale_rows_are_deleted_and_live_ones_kept(db_url: str) -> None:
    now = [1_000_000.0]
    limiter = AttemptLimiter(clock=lambda: now[0])
    for n in range(30):
        limiter.record_failure("10.0.0.1", f"old{n}@example.com")
    now[0] += limiter.window - 1
    limiter.record_failure("10.0.0.2", "young@example.com")
    now[0] += 2  # the old ones' window has passed
    with transaction() as session:
        assert stale_attempts(session, now[0]) == 31  # 30 accounts and their client address
        assert delete_stale_attempts(session, now[0], limit=20) == 20
        assert delete_stale_attempts(session, now[0], limit=20) == 11
        assert delete_stale_attempts(session, now[0]) == 0
        left = session.query(AttemptCounter).count()
    assert left == 2
    assert limiter.retry_after("10.0.0.2", "young@example.com") == 0

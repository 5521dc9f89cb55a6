"""Every route in the app's route table, fed NUL, lone surrogates, huge numbers, deep nesting and
overlong values in its path, query, form and JSON fields, on SQLite and PostgreSQL: never a 5xx,
and a refused request leaves every table as it was.

Routes are enumerated from the app (with the open pixel and click, answered ahead of the
router), never listed by hand, so a route added later is covered without touching this file.
The requests come from a signed-in admin (session cookie and CSRF token) with an API token, so
they reach the handlers rather than stopping at the login.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.params import Form
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.accounts.models import Role
from newsletter.accounts.service import create_user, issue_api_token
from newsletter.db import transaction
from newsletter.orm import Base
from tests.prove.conftest import PROFILE
from tests.web.conftest import PASSWORD, csrf_from

HOSTILE = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "9" * 400,
    str(2**64),
    str(-(2**63) - 1),
    "1e999",
    "[" * 200,
    "x" * 5000,
    "ａｄｍｉｎ@ｅｘａｍｐｌｅ.com",
    "admin@example.com",
    "2026-W01",
    "1",
    "",
]
text = st.sampled_from(HOSTILE) | st.text(max_size=40)
nested: st.SearchStrategy[Any] = st.recursive(
    text
    | st.integers(min_value=-(2**80), max_value=2**80)
    # JSON numbers beyond a float (1e400) arrive as inf; Python writes them "Infinity".
    | st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e308])
    | st.none()
    | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)
APP = FastAPI()  # the app under test, set by the fixture
EXAMPLES_PER_ROUTE = 40 if PROFILE == "deep" else 4


def _encode(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def operations(app: FastAPI) -> list[tuple[str, APIRoute | str]]:
    found: list[tuple[str, APIRoute | str]] = [
        ("GET", "/o/{token}.gif"),
        ("GET", "/c/{token}/{key}"),
    ]
    found.extend(
        (method, route) for route in _api_routes(app.routes) for method in sorted(route.methods)
    )
    return found


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    # FastAPI keeps an included router as one entry holding the router it was given.
    flat: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            flat.append(route)
        elif hasattr(route, "original_router"):
            flat.extend(_api_routes(route.original_router.routes))
    return flat


# A refused login or sign-up is counted on purpose (newsletter/limits.py): the attempt limiter's
# own rows are what a refusal must write, not a half-done write.
COUNTED_ON_REFUSAL = {"limit_attempts"}


def table_counts(db: Session) -> dict[str, int]:
    db.expire_all()
    return {
        table.name: int(db.scalar(select(func.count()).select_from(table)) or 0)
        for table in Base.metadata.sorted_tables
        if table.name not in COUNTED_ON_REFUSAL
    }


@pytest.fixture
def staff_client(db_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, str, str]:
    from cryptography.hazmat.primitives.asymmetric import ec

    from newsletter.settings import reset_settings
    from newsletter.tracking.webhook import encode_public_key
    from newsletter.web.app import create_app

    # A configured webhook, so its 5xx for a missing key (a setup error SendGrid should retry)
    # does not hide how it answers bad input.
    key = encode_public_key(ec.generate_private_key(ec.SECP256R1()))
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", key)
    reset_settings()

    global APP
    with transaction() as session:
        user = create_user(session, "admin@example.com", PASSWORD, Role.ADMIN)
        token = issue_api_token(session, user)
    APP = create_app()
    client = TestClient(APP, raise_server_exceptions=False)
    page = client.get("/login")
    signed = client.post(
        "/login",
        data={
            "email": "admin@example.com",
            "password": PASSWORD,
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=False,
    )
    assert signed.status_code == 303
    csrf = csrf_from(client.get("/admin/subscribers").text)
    return client, token, csrf


def test_no_route_answers_5xx_or_half_writes_whatever_its_text_inputs_hold(
    staff_client: tuple[TestClient, str, str], db: Session
) -> None:
    client, token, csrf = staff_client
    ops = operations(APP)
    assert len(ops) > 40  # the whole app, not a sample
    seen: set[str] = set()

    @settings(max_examples=EXAMPLES_PER_ROUTE * len(ops))
    @given(data=st.data())
    def call(data: st.DataObject) -> None:
        method, route = data.draw(st.sampled_from(ops))
        path = route if isinstance(route, str) else route.path_format
        names = [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]
        for name in names:
            value = _encode(data.draw(text, label=name)) or "x"
            path = path.replace("{" + name + "}", value, 1).replace("{" + name + ":path}", value)
        path = path.replace(".gif", ".gif") if isinstance(route, str) else path
        query: list[str] = []
        form: list[tuple[str, str]] = [("csrf_token", csrf)]
        body: dict[str, Any] = {}
        if isinstance(route, APIRoute):
            for field in route.dependant.query_params:
                if data.draw(st.booleans()):
                    query.append(f"{field.alias}={_encode(data.draw(text))}")
            for field in route.dependant.body_params:
                if isinstance(field.field_info, Form):
                    form.append((field.alias, data.draw(text)))
                else:
                    body = data.draw(st.dictionaries(text, nested, max_size=4))
                    for sub in ("email", "name", "at", "role"):
                        if data.draw(st.booleans()):
                            body[sub] = data.draw(nested)
        url = path + ("?" + "&".join(query) if query else "")
        headers = {"Authorization": f"Bearer {token}", "X-CSRF-Token": csrf}
        before = table_counts(db)
        if method in ("GET", "HEAD", "DELETE"):
            response = client.request(method, url, headers=headers, follow_redirects=False)
        elif isinstance(route, APIRoute) and any(
            not isinstance(f.field_info, Form) for f in route.dependant.body_params
        ):
            raw = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            response = client.request(method, url, content=raw, headers=headers)
        else:
            raw = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = client.request(
                method, url, content=raw, headers=headers, follow_redirects=False
            )
        seen.add(f"{method} {route if isinstance(route, str) else route.path}")
        assert response.status_code < 500, (method, url[:300], response.text[:300])
        if response.status_code >= 400:
            assert table_counts(db) == before, (method, url[:300], response.status_code)

    call()
    assert len(seen) >= len(ops) // 2, seen


@pytest.mark.parametrize(
    ("method", "url", "form"),
    [
        ("POST", "/login", {"email": "admin\x00@example.com", "password": "x"}),
        ("GET", "/issues/2026-W01%00", None),
        ("GET", "/admin/subscribers?q=a%00b", None),
        ("GET", "/api/v1/subscribers?q=a%00b", None),
        ("POST", "/subscribe", {"email": "a\x00@example.com", "name": "n"}),
    ],
)
def test_a_nul_is_refused_with_a_400_naming_the_field(
    staff_client: tuple[TestClient, str, str],
    db: Session,
    method: str,
    url: str,
    form: dict[str, str] | None,
) -> None:
    """The reported 500s on PostgreSQL: the login form, an archive path, subscriber search."""
    client, token, csrf = staff_client
    before = table_counts(db)
    headers = {"Authorization": f"Bearer {token}"}
    if form is None:
        response = client.request(method, url, headers=headers)
    else:
        response = client.post(url, data={**form, "csrf_token": csrf}, headers=headers)
    assert response.status_code == 400, response.text
    assert "NUL" in response.text
    assert table_counts(db) == before


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/subscribe", "email=new5%ED%A0%80%40test.example&name=n"),
        ("POST", "/subscribe", "email=ok%40test.example&name=%ED%A0%80"),
        ("POST", "/login", "email=admin%40example.com&password=%FF"),
        ("GET", "/admin/subscribers?q=a%ED%A0%80b", None),
        ("GET", "/issues/2026-W01%ED%A0%80", None),
        ("GET", "/api/v1/subscribers?q=%C0", None),
    ],
)
def test_bytes_that_are_no_utf8_text_are_refused_with_a_400_naming_where(
    staff_client: tuple[TestClient, str, str],
    db: Session,
    isolated_env: Path,
    method: str,
    url: str,
    body: str | None,
) -> None:
    """Percent-encoded bytes of a lone surrogate, or none of UTF-8: the parser would have made
    them U+FFFD, and the sign-up form created a pending reader at an address no one has and
    wrote them a confirmation mail."""
    client, token, csrf = staff_client
    before = table_counts(db)
    headers = {"Authorization": f"Bearer {token}"}
    if body is None:
        response = client.request(method, url, headers=headers)
    else:
        response = client.post(
            url,
            content=f"csrf_token={csrf}&{body}",
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 400, response.text
    assert "not valid UTF-8 text" in response.text
    assert table_counts(db) == before
    assert not list((isolated_env / "outbox").glob("*.eml"))


def test_a_lone_surrogate_in_a_json_body_is_refused_with_a_400(
    staff_client: tuple[TestClient, str, str], db: Session
) -> None:
    client, token, _ = staff_client
    before = table_counts(db)
    for url in ("/api/subscribe", "/api/v1/subscribers"):
        response = client.post(
            url,
            content=b'{"email": "a@example.com", "name": "x\\ud800"}',
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert response.status_code == 400, (url, response.text)
        assert "surrogate" in response.text and "name" in response.text
    assert table_counts(db) == before


@pytest.mark.parametrize(
    "body",
    [
        b'{"email": 1e400}',
        b'{"email": "a@example.com", "name": -1e400}',
        b'{"email": NaN}',
        b'{"at": Infinity}',
        b"[1e999]",
    ],
)
def test_a_number_beyond_a_float_in_a_json_body_is_a_422_not_a_500(
    staff_client: tuple[TestClient, str, str], db: Session, body: bytes
) -> None:
    """1e400 parses as inf, which FastAPI's own error handler then could not write back as
    JSON (found by an independent attacker: 500s on the sign-up API and the JSON API)."""
    client, token, _ = staff_client
    before = table_counts(db)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for url in ("/api/subscribe", "/api/v1/subscribers", "/api/v1/issues/1/schedule"):
        response = client.post(url, content=body, headers=headers)
        assert response.status_code in (404, 422), (url, response.status_code, response.text)
        if response.status_code == 422:
            assert response.json()["detail"], response.text
    assert table_counts(db) == before

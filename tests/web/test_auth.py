"""Login, logout, sessions, CSRF and the login attempt limits."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.web.conftest import ADMIN, EDITOR, PASSWORD, csrf_from, sign_in


def test_login_page_and_sign_in_lands_on_the_requested_page(anon: TestClient, staff: None) -> None:
    first = anon.get("/admin/issues", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=/admin/issues"
    page = anon.get(first.headers["location"])
    assert "Staff sign-in" in page.text
    done = anon.post(
        "/login",
        data={
            "email": EDITOR.upper(),
            "password": PASSWORD,
            "next": "/admin/issues",
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/issues"
    assert anon.get("/admin/issues").status_code == 200


def test_session_cookie_is_httponly_and_samesite(anon: TestClient, staff: None) -> None:
    page = anon.get("/login")
    cookie = page.headers["set-cookie"]
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http in tests; see the https test below


def test_session_cookie_is_secure_behind_https(monkeypatch, db_url: str) -> None:
    from newsletter.settings import reset_settings
    from newsletter.web.app import create_app

    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://news.example")
    reset_settings()
    with TestClient(create_app(), base_url="https://news.example") as client:
        page = client.get("/login")
        assert "; secure" in page.headers["set-cookie"].lower()
        assert page.headers["strict-transport-security"].startswith("max-age=")


def test_wrong_password_is_refused_without_saying_which_part(anon: TestClient, staff: None) -> None:
    page = anon.get("/login")
    for email in (ADMIN, "nobody@example.com"):
        response = anon.post(
            "/login",
            data={
                "email": email,
                "password": "wrong password!!",
                "csrf_token": csrf_from(page.text),
            },
        )
        assert response.status_code == 401
        assert "do not match an account" in response.text
    assert anon.get("/admin/issues", follow_redirects=False).status_code == 303


def test_login_attempts_are_limited_per_account(anon: TestClient, staff: None) -> None:
    token = csrf_from(anon.get("/login").text)
    for _ in range(5):
        bad = anon.post("/login", data={"email": ADMIN, "password": "x" * 12, "csrf_token": token})
        assert bad.status_code == 401
    locked = anon.post("/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": token})
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert "Too many failed attempts" in locked.text
    # The lock is per account: a colleague can still sign in from the same address.
    sign_in(anon, EDITOR)


def test_login_attempts_are_limited_per_address(anon: TestClient, staff: None) -> None:
    token = csrf_from(anon.get("/login").text)
    for i in range(20):
        anon.post(
            "/login",
            data={"email": f"guess{i}@example.com", "password": "x" * 12, "csrf_token": token},
        )
    locked = anon.post("/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": token})
    assert locked.status_code == 429


def test_login_without_or_with_a_wrong_csrf_token_is_refused(anon: TestClient, staff: None) -> None:
    anon.get("/login")
    missing = anon.post("/login", data={"email": ADMIN, "password": PASSWORD})
    assert missing.status_code == 403
    wrong = anon.post("/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": "forged"})
    assert wrong.status_code == 403
    assert anon.get("/admin/issues", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_site(anon: TestClient, staff: None) -> None:
    token = csrf_from(anon.get("/login").text)
    response = anon.post(
        "/login",
        data={"email": ADMIN, "password": PASSWORD, "next": "//evil.example/", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/admin"


def test_logout_ends_the_session(admin: TestClient) -> None:
    page = admin.get("/admin/issues")
    assert page.status_code == 200
    out = admin.post("/logout", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert admin.get("/admin/issues", follow_redirects=False).status_code == 303


def test_a_deleted_account_loses_its_session_at_once(editor: TestClient, db_url: str) -> None:
    from newsletter.accounts import repository
    from newsletter.db import transaction

    assert editor.get("/admin/issues").status_code == 200
    with transaction() as session:
        user = repository.get_by_email(session, EDITOR)
        assert user is not None
        repository.delete(session, user)
    assert editor.get("/admin/issues", follow_redirects=False).status_code == 303

"""Logout, a password change, a role change and removing a user end every session of that
user: a copy of the session cookie, replayed over real HTTP, no longer opens a staff page."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from newsletter.accounts import repository
from newsletter.accounts.models import Role
from newsletter.accounts.service import create_user, remove_user, set_password, set_role
from newsletter.db import transaction
from tests.live_server import serving
from tests.web.conftest import ADMIN, EDITOR, PASSWORD, csrf_from


@pytest.fixture
def server(db_url: str, staff: None) -> Iterator[str]:
    from newsletter.web.app import create_app

    with serving(create_app()) as base:
        yield base


def signed_in(base: str, email: str) -> httpx.Client:
    browser = httpx.Client(base_url=base)
    token = csrf_from(browser.get("/login").text)
    done = browser.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert done.status_code == 303, done.text
    return browser


def copy_of(browser: httpx.Client, base: str) -> httpx.Client:
    """Another machine holding the same cookie (copied from the browser's storage)."""
    return httpx.Client(base_url=base, cookies=dict(browser.cookies))


def works(client: httpx.Client) -> bool:
    return client.get("/admin/issues").status_code == 200


def _change(user_email: str, change: Callable[..., None], *args: object) -> None:
    with transaction() as session:
        user = repository.get_by_email(session, user_email)
        assert user is not None
        change(session, user, *args)


def test_logout_ends_copies_of_the_cookie_too(server: str) -> None:
    browser = signed_in(server, EDITOR)
    stolen = copy_of(browser, server)
    assert works(stolen)
    page = browser.get("/admin/issues")
    assert browser.post("/logout", data={"csrf_token": csrf_from(page.text)}).status_code == 303
    assert not works(browser) and not works(stolen)
    # Signing in again works, and makes a new session.
    assert works(signed_in(server, EDITOR))


@pytest.mark.parametrize("change", ["password", "role", "removed"])
def test_an_account_change_ends_every_session_of_that_user(server: str, change: str) -> None:
    victim = signed_in(server, EDITOR)
    stolen = copy_of(victim, server)
    colleague = signed_in(server, ADMIN)
    if change == "password":
        _change(EDITOR, set_password, "a brand new passphrase")
    elif change == "role":
        _change(EDITOR, set_role, Role.ADMIN)
    else:
        _change(EDITOR, remove_user)
    assert not works(victim) and not works(stolen)
    assert works(colleague)  # only that user's sessions end


def test_a_cookie_of_a_removed_user_does_not_open_an_account_made_later_under_its_id(
    server: str,
) -> None:
    """SQLite may give the next account the removed one's id; the old cookie must not fit."""
    stolen = copy_of(signed_in(server, EDITOR), server)
    _change(EDITOR, remove_user)
    with transaction() as session:
        create_user(session, "newcomer@example.com", PASSWORD, Role.ADMIN)
    assert not works(stolen)


def test_the_web_role_change_by_an_admin_ends_the_users_sessions(server: str) -> None:
    victim = signed_in(server, EDITOR)
    admin = signed_in(server, ADMIN)
    with transaction() as session:
        user = repository.get_by_email(session, EDITOR)
        assert user is not None
        user_id = user.id
    page = admin.get("/admin/users")
    answer = admin.post(
        f"/admin/users/{user_id}/role",
        data={"role": "admin", "csrf_token": csrf_from(page.text)},
    )
    assert answer.status_code == 303, answer.text
    assert not works(victim) and works(admin)


def _sign_in_with(base: str, email: str, password: str) -> int:
    browser = httpx.Client(base_url=base)
    token = csrf_from(browser.get("/login").text)
    form = {"email": email, "password": password, "csrf_token": token}
    return browser.post("/login", data=form).status_code


def test_a_person_changes_their_own_password_on_the_account_page(server: str) -> None:
    """From the page their address links to: the current password first, the new one twice;
    other sessions end, this one goes on, and only the new password signs in afterwards."""
    browser = signed_in(server, EDITOR)
    elsewhere = signed_in(server, EDITOR)
    page = browser.get("/admin/issues")
    assert 'href="/account"' in page.text
    account = browser.get("/account")
    assert account.status_code == 200 and "Change your password" in account.text
    token = csrf_from(account.text)
    new = "a brand new passphrase 42"

    def change(current: str, first: str, second: str) -> httpx.Response:
        form = {"csrf_token": token, "current": current, "new": first, "again": second}
        return browser.post("/account/password", data=form)

    wrong = change("not my password at all", new, new)
    assert wrong.status_code == 400 and "not your current password" in wrong.text
    differ = change(PASSWORD, new, new + "x")
    assert differ.status_code == 400 and "differ" in differ.text
    short = change(PASSWORD, "short", "short")
    assert short.status_code == 400 and "at least 12 characters" in short.text
    assert works(elsewhere) and _sign_in_with(server, EDITOR, PASSWORD) == 303  # nothing changed

    done = change(PASSWORD, new, new)
    assert done.status_code == 303 and done.headers["location"] == "/account"
    assert "Password changed" in browser.get("/account").text
    assert works(browser) and not works(elsewhere)
    assert _sign_in_with(server, EDITOR, PASSWORD) == 401
    assert _sign_in_with(server, EDITOR, new) == 303


def test_the_account_page_needs_a_session_and_the_form_its_token(server: str) -> None:
    anon = httpx.Client(base_url=server)
    assert anon.get("/account").status_code in (303, 307)
    browser = signed_in(server, EDITOR)
    form = {"current": PASSWORD, "new": "x" * 20, "again": "x" * 20}
    assert browser.post("/account/password", data=form).status_code == 403
    assert _sign_in_with(server, EDITOR, PASSWORD) == 303

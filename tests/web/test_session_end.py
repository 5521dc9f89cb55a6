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

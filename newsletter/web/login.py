"""Staff login and logout, with attempts limited per client address and per account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter import paths
from newsletter.db import transaction
from newsletter.web import csrf
from newsletter.web.auth import SESSION_KEY, SESSION_USER, StaffUser, current_staff, require_staff
from newsletter.web.pages import flash, redirect, render
from newsletter.web.ratelimit import AttemptLimiter

router = APIRouter(include_in_schema=False)


def limiter(request: Request) -> AttemptLimiter:
    found: AttemptLimiter = request.app.state.login_limiter
    return found


def _safe_next(value: str | None) -> str:
    # Only a path on this site: an open redirect would make the login page a phishing relay.
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return paths.ADMIN_HOME


def _too_many(wait: int) -> str:
    return f"Too many failed attempts. Try again in about {max(1, round(wait / 60))} minute(s)."


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get(paths.LOGIN, response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    if current_staff(request) is not None:
        return redirect(_safe_next(next))
    return render(request, "web/login.html", {"next": _safe_next(next), "email": "", "error": None})


@router.post(paths.LOGIN, dependencies=[Depends(csrf.require_csrf)])
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = paths.ADMIN_HOME,
) -> Response:
    from newsletter.accounts.service import authenticate

    limits = limiter(request)
    context = {"next": _safe_next(next), "email": email}
    # Counted before the password is checked (and given back on success): parallel guesses
    # from several processes cannot all pass the check before any of them is counted.
    wait = limits.attempt(_client(request), email)
    if wait:
        error = _too_many(wait)
        return render(
            request,
            "web/login.html",
            {**context, "error": error},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    with transaction() as session:
        user = authenticate(session, email, password)
        uid, key = (user.id, user.session_key) if user is not None else (None, None)
    if uid is None:
        error = "That email and password do not match an account."
        return render(request, "web/login.html", {**context, "error": error}, status_code=401)
    limits.succeeded(_client(request), email)
    # A fresh session at login: nothing a visitor had before carries over into staff rights.
    request.session.clear()
    request.session[SESSION_USER] = uid
    request.session[SESSION_KEY] = key
    csrf.rotate(request)
    return redirect(_safe_next(next))


@router.post("/logout", dependencies=[Depends(csrf.require_csrf)])
def logout(request: Request) -> RedirectResponse:
    """Signs the user out everywhere: a copy of this cookie (another browser, a stolen one)
    must not outlive the logout the person asked for."""
    from newsletter.accounts import service as accounts
    from newsletter.accounts.service import end_sessions

    staff = current_staff(request)
    if staff is not None:
        with transaction() as session:
            user = accounts.get(session, staff.id)
            if user is not None:
                end_sessions(session, user)
    request.session.clear()
    flash(request, "You are signed out.")
    return redirect(paths.LOGIN)


@router.get(paths.ACCOUNT, response_class=HTMLResponse)
def account_page(
    request: Request, staff: Annotated[StaffUser, Depends(require_staff)]
) -> HTMLResponse:
    return render(request, "web/account.html", {"me": staff.email, "error": None})


@router.post(paths.ACCOUNT + "/password", dependencies=[Depends(csrf.require_csrf)])
def change_password(
    request: Request,
    staff: Annotated[StaffUser, Depends(require_staff)],
    current: Annotated[str, Form(max_length=1024)],
    new: Annotated[str, Form(max_length=1024)],
    again: Annotated[str, Form(max_length=1024)],
) -> Response:
    """The signed-in person's own password: the current one first (a session left open on a
    shared computer must not let someone lock the owner out), counted by the sign-in limiter;
    every other session ends, this one goes on with the new key."""
    from newsletter.accounts import service as accounts
    from newsletter.accounts.service import AccountError, authenticate, set_password

    limits = limiter(request)

    def refuse(error: str, status: int = 400) -> HTMLResponse:
        context = {"me": staff.email, "error": error}
        return render(request, "web/account.html", context, status_code=status)

    if new != again:
        return refuse("The two new passwords differ; type the same one twice.")
    wait = limits.attempt(_client(request), staff.email)
    if wait:
        return refuse(_too_many(wait), 429)
    refused: str | None = None
    with transaction() as session:
        if authenticate(session, staff.email, current) is None:
            return refuse("That is not your current password.")
        user = accounts.get(session, staff.id)
        assert user is not None
        try:
            set_password(session, user, new)
        except AccountError as exc:
            refused = f"Not changed: {exc}."
        key = user.session_key
    # After the transaction: the limiter's own write must not wait behind this one (SQLite).
    limits.succeeded(_client(request), staff.email)
    if refused is not None:
        return refuse(refused)
    request.session[SESSION_KEY] = key
    csrf.rotate(request)
    flash(request, "Password changed. Every other session of yours is signed out.")
    return redirect(paths.ACCOUNT)

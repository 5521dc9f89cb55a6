"""Staff login and logout, with attempts limited per client address and per account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.db import transaction
from newsletter.web import csrf
from newsletter.web.auth import SESSION_KEY, SESSION_USER, current_staff
from newsletter.web.pages import flash, redirect, render
from newsletter.web.ratelimit import LoginLimiter

router = APIRouter(include_in_schema=False)


def limiter(request: Request) -> LoginLimiter:
    found: LoginLimiter = request.app.state.login_limiter
    return found


def _safe_next(value: str | None) -> str:
    # Only a path on this site: an open redirect would make the login page a phishing relay.
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/admin"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    if current_staff(request) is not None:
        return redirect(_safe_next(next))
    return render(request, "web/login.html", {"next": _safe_next(next), "email": "", "error": None})


@router.post("/login", dependencies=[Depends(csrf.require_csrf)])
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/admin",
) -> Response:
    from newsletter.accounts.service import authenticate

    limits = limiter(request)
    context = {"next": _safe_next(next), "email": email}
    wait = limits.retry_after(_client(request), email)
    if wait:
        minutes = max(1, round(wait / 60))
        error = f"Too many failed attempts. Try again in about {minutes} minute(s)."
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
        limits.record_failure(_client(request), email)
        error = "That email and password do not match an account."
        return render(request, "web/login.html", {**context, "error": error}, status_code=401)
    limits.record_success(email)
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
    from newsletter.accounts import repository
    from newsletter.accounts.service import end_sessions

    staff = current_staff(request)
    if staff is not None:
        with transaction() as session:
            user = repository.get(session, staff.id)
            if user is not None:
                end_sessions(session, user)
    request.session.clear()
    flash(request, "You are signed out.")
    return redirect("/login")

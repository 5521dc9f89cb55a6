"""CSRF protection for every form: a synchronizer token kept in the signed session.

Every page with a form renders `csrf_token()` into a hidden `csrf_token` field; every unsafe
request (POST, PUT, PATCH, DELETE) through `require_csrf` must send it back (form field, or the
`X-CSRF-Token` header for the small fetch calls). A cross-site page can make the browser post,
but it cannot read the token. The JSON API is not cookie-authenticated, so it needs none.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request

SESSION_KEY = "csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(request: Request) -> str:
    token = request.session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def rotate(request: Request) -> None:
    """A new token at login and logout, so one seen before authentication is worthless after."""
    request.session[SESSION_KEY] = secrets.token_urlsafe(32)


async def require_csrf(request: Request) -> None:
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get(SESSION_KEY)
    submitted = request.headers.get(HEADER)
    if submitted is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            # Starlette caches the parsed form on the request, so the route reads it again free.
            value = (await request.form()).get(FIELD)
            submitted = value if isinstance(value, str) else None
    if not expected or not submitted or not hmac.compare_digest(str(expected), submitted):
        raise HTTPException(
            status_code=403,
            detail="This form has expired or did not come from this site (CSRF check failed). "
            "Go back, reload the page and try again.",
        )

"""Error responses: a page for people, JSON for programs (the API, webhooks, fetch calls)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsletter.web.auth import LoginRequired, login_url
from newsletter.web.pages import redirect, render

TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Check the form",
    429: "Too many requests",
}


def _wants_html(request: Request) -> bool:
    if request.url.path.startswith(("/api/", "/webhooks/", "/openapi")):
        return False
    return "text/html" in request.headers.get("accept", "")


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return redirect(login_url(exc.next_path))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _wants_html(request):
        return await http_exception_handler(request, exc)
    return render(
        request,
        "web/error.html",
        {
            "status": exc.status_code,
            "title": TITLES.get(exc.status_code, "Error"),
            "detail": exc.detail,
        },
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(StarletteHTTPException, _http_error)

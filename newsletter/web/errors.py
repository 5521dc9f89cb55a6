"""Error responses: a page for people, JSON for programs (the API, webhooks, fetch calls)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsletter.errors import NotFound, Refused
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


async def _out_of_range(request: Request, exc: Exception) -> Response:
    # An id or number in the URL, query or form beyond what an INTEGER column holds (64 bits):
    # SQLite's driver refuses to bind it. No such row can exist, so it is the request that is
    # wrong (422, as a declared bound would answer), not the server (500).
    if not _is_integer_overflow(exc):
        raise exc
    message = "A number in the request is out of range."
    if not _wants_html(request):
        # The 422 shape /openapi.json documents for every operation: a list of field errors.
        detail = [{"loc": ["request"], "msg": message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)
    return await _http_error(request, StarletteHTTPException(422, message))


def _is_integer_overflow(exc: Exception) -> bool:
    if isinstance(exc, OverflowError):
        return "SQLite INTEGER" in str(exc)
    orig = getattr(exc, "orig", None)
    return type(orig).__name__ == "NumericValueOutOfRange"


def _json_safe(value: Any) -> Any:
    """What JSON can carry: a number beyond a float (1e400 parses as inf) or NaN as its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def _invalid_request(request: Request, exc: Exception) -> Response:
    # FastAPI's own handler echoes the offending input, and a JSON body with 1e400 in it
    # (inf to Python) then failed to serialise: a 500 for a request that is merely wrong.
    assert isinstance(exc, RequestValidationError)
    detail = _json_safe(jsonable_encoder(exc.errors()))
    if _wants_html(request):
        # A person's form (a field past its length, say): a page naming each field and what
        # is wrong with it, never the value typed.
        fields = [
            {
                "loc": [str(p) for p in e.get("loc", [])[1:] or e.get("loc", [])],
                "msg": str(e.get("msg", "")),
            }
            for e in detail
            if isinstance(e, dict)
        ]
        context = {"status": 422, "title": TITLES[422], "detail": fields}
        return render(request, "web/error.html", context, status_code=422)
    return JSONResponse({"detail": detail}, status_code=422)


async def _refused(request: Request, exc: Exception) -> Response:
    # A domain's refusal that its route did not catch: the message is for the person (what
    # and why); the transaction that raised it has rolled back.
    assert isinstance(exc, Refused)
    status = 404 if isinstance(exc, NotFound) else 409
    return await _http_error(request, StarletteHTTPException(status, str(exc)))


def install(app: FastAPI) -> None:
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(DataError, _out_of_range)

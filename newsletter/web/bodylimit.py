"""Refuse request bodies larger than their route can need: 413, before they are read whole.

Without it a public POST (/api/subscribe, /subscribe, /webhooks/sendgrid sent chunked) reads a
body of any size into memory before anything looks at it. Pure ASGI, so the pixel and click
GETs pay nothing: requests that carry no body are passed straight through.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter import paths

# Forms, logins and JSON calls are a few kilobytes; a megabyte is far more than any needs.
DEFAULT_LIMIT = 1024 * 1024
# multipart/form-data framing and the other fields of the upload form, beyond the file itself.
MULTIPART_SLACK = 1024 * 1024
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def route_limits() -> dict[str, int]:
    """The routes that take more than DEFAULT_LIMIT, with their own limits."""
    from newsletter.tracking.webhook import MAX_BODY_BYTES
    from newsletter.web.admin_import import MAX_UPLOAD_BYTES

    return {
        "/webhooks/sendgrid": MAX_BODY_BYTES,
        paths.ADMIN_SUBSCRIBERS + "/import": MAX_UPLOAD_BYTES + MULTIPART_SLACK,
    }


class BodyTooLarge(HTTPException):
    # An HTTPException, so that when the route is reading the body (FastAPI turns other errors
    # into 400) the app's own error handler answers 413 as a page or JSON.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit:,} bytes.")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.limits = route_limits() if limits is None else limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], DEFAULT_LIMIT)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        # A chunked body (or one longer than it declared) is counted as it arrives.
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = f"The request body is larger than {limit:,} bytes.".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

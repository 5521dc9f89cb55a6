"""HEAD for every page: answered as the GET would be, without the body (RFC 9110 §9.3.2).

FastAPI routes declared for GET refuse HEAD with 405, yet feed readers, link checkers and
uptime monitors send HEAD. Tracking URLs are left out on purpose: a HEAD from a link checker
must never count as an open, a click or a vote.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter import paths

_NOT_FOR_HEAD = paths.HIT_PREFIXES


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or scope["path"].startswith(_NOT_FOR_HEAD)
        ):
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)

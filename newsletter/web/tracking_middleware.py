"""The open pixel and the click redirect, answered by a pure ASGI layer ahead of the router.

These two URLs are most of the app's traffic: every reader's mail client fetches the pixel, and
link scanners follow every link. Through the framework each hit paid for route matching across
every router, request and dependency objects, and the session middleware reading a cookie the
endpoints never use; that was most of its cost. Here a hit is two regular expressions, an HMAC
check, one database round (`hits.run`) and one response. The layer sits inside the security
headers middleware (every answer still carries them) and outside the session middleware.

What a hit promises is unchanged: a forged or altered token is a plain 404 and records nothing;
the redirect goes only to a link the delivery's issue contains; machines are flagged and
tracking opt-outs respected by the service. A HEAD is answered as the GET would be (link
checkers and uptime monitors send them) but records nothing: no person reads mail with HEAD.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter import paths
from newsletter.security.delivery_tokens import read_delivery_token
from newsletter.tracking import hits, service
from newsletter.tracking.service import HitEvent
from newsletter.web.tracking import NO_CACHE, PIXEL_GIF, not_found

D = TypeVar("D")

# The pixel's and the click's paths, as newsletter/paths.py spells them for the mail.
_PIXEL = paths.matcher(paths.PIXEL_PATTERN)
_CLICK = paths.matcher(paths.CLICK_PATTERN)
_PIXEL_PREFIX = paths.PIXEL_PATTERN.split("{")[0]
_CLICK_PREFIX = paths.CLICK_PATTERN.split("{")[0]
# RedirectResponse's own quoting: a link's URL is sent as the issue stored it, made header-safe.
_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"

_NO_CACHE_HEADERS = [(k.lower().encode(), v.encode()) for k, v in NO_CACHE.items()]
_PIXEL_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", str(len(PIXEL_GIF)).encode()),
    *_NO_CACHE_HEADERS,
]


class TrackingHitsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            if path.startswith(_PIXEL_PREFIX):
                match = _PIXEL.fullmatch(path)
                if match:
                    await _pixel(match[1], scope, receive, send)
                    return
            elif path.startswith(_CLICK_PREFIX):
                match = _CLICK.fullmatch(path)
                if match:
                    await _click(match[1], match[2], scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _user_agent(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"user-agent":
            return str(value.decode("latin-1"))
    return None


def _client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _uncounted(
    decide: Callable[..., tuple[D, HitEvent | None]],
) -> Callable[..., tuple[D, HitEvent | None]]:
    """The same answer as `decide`, with no event to record."""

    def answer_only(*args: Any, **kwargs: Any) -> tuple[D, HitEvent | None]:
        return decide(*args, **kwargs)[0], None

    return answer_only


def _counting(scope: Scope, decide: Callable[..., tuple[D, HitEvent | None]]) -> Any:
    return decide if scope["method"] == "GET" else _uncounted(decide)


async def _pixel(token: str, scope: Scope, receive: Receive, send: Send) -> None:
    link = read_delivery_token(token)
    found = link is not None and await hits.run(
        _counting(scope, service.open_hit),
        link,
        user_agent=_user_agent(scope),
        client_ip=_client_ip(scope),
    )
    if not found:
        await not_found("This image link is not valid.")(scope, receive, send)
        return
    # Fresh messages each time: outer middleware adds its headers to the list it is given.
    await send({"type": "http.response.start", "status": 200, "headers": list(_PIXEL_HEADERS)})
    body = PIXEL_GIF if scope["method"] == "GET" else b""
    await send({"type": "http.response.body", "body": body})


async def _click(token: str, link_key: str, scope: Scope, receive: Receive, send: Send) -> None:
    link = read_delivery_token(token)
    if link is None:
        await not_found("This link is not valid.")(scope, receive, send)
        return
    url = await hits.run(
        _counting(scope, service.click_hit),
        link,
        link_key,
        user_agent=_user_agent(scope),
        client_ip=_client_ip(scope),
    )
    if url is None:
        await not_found("This link is not part of the issue you received.")(scope, receive, send)
        return
    location = quote(url, safe=_LOCATION_SAFE).encode("latin-1")
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [(b"location", location), (b"content-length", b"0"), *_NO_CACHE_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": b""})

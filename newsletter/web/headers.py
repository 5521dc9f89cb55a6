"""Security headers on every response the app sends (pure ASGI, so streaming bodies pass).

The staff pages and the public pages share one strict policy: scripts and styles only from the
app itself (no inline script, so an injected <script> does nothing), no framing by other sites.
A route that serves an email for preview sets its own, looser policy for styles (emails are
inline-styled) but runs sandboxed with no script at all; see `EMAIL_PREVIEW_CSP`.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

# An email as the reader's client shows it: inline styles and remote images, never script.
# `sandbox` without allow-scripts makes the document a unique origin that can run nothing.
EMAIL_PREVIEW_CSP = "; ".join(
    [
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src https: http: data:",
        "font-src https: data:",
        "form-action 'none'",
        "frame-ancestors 'self'",
        "sandbox allow-popups allow-popups-to-escape-sandbox",
    ]
)

HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = _is_https(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", PAGE_CSP)
                framable = "frame-ancestors 'self'" in headers["Content-Security-Policy"]
                headers.setdefault("X-Frame-Options", "SAMEORIGIN" if framable else "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault(
                    "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
                )
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_https(scope: Scope) -> bool:
    # uvicorn sets the scheme from X-Forwarded-Proto when the proxy is trusted (--proxy-headers).
    return scope.get("scheme") == "https"

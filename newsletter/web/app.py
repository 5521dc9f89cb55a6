"""The web app: editor, admin, public pages, tracking endpoints and webhooks (FastAPI)."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from newsletter import __version__
from newsletter.security.keys import require_signing_key
from newsletter.settings import get_settings
from newsletter.templating import TEMPLATES_DIR
from newsletter.web import accesslog, errors
from newsletter.web.bodylimit import BodyLimitMiddleware
from newsletter.web.head import HeadAsGetMiddleware
from newsletter.web.headers import SecurityHeadersMiddleware
from newsletter.web.ratelimit import AttemptLimiter
from newsletter.web.readers import router as subscribers_router
from newsletter.web.readers import sign_up_limiter
from newsletter.web.textinput import TextInputMiddleware
from newsletter.web.tracking_middleware import TrackingHitsMiddleware

SESSION_COOKIE = "nl_session"
SESSION_MAX_AGE = 8 * 3600  # a working day; staff sign in again the next morning


def _session_secret(secret: str) -> str:
    # A key of its own for sessions, so a session cookie can never pass for a signed link.
    return hmac.new(secret.encode(), b"web-session", hashlib.sha256).hexdigest()


def create_app() -> FastAPI:
    settings = get_settings()
    secret = require_signing_key(settings)  # refuses the published key on a public base URL
    app = FastAPI(
        title="Weekly AI Tool Verdicts",
        version=__version__,
        description="Staff JSON API (bearer token from `newsletter users token EMAIL`).",
        # The interactive docs load scripts from a CDN, which the page policy refuses;
        # /openapi.json describes the API.
        docs_url=None,
        redoc_url=None,
    )
    app.state.login_limiter = AttemptLimiter()
    app.state.subscribe_limiter = sign_up_limiter()
    app.add_middleware(
        SessionMiddleware,
        secret_key=_session_secret(secret),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.newsletter_base_url.startswith("https://"),
    )
    app.add_middleware(HeadAsGetMiddleware)  # HEAD on pages, never on tracking URLs (head.py)
    # NUL and lone surrogates refused at the door, inside the body limit (textinput.py).
    app.add_middleware(TextInputMiddleware)
    app.add_middleware(BodyLimitMiddleware)  # 413 for oversized bodies (bodylimit.py)
    # The open pixel and click redirect, answered ahead of routing and without a session:
    # the hottest URLs the app serves (newsletter/web/tracking_middleware.py).
    app.add_middleware(TrackingHitsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    errors.install(app)
    accesslog.install()  # no link tokens in uvicorn's access log
    app.mount("/static", StaticFiles(directory=TEMPLATES_DIR / "web" / "static"), name="static")

    from newsletter.web import admin, admin_import, api, archive, brand, editor, login, segments

    app.include_router(login.router)
    app.include_router(editor.router)
    # Before admin: /admin/subscribers/import is not a /admin/subscribers/{id}.
    app.include_router(admin_import.router)
    app.include_router(admin.router)
    app.include_router(segments.router)
    app.include_router(archive.router)
    app.include_router(api.router)
    app.include_router(brand.router)
    # Each domain contributes its router here.
    from newsletter.web.tracking import router as tracking_router

    app.include_router(tracking_router)
    app.include_router(subscribers_router)
    return app

"""Server-rendered pages: one helper every route (any domain's) can use to render a template.

Templates extend `web/base.html`. The context always has `request`, `current_user` (a
`StaffUser` or None), `csrf_token()` for forms and `flashes` (one-time notices after a redirect).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from newsletter.templating import web_environment
from newsletter.web.auth import current_staff
from newsletter.web.csrf import csrf_token

FLASH_KEY = "flash"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    values: dict[str, Any] = {
        "request": request,
        "current_user": current_staff(request),
        "csrf_token": lambda: csrf_token(request),
        "flashes": request.session.pop(FLASH_KEY, []),
        "path": request.url.path,
    }
    values.update(context or {})
    html = web_environment().get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A notice shown once on the next page (kind: ok or error)."""
    notices = list(request.session.get(FLASH_KEY, []))
    notices.append({"kind": kind, "message": message})
    request.session[FLASH_KEY] = notices[-5:]


def redirect(url: str) -> RedirectResponse:
    # 303 so the browser follows a POST with a GET (no "resubmit the form?" on reload).
    return RedirectResponse(url, status_code=303)

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


# What each per-reader link does in a subscriber's copy, for the page a preview or a test copy
# opens instead (newsletter.security.delivery_tokens.SAMPLE_TOKENS).
SAMPLE_LINKS = {
    "vote": "counts their vote for that tool and shows how other readers voted",
    "unsubscribe": "opens their unsubscribe page: one button, and no more issues",
    "preferences": "opens their email preferences: pause, tracking, download or erase their data",
}


def sample_link_page(request: Request, token: str, what: str) -> HTMLResponse:
    """The answer to a per-reader link from a preview ("preview") or a test send ("test")."""
    from newsletter.security.delivery_tokens import TEST_TOKEN

    copy = "test copy" if token == TEST_TOKEN else "preview"
    context = {"copy": copy, "does": SAMPLE_LINKS[what]}
    return render(request, "web/sample_link.html", context, headers={"Cache-Control": "no-store"})


CONFIRMED = "yes"  # the `confirmed` field of a confirmation page's form


def confirm_page(
    request: Request,
    *,
    title: str,
    question: str,
    action: str,
    button: str,
    back: str,
    consequences: list[str] | None = None,
) -> HTMLResponse:
    """The step before an action that cannot be undone: the GET of the action's URL shows what
    it will do and a button that posts it, so one stray click (or a link scanner) acts on
    nothing, and it works without script, within the page policy."""
    context = {
        "title": title,
        "question": question,
        "consequences": consequences or [],
        "action": action,
        "button": button,
        "back": back,
    }
    return render(request, "web/confirm.html", context, headers={"Cache-Control": "no-store"})

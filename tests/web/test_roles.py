"""The role matrix, enumerated from the app's own routes: a route added later is covered too.

Policy (from the issue): every staff route refuses a visitor without a session (pages: back to
the login page; API: 401), every admin-only route refuses an editor (403), and every unsafe
request to a staff page needs the CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.web.conftest import csrf_from

ADMIN_ONLY_PAGES = ("/admin/subscribers", "/admin/suppressions", "/admin/users")
ADMIN_ONLY_API = ("/api/v1/subscribers",)


def _all_routes(routes: list[Any]) -> Iterator[tuple[str, set[str]]]:
    # FastAPI keeps included routers as branches; walk them to the routes a request can reach.
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.path, set(route.methods)
        elif hasattr(route, "effective_candidates"):
            for candidate in route.effective_candidates():
                if hasattr(candidate, "effective_candidates"):
                    yield from _all_routes([candidate])
                elif isinstance(candidate.original_route, APIRoute):
                    yield candidate.path, set(candidate.original_route.methods)


def _routes(app: FastAPI, prefix: str) -> list[tuple[str, str]]:
    found = []
    for path, methods in _all_routes(list(app.routes)):
        if path.startswith(prefix):
            for method in sorted(methods - {"HEAD"}):
                found.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return found


def test_the_matrix_covers_every_kind_of_staff_route(app: FastAPI) -> None:
    pages = _routes(app, "/admin")
    api = _routes(app, "/api/v1")
    assert len(pages) >= 25 and len(api) >= 8
    assert any(path.startswith(ADMIN_ONLY_PAGES) for _, path in pages)


def test_a_visitor_without_a_session_is_sent_to_the_login_page(
    app: FastAPI, anon: TestClient
) -> None:
    for method, path in _routes(app, "/admin"):
        response = anon.request(method, path, follow_redirects=False)
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/login?next="), (method, path)


def test_the_api_refuses_a_request_without_a_valid_token(app: FastAPI, anon: TestClient) -> None:
    for method, path in _routes(app, "/api/v1"):
        for headers in (
            {},
            {"Authorization": "Bearer nlt_forged"},
            {"Authorization": "Basic eDp5"},
        ):
            response = anon.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.status_code)


def test_an_editor_is_refused_every_admin_only_route(app: FastAPI, editor: TestClient) -> None:
    checked = 0
    for method, path in _routes(app, "/admin"):
        if path.startswith(ADMIN_ONLY_PAGES):
            response = editor.request(method, path, follow_redirects=False)
            assert response.status_code == 403, (method, path, response.status_code)
            checked += 1
    assert checked >= 10


def test_an_editor_reaches_the_editor_pages(editor: TestClient, draft_issue: int) -> None:
    for path in (
        "/admin/issues",
        f"/admin/issues/{draft_issue}",
        f"/admin/issues/{draft_issue}/preview.html",
    ):
        assert editor.get(path).status_code == 200, path
    page = editor.get("/admin/issues").text
    assert "/admin/subscribers" not in page  # the menu does not offer what would be refused


def test_an_editor_token_is_refused_admin_only_api_routes(
    app: FastAPI, anon: TestClient, staff: None
) -> None:
    from newsletter.accounts.service import find, issue_api_token
    from newsletter.db import transaction
    from tests.web.conftest import EDITOR

    with transaction() as session:
        token = issue_api_token(session, find(session, EDITOR))
    headers = {"Authorization": f"Bearer {token}"}
    checked = 0
    for method, path in _routes(app, "/api/v1"):
        if path.startswith(ADMIN_ONLY_API):
            response = anon.request(method, path, headers=headers, json={"email": "a@example.com"})
            assert response.status_code == 403, (method, path, response.status_code)
            checked += 1
    assert checked >= 4
    assert anon.get("/api/v1/issues", headers=headers).status_code == 200


def test_every_staff_form_refuses_a_missing_or_wrong_csrf_token(
    app: FastAPI, admin: TestClient
) -> None:
    token = csrf_from(admin.get("/admin/issues").text)
    posts = [(m, p) for m, p in _routes(app, "/admin") if m == "POST"]
    assert len(posts) >= 15
    for _, path in posts:
        missing = admin.post(path, data={"email": "x@example.com"}, follow_redirects=False)
        assert missing.status_code == 403, (path, missing.status_code)
        wrong = admin.post(path, data={"csrf_token": token[::-1]}, follow_redirects=False)
        assert wrong.status_code == 403, (path, wrong.status_code)


def test_a_refused_csrf_changes_nothing(admin: TestClient, draft_issue: int) -> None:
    admin.post(f"/admin/issues/{draft_issue}/approve", data={"csrf_token": "forged"})
    assert "status-draft" in admin.get(f"/admin/issues/{draft_issue}").text

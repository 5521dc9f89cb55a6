"""The JSON API: bearer tokens, roles, and its OpenAPI description."""

from __future__ import annotations

from fastapi.testclient import TestClient

from newsletter.accounts.service import find, issue_api_token
from newsletter.db import transaction
from tests.web.conftest import ADMIN, EDITOR


def _token(email: str) -> dict[str, str]:
    with transaction() as session:
        return {"Authorization": f"Bearer {issue_api_token(session, find(session, email))}"}


def test_admin_manages_subscribers_through_the_api(anon: TestClient, staff: None) -> None:
    headers = _token(ADMIN)
    assert anon.get("/api/v1/me", headers=headers).json()["role"] == "admin"
    made = anon.post(
        "/api/v1/subscribers", headers=headers, json={"email": "Api@Example.com", "name": "A"}
    )
    assert made.status_code == 201 and made.json()["outcome"] == "added"
    sid = made.json()["id"]
    bad = anon.post("/api/v1/subscribers", headers=headers, json={"email": "nope"})
    assert bad.status_code == 422
    # The shape /openapi.json documents for a 422: a list of field errors.
    [error] = bad.json()["detail"]
    assert error["loc"] == ["body", "email"] and error["msg"]
    page = anon.get("/api/v1/subscribers", headers=headers, params={"q": "api@"}).json()
    assert [s["email"] for s in page["items"]] == ["api@example.com"]
    gone = anon.post(f"/api/v1/subscribers/{sid}/unsubscribe", headers=headers).json()
    assert gone["outcome"] == "unsubscribed"
    assert anon.delete(f"/api/v1/subscribers/{sid}", headers=headers).json()["outcome"] == "erased"
    assert anon.delete(f"/api/v1/subscribers/{sid}", headers=headers).status_code == 404


def test_editor_reads_and_approves_issues(anon: TestClient, staff: None, draft_issue: int) -> None:
    headers = _token(EDITOR)
    issues = anon.get("/api/v1/issues", headers=headers).json()
    assert [i["status"] for i in issues] == ["draft"]
    approved = anon.post(f"/api/v1/issues/{draft_issue}/approve", headers=headers)
    assert approved.status_code == 200 and approved.json()["approved_by"] == EDITOR
    again = anon.post(f"/api/v1/issues/{draft_issue}/approve", headers=headers)
    assert again.status_code == 409 and "only a draft can be approved" in again.json()["detail"]


def test_a_replaced_token_stops_working(anon: TestClient, staff: None) -> None:
    old = _token(EDITOR)
    _token(EDITOR)
    assert anon.get("/api/v1/me", headers=old).status_code == 401


def test_openapi_describes_the_api_and_its_bearer_auth(anon: TestClient) -> None:
    schema = anon.get("/openapi.json").json()
    assert "/api/v1/subscribers" in schema["paths"]
    assert "/api/v1/issues/{issue_id}/approve" in schema["paths"]
    schemes = schema["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    assert not any(p.startswith("/admin") for p in schema["paths"])

"""Security headers on every response, pages and errors alike."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

PATHS = ["/login", "/issues", "/issues/feed.atom", "/static/app.css", "/no-such-page", "/admin"]


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_security_headers(anon: TestClient, path: str) -> None:
    response = anon.get(path, follow_redirects=False)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert response.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in response.headers  # only over https


def test_no_interactive_docs_that_would_load_a_cdn(anon: TestClient) -> None:
    assert anon.get("/docs").status_code == 404
    assert anon.get("/openapi.json").status_code == 200

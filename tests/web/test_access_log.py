"""uvicorn's access log, from a real server, keeps no link token: a preferences, unsubscribe,
confirmation or tracking URL in the log shows the route and the token's first characters only."""

from __future__ import annotations

import logging

import httpx
import pytest

from newsletter.web.accesslog import redact
from tests.live_server import serving


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_access_log_of_a_real_server_keeps_no_token(db_url: str) -> None:
    from newsletter.web.app import create_app
    from subscribers.service import subscriber_token

    token = subscriber_token("kq3T0x9pL2mN8vR4sW6yZa")
    paths = [
        f"/p/{token}",
        f"/p/{token}/export.json",
        f"/u/{token}",
        f"/confirm/{token}",
        f"/o/{token}.gif",
        f"/c/{token}/m0",
        f"/v/{token}/slug/0",
    ]
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    access = logging.getLogger("uvicorn.access")
    with serving(create_app(), log_level="info") as base:
        # uvicorn's logging config (applied at start) stops access lines at their logger.
        access.addHandler(handler)
        try:
            for path in paths:
                httpx.get(f"{base}{path}")
        finally:
            access.removeHandler(handler)
    assert len(lines) == len(paths), lines
    secret = token[6:]
    assert not any(secret in line for line in lines), lines
    assert any(f"/p/{token[:6]}…/export.json" in line for line in lines), lines


def test_redaction_leaves_other_paths_alone() -> None:
    assert redact("/admin/subscribers?q=x") == "/admin/subscribers?q=x"
    assert redact("/issues/2026-W01") == "/issues/2026-W01"
    assert redact("/u/short") == "/u/short"

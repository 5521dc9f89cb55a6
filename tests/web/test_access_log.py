"""uvicorn's access log, from a real server, keeps no link token: a preferences, unsubscribe,
confirmation or tracking URL in the log shows the route and the token's first characters only."""

from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from newsletter.web.accesslog import redact


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_access_log_of_a_real_server_keeps_no_token(db_url: str) -> None:
    from newsletter.web.app import create_app
    from subscribers.service import subscriber_token

    token = subscriber_token(12345)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="info")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
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
    # uvicorn's own logging config stops access lines at their logger: listen there.
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("uvicorn.access").addHandler(handler)
    try:
        for path in paths:
            httpx.get(f"http://127.0.0.1:{port}{path}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        logging.getLogger("uvicorn.access").removeHandler(handler)
    assert len(lines) == len(paths), lines
    secret = token[6:]
    assert not any(secret in line for line in lines), lines
    assert any(f"/p/{token[:6]}…/export.json" in line for line in lines), lines


def test_redaction_leaves_other_paths_alone() -> None:
    assert redact("/admin/subscribers?q=x") == "/admin/subscribers?q=x"
    assert redact("/issues/2026-W01") == "/issues/2026-W01"
    assert redact("/u/short") == "/u/short"

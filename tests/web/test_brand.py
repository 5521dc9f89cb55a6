"""The logo the emails show, served by the app, and the sender settings' bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsletter.sender import DEFAULT_LOGO, postal_lines, sender
from newsletter.settings import reset_settings
from newsletter.web.app import create_app


def _get(path: str = "/brand/logo") -> tuple[int, bytes, str]:
    response = TestClient(create_app()).get(path)
    return response.status_code, response.content, response.headers.get("content-type", "")


def test_the_bundled_logo_is_served_and_named_in_the_mail() -> None:
    status, body, kind = _get()
    assert (status, kind) == (200, "image/png") and body == DEFAULT_LOGO.read_bytes()
    assert body.startswith(b"\x89PNG")
    me = sender()
    assert me.logo_url("https://n.example/") == "https://n.example/brand/logo"
    assert me.logo_alt == "Weekly AI Tool Verdicts logo"


@pytest.mark.parametrize(
    ("value", "status"),
    [("none", 404), ("/nonexistent/logo.png", 404), ("/etc/passwd", 404), ("x\x00.png", 404)],
)
def test_no_logo_or_a_bad_one_is_a_404_never_a_500(
    value: str, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_LOGO", value.replace("\x00", ""))
    reset_settings()
    assert _get()[0] == status
    if value == "none":
        assert sender().logo_url("https://n.example") is None


def test_a_logo_file_of_ones_own_and_a_logo_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "mine.gif"
    own.write_bytes(b"GIF89a-not-really")
    monkeypatch.setenv("NEWSLETTER_LOGO", str(own))
    monkeypatch.setenv("NEWSLETTER_LOGO_ALT", "  Our\tlogo ")
    reset_settings()
    status, body, kind = _get()
    assert (status, body, kind) == (200, b"GIF89a-not-really", "image/gif")
    assert sender().logo_alt == "Our logo"
    monkeypatch.setenv("NEWSLETTER_LOGO", "https://cdn.example/logo.png")
    reset_settings()
    assert sender().logo_url("https://n.example") == "https://cdn.example/logo.png"
    assert _get()[0] == 404


def test_postal_lines_drop_control_characters_and_blank_lines() -> None:
    assert postal_lines("Verdicts SAS\\n\r\n 1 rue\x00 Test \u2028\n75001 Paris\x1b") == (
        "Verdicts SAS",
        "1 rue Test",
        "75001 Paris",
    )
    assert postal_lines(" \n \t") == ()


def test_the_browsers_favicon_request_gets_the_logo_not_a_404() -> None:
    status, content, kind = _get("/favicon.ico")
    assert (status, kind) == (200, "image/png") and content == _get()[1]

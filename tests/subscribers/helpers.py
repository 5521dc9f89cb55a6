"""Shared test helpers: the outbox as a reader's inbox, the CLI, the web app."""

from __future__ import annotations

import email
import os
import re
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from newsletter.cli import app as cli_app
from newsletter.web.app import create_app

runner = CliRunner()


def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(cli_app, list(args), input=input)


def client() -> TestClient:
    return TestClient(create_app(), base_url="http://localhost:8000")


def outbox() -> list[EmailMessage]:
    folder = Path(os.environ["NEWSLETTER_OUTBOX_DIR"])
    if not folder.exists():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [
        email.message_from_bytes(p.read_bytes(), policy=default)  # type: ignore[misc]
        for p in files
    ]


def confirmation_link(message: EmailMessage) -> str:
    """The confirmation URL as a reader finds it: in the text part, and the same in the HTML."""
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    links = re.findall(r"https?://\S+/confirm/\S+", text)
    assert len(links) == 1, text
    assert f'href="{links[0]}"' in html
    return links[0]


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)

"""Scheduler test helpers: an inbox of real seed pages, editors, subscribers, the outbox."""

from __future__ import annotations

import email
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest

from newsletter.db import transaction
from newsletter.settings import reset_settings
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus
from tests.conftest import SEEDS

EDITOR = "editor@aitoolverdicts.example"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def inbox(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = isolated_env / "inbox"
    folder.mkdir()
    monkeypatch.setenv("NEWSLETTER_INBOX_DIR", str(folder))
    reset_settings()
    return folder


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set scheduler settings as an operator would, through the environment."""

    def apply(**values: object) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name.upper(), str(value))
        reset_settings()

    monkeypatch.setenv("NEWSLETTER_EDITOR_EMAILS", EDITOR)
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://news.example")
    reset_settings()
    return apply


def drop_seeds(inbox: Path, count: int = 2) -> list[str]:
    """Put real seed pages in the inbox (copied at test time, never into the repository)."""
    names = []
    for seed in sorted(SEEDS.glob("*.txt"))[:count]:
        shutil.copy(seed, inbox / seed.name)
        names.append(seed.name)
    return names


def add_subscribers(count: int) -> list[str]:
    addresses = [f"reader{i}@example.org" for i in range(count)]
    with transaction() as session:
        for address in addresses:
            session.add(
                Subscriber(
                    email=address,
                    email_hash=address_hash(address),
                    name=f"Reader {address[6:-12]}",
                    status=SubscriberStatus.ACTIVE,
                    confirmed_at=utc(2026, 1, 1),
                )
            )
    return addresses


def outbox_messages(outbox: Path) -> list[Message]:
    if not outbox.is_dir():
        return []
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))]


def recipients(outbox: Path) -> list[str]:
    return sorted(str(m["To"]).split("<")[-1].rstrip(">") for m in outbox_messages(outbox))


def body_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    return ""

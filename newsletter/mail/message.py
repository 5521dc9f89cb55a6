"""What a transport sends: the same message whichever transport carries it, alone or in batches."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from newsletter import paths

_NOT_IN_A_HEADER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def header_phrase(name: str) -> str:
    """A display name fit for a To: header: one line, no control characters.

    Names come from strangers (the subscribe form, imported files). A CR/LF in one would start
    a header of its own, and Python's email package refuses such a value outright, which would
    stop a whole batch; SendGrid gets the same cleaned name.
    """
    if name.isprintable():  # the common case, checked in C
        return name
    return " ".join(_NOT_IN_A_HEADER.sub(" ", name).split())


@dataclass(frozen=True)
class OutgoingMessage:
    """One fully personalised email (placeholders already filled)."""

    to_email: str
    subject: str
    text: str
    html: str
    to_name: str = ""
    # Extra headers, e.g. List-Unsubscribe / List-Unsubscribe-Post (RFC 8058) and List-Id.
    headers: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    # Identify the delivery in provider events (SendGrid custom_args: strings only).
    custom_args: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "to_name", header_phrase(self.to_name))


@dataclass(frozen=True)
class SendResult:
    ok: bool
    message_id: str | None = None
    error: str | None = None


class MailContent(Protocol):
    """An issue rendered once, `__NL_TOKEN__` standing for each recipient's delivery token.

    `newsletter.issues.render.RenderedIssue` is one; the tests have their own
    (tests/support/content.py).
    """

    @property
    def subject(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...


class Recipient(NamedTuple):
    """One delivery of a batch: who, and the token every per-recipient URL is built from.

    A tuple: a send makes one per recipient, and a frozen dataclass costs several times more.
    """

    delivery_id: int
    email: str
    name: str
    token: str


class BatchOutcome(enum.StrEnum):
    ACCEPTED = "accepted"  # 202: every recipient of the request is handed off
    REJECTED = "rejected"  # 400: something in the request is invalid (maybe one recipient)
    TOO_LARGE = "too_large"  # 413: split and try again
    RATE_LIMITED = "rate_limited"  # 429: wait as told, then retry the same recipients
    UNAVAILABLE = "unavailable"  # 5xx / refused: nothing was accepted, retry until a deadline
    UNAUTHORIZED = "unauthorized"  # 401 / 403: no use retrying anything until an operator acts
    UNKNOWN = "unknown"  # timeout or dropped connection after the request went out


@dataclass(frozen=True)
class BatchResult:
    outcome: BatchOutcome
    # SendGrid answers one X-Message-Id per request; the outbox names every message.
    message_id: str | None = None
    message_ids: dict[int, str] = field(default_factory=dict)
    error: str | None = None
    retry_after: float | None = None
    # Position in the request -> the provider's message, when the provider names the recipient.
    recipient_errors: dict[int, str] = field(default_factory=dict)


def unsubscribe_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + paths.unsubscribe(token)


def list_id_header(name: str, list_id: str) -> str:
    # RFC 2919: an optional phrase, then the list identifier in angle brackets.
    return f"{name} <{list_id}>"


def unsubscribe_headers(base_url: str, token: str) -> dict[str, str]:
    """RFC 2369 + RFC 8058: mailbox providers show an unsubscribe button and POST to it."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(base_url, token)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }

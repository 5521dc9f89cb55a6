"""What a transport sends: the same message whichever transport carries it."""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class SendResult:
    ok: bool
    message_id: str | None = None
    error: str | None = None

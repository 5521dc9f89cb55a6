"""The transport interface and the choice between implementations (NEWSLETTER_TRANSPORT)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from newsletter.mail.message import (
    BatchResult,
    MailContent,
    OutgoingMessage,
    Recipient,
    SendResult,
)
from newsletter.settings import Settings, get_settings

# SendGrid's documented ceiling on personalizations per request.
MAX_BATCH = 1000


class Transport(Protocol):
    name: str

    def send_one(self, message: OutgoingMessage) -> SendResult:
        """Send a single message now (confirmations, test sends, notices)."""
        ...

    def send_batch(
        self,
        content: MailContent,
        recipients: Sequence[Recipient],
        *,
        issue_id: int,
        categories: Sequence[str] = (),
    ) -> BatchResult:
        """Send one issue to up to MAX_BATCH recipients, each with their own token filled in."""
        ...


def get_transport(settings: Settings | None = None) -> Transport:
    settings = settings or get_settings()
    if settings.transport == "sendgrid":
        from newsletter.mail.sendgrid_transport import SendGridTransport

        return SendGridTransport(settings)
    from newsletter.mail.outbox import OutboxTransport

    return OutboxTransport(settings.newsletter_outbox_dir, settings)

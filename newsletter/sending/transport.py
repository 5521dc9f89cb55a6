"""The transport interface and the choice between implementations (NEWSLETTER_TRANSPORT)."""

from __future__ import annotations

from typing import Protocol

from newsletter.sending.message import OutgoingMessage, SendResult
from newsletter.settings import Settings, get_settings


class Transport(Protocol):
    name: str

    def send_one(self, message: OutgoingMessage) -> SendResult:
        """Send a single message now (confirmations, test sends, notices)."""
        ...


def get_transport(settings: Settings | None = None) -> Transport:
    settings = settings or get_settings()
    if settings.transport == "sendgrid":
        from newsletter.sending.sendgrid_transport import SendGridTransport

        return SendGridTransport(settings)
    from newsletter.sending.outbox import OutboxTransport

    return OutboxTransport(settings.newsletter_outbox_dir, settings)

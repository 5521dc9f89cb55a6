"""The outbox transport: one RFC 5322 .eml file per message, for demos and development."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTPUTF8, default
from email.utils import formataddr, formatdate, make_msgid, quote
from pathlib import Path

from newsletter.mail.message import (
    BatchOutcome,
    BatchResult,
    MailContent,
    OutgoingMessage,
    Recipient,
    SendResult,
    list_id_header,
    unsubscribe_headers,
)
from newsletter.security.delivery_tokens import fill
from newsletter.settings import Settings, get_settings


def build_mime(message: OutgoingMessage, settings: Settings) -> EmailMessage:
    """multipart/alternative: text first, HTML last (the part a client prefers comes last)."""
    # An address with non-ASCII before the @ (which the list accepts) can only be written as
    # an SMTPUTF8 message (RFC 6532); formataddr refused it, a 500 on the sign-up form.
    international = not message.to_email.isascii()
    mime = EmailMessage(policy=SMTPUTF8) if international else EmailMessage(policy=default)
    # EmailMessage refuses CR/LF in header values, so a hostile subject or name cannot inject.
    mime["From"] = formataddr((settings.newsletter_from_name, settings.newsletter_from_email))
    if international:
        # Python's Address refuses such a local part; the UTF-8 policy writes the header as is.
        name = f'"{quote(message.to_name)}" ' if message.to_name else ""
        mime["To"] = f"{name}<{message.to_email}>"
    else:
        mime["To"] = formataddr((message.to_name, message.to_email))
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(localtime=False)
    domain = settings.newsletter_from_email.rpartition("@")[2] or "localhost"
    mime["Message-ID"] = make_msgid(domain=domain)
    for name, value in message.headers.items():
        mime[name] = value
    for key, value in message.custom_args.items():
        mime[f"X-Newsletter-{key.replace('_', '-').title()}"] = value
    mime.set_content(message.text, charset="utf-8")
    mime.add_alternative(message.html, subtype="html", charset="utf-8")
    return mime


def as_bytes(mime: EmailMessage) -> bytes:
    """The message as sent. Headers are folded at RFC 5322's 998, not Python's 78: at 78 a
    header with one long word (List-Unsubscribe's URL) is written as RFC 2047 encoded words,
    which the RFC 2369 and 8058 parsers of mail clients do not decode. The body was encoded
    when it was set, with quoted-printable's own 76-character lines (RFC 2045)."""
    return mime.as_bytes(policy=mime.policy.clone(max_line_length=998))


class OutboxTransport:
    name = "outbox"

    def __init__(self, directory: Path, settings: Settings | None = None) -> None:
        self.directory = Path(directory)
        self.settings = settings or get_settings()

    def send_one(self, message: OutgoingMessage) -> SendResult:
        mime = build_mime(message, self.settings)
        self.directory.mkdir(parents=True, exist_ok=True)
        message_id = str(mime["Message-ID"]).strip("<>")
        final = self.directory / f"{uuid.uuid4().hex}.eml"
        # Write then rename: a reader of the outbox never sees half a message.
        partial = final.with_suffix(".eml.part")
        partial.write_bytes(as_bytes(mime))
        os.replace(partial, final)
        return SendResult(ok=True, message_id=message_id)

    def send_batch(
        self,
        content: MailContent,
        recipients: Sequence[Recipient],
        *,
        issue_id: int,
        categories: Sequence[str] = (),
    ) -> BatchResult:
        """The same message SendGrid would build, filled in locally: one file per recipient."""
        message_ids: dict[int, str] = {}
        for recipient in recipients:
            result = self.send_one(
                personal_message(content, recipient, issue_id, categories, self.settings)
            )
            if result.message_id is not None:
                message_ids[recipient.delivery_id] = result.message_id
        return BatchResult(outcome=BatchOutcome.ACCEPTED, message_ids=message_ids)


def personal_message(
    content: MailContent,
    recipient: Recipient,
    issue_id: int,
    categories: Sequence[str],
    settings: Settings,
) -> OutgoingMessage:
    headers = {
        "List-Id": list_id_header(settings.newsletter_from_name, settings.newsletter_list_id),
        **unsubscribe_headers(settings.newsletter_base_url, recipient.token),
    }
    return OutgoingMessage(
        to_email=recipient.email,
        to_name=recipient.name,
        subject=fill(content.subject, recipient.token),
        text=fill(content.text, recipient.token),
        html=fill(content.html, recipient.token),
        headers=headers,
        categories=tuple(categories),
        custom_args={"delivery_id": str(recipient.delivery_id), "issue_id": str(issue_id)},
    )

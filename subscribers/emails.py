"""The confirmation mail (double opt-in), sent through the configured transport."""

from __future__ import annotations

from newsletter.sending.message import OutgoingMessage, SendResult
from newsletter.sending.transport import get_transport
from newsletter.settings import get_settings
from newsletter.templating import web_environment
from subscribers.service import CONFIRM_TTL_SECONDS, ConfirmationRequest


def confirm_url(token: str) -> str:
    return f"{get_settings().newsletter_base_url.rstrip('/')}/confirm/{token}"


def confirmation_message(request: ConfirmationRequest) -> OutgoingMessage:
    """The mail that asks for consent, with no name in it: whoever filled the form chose the
    name, not the owner of the address, and a name like "Win a prize at https://…" in the
    greeting or the To: line would make our mail carry a stranger's message to anyone."""
    settings = get_settings()
    env = web_environment()
    context = {
        "url": confirm_url(request.token),
        "list_name": settings.newsletter_from_name,
        "days": CONFIRM_TTL_SECONDS // 86400,
    }
    # A plain, well-formed HTML part is enough for one button; MJML is for the issue.
    return OutgoingMessage(
        to_email=request.email,
        subject=f"Confirm your subscription to {settings.newsletter_from_name}",
        text=env.get_template("email/confirm.txt").render(context),
        html=env.get_template("email/confirm.html").render(context),
        categories=("confirmation",),
    )


def send_confirmation(request: ConfirmationRequest) -> SendResult:
    return get_transport().send_one(confirmation_message(request))

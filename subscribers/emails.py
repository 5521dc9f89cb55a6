"""The mails a subscriber gets outside the weekly issue, sent through the configured transport:
the confirmation (double opt-in) and the welcome after confirming."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from newsletter import paths
from newsletter.mail.message import (
    OutgoingMessage,
    SendResult,
    list_id_header,
    unsubscribe_headers,
)
from newsletter.mail.transport import get_transport
from newsletter.rendering.mjml import compile_mjml
from newsletter.sender import sender
from newsletter.settings import get_settings
from newsletter.templating import web_environment
from subscribers.service import (
    CONFIRM_TTL_SECONDS,
    ConfirmationRequest,
    StillReadingRequest,
    WelcomeRequest,
)

log = logging.getLogger(__name__)
R = TypeVar("R", WelcomeRequest, StillReadingRequest)
DAYS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


def confirm_url(token: str) -> str:
    return paths.absolute(paths.confirm(token))


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


def welcome_message(request: WelcomeRequest) -> OutgoingMessage:
    """What to expect, the latest issue, the preferences. No name in the greeting: the name
    was typed by whoever filled in the form, and the mail must not repeat a stranger's words."""
    settings = get_settings()
    base = settings.newsletter_base_url.rstrip("/")
    context = {
        "list_name": settings.newsletter_from_name,
        "sender": sender(settings),
        "base_url": base,
        "day": DAYS[settings.newsletter_schedule_day],
        "latest": base + paths.web_version(request.latest_week) if request.latest_week else None,
        "archive": base + paths.ARCHIVE,
        "preferences": base + paths.preferences(request.token),
        "unsubscribe": base + paths.unsubscribe(request.token),
    }
    env = web_environment()
    return OutgoingMessage(
        to_email=request.email,
        subject=f"Welcome to {settings.newsletter_from_name}: here is what to expect",
        text=env.get_template("email/welcome.txt").render(context),
        html=compile_mjml(env.get_template("email/welcome.mjml.j2").render(context)),
        headers={
            "List-Id": list_id_header(settings.newsletter_from_name, settings.newsletter_list_id),
            **unsubscribe_headers(base, request.token),
        },
        categories=("welcome",),
        custom_args={"subscriber_id": str(request.subscriber_id)},
    )


def send_welcome(request: WelcomeRequest) -> SendResult:
    """Never raises: a welcome that cannot go out must not undo the confirmation."""
    return _send_quietly(welcome_message, request, "welcome")


def _send_quietly(build: Callable[[R], OutgoingMessage], request: R, what: str) -> SendResult:
    """Build and send one subscriber's mail, logging (never raising) what went wrong: the
    caller's own work is committed already and must not be undone by a mail."""
    try:
        result = get_transport().send_one(build(request))
    except Exception as exc:  # a transport that cannot be built (settings) or a bug in one
        log.exception("%s mail to subscriber %s not sent", what, request.subscriber_id)
        return SendResult(ok=False, error=str(exc))
    if not result.ok:
        log.error("%s mail to subscriber %s refused: %s", what, request.subscriber_id, result.error)
    return result


def still_reading_message(request: StillReadingRequest) -> OutgoingMessage:
    """Once, to someone who has read nothing in NEWSLETTER_REENGAGE_AFTER_ISSUES issues: say
    yes, or be paused after NEWSLETTER_REENGAGE_ANSWER_DAYS. No name in it, as in every mail
    outside the issue."""
    settings = get_settings()
    base = settings.newsletter_base_url.rstrip("/")
    context = {
        "list_name": settings.newsletter_from_name,
        "sender": sender(settings),
        "issues": settings.newsletter_reengage_after_issues,
        "days": round(settings.newsletter_reengage_answer_days),
        "answer": base + paths.still_reading(request.token),
        "preferences": base + paths.preferences(request.token),
        "unsubscribe": base + paths.unsubscribe(request.token),
    }
    env = web_environment()
    return OutgoingMessage(
        to_email=request.email,
        subject=f"Still want {settings.newsletter_from_name}?",
        text=env.get_template("email/still_reading.txt").render(context),
        html=env.get_template("email/still_reading.html").render(context),
        headers={
            "List-Id": list_id_header(settings.newsletter_from_name, settings.newsletter_list_id),
            **unsubscribe_headers(base, request.token),
        },
        categories=("still-reading",),
        custom_args={"subscriber_id": str(request.subscriber_id)},
    )


def send_still_reading(request: StillReadingRequest) -> SendResult:
    """Never raises: the caller forgets the asking when this did not go out."""
    return _send_quietly(still_reading_message, request, "still-reading")

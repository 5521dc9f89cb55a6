"""Public subscriber pages: subscribe, confirm, unsubscribe (RFC 8058), preferences.

Nothing here changes state on a GET: mail scanners and link previewers fetch every URL in a
message, so confirming, unsubscribing and erasing each take a POST (a button on the page, or
the mail client's one-click POST). On the token pages the signed token in the URL is the
credential; there is no session to forge a request against, so they carry no CSRF field.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from newsletter import paths
from newsletter.db import transaction
from newsletter.errors import Refused
from newsletter.issues.service import latest_published_week
from newsletter.matchups import service as matchups
from newsletter.people import erasure
from newsletter.people.export import personal_data
from newsletter.people.links import resolve_token
from newsletter.security.delivery_tokens import is_sample_token, read_delivery_token
from newsletter.tracking import service as tracking_service
from newsletter.web.pages import flash, redirect, render, sample_link_page
from newsletter.web.ratelimit import AttemptLimiter
from subscribers import emails, service
from subscribers.addresses import InvalidAddress
from subscribers.models import SubscriberStatus

router = APIRouter(tags=["subscribers"])

T = "web/subscribers/"


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


# Each subscribe request mails an address the requester need not own, so a script must not turn
# the form into a mail cannon: every attempt counts against the client address (30 an hour) and
# the address asked for (5 an hour), across every web process (the counts are in the database).
# The login limiter's sliding window does exactly this counting.
def sign_up_limiter() -> AttemptLimiter:
    return AttemptLimiter(window=3600, per_address=30, per_account=5, scope="sign-up")


# No address is longer (RFC 5321 allows 254 octets); a longer one is refused before it is
# counted, echoed or kept anywhere.
MAX_ADDRESS_LENGTH = 320
MAX_NAME_LENGTH = 200


def _over_limit(request: Request, email: str) -> int:
    """Seconds to wait (0 if allowed); counts this attempt."""
    limiter: AttemptLimiter = request.app.state.subscribe_limiter
    ip = _ip(request) or "unknown"
    return limiter.attempt(ip, email)


def _link_invalid(request: Request, what: str) -> HTMLResponse:
    return render(request, T + "link_invalid.html", {"what": what}, status_code=404)


# --- subscribing ----------------------------------------------------------------------------


def _topic_choices() -> list[str]:
    with transaction() as session:
        return matchups.categories(session)


def _subscribe_page(
    request: Request, email: str, name: str, topics: list[str], error: str | None, status: int
) -> HTMLResponse:
    context = {
        "email": email,
        "name": name,
        "error": error,
        "topic_choices": _topic_choices(),
        "chosen_topics": topics,
    }
    return render(request, T + "subscribe.html", context, status_code=status)


@router.get(paths.SUBSCRIBE, response_class=HTMLResponse)
def subscribe_form(request: Request) -> HTMLResponse:
    return _subscribe_page(request, "", "", [], None, 200)


@router.post(paths.SUBSCRIBE, response_class=HTMLResponse)
def subscribe(
    request: Request,
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    topic: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    name = name[:MAX_NAME_LENGTH]
    ticked = topic or []
    if len(email) > MAX_ADDRESS_LENGTH:
        error = f"That address is longer than {MAX_ADDRESS_LENGTH} characters: no address is."
        return _subscribe_page(request, "", name, ticked, error, 400)
    if wait := _over_limit(request, email):
        error = "Too many sign-up attempts from here. Please try again later."
        response = _subscribe_page(request, email, name, ticked, error, 429)
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        with transaction() as session:
            topics = matchups.categories_named(session, ticked)
            confirmation = service.request_confirmation(
                session, email, name, source="web", topics=topics
            )
    except InvalidAddress as exc:
        return _subscribe_page(request, email, name, ticked, f"{email or 'That'}: {exc}", 400)
    except Refused as exc:
        return _subscribe_page(request, email, name, [], str(exc), 400)
    if confirmation is not None and not emails.send_confirmation(confirmation).ok:
        error = "The confirmation mail could not be sent just now. Please try again later."
        return _subscribe_page(request, email, name, ticked, error, 503)
    # The same answer whether or not the address was already on the list.
    return render(request, T + "check_inbox.html", {"email": email.strip()})


class SubscribeRequest(BaseModel):
    email: str = Field(max_length=MAX_ADDRESS_LENGTH)
    name: str = ""
    # Category names (GET /api/topics lists them); none means every topic.
    topics: list[str] = Field(default_factory=list, max_length=50)


@router.post("/api/subscribe", status_code=202)
def subscribe_api(request: Request, body: SubscribeRequest) -> JSONResponse:
    """Double opt-in from another site's form: a confirmation mail goes out (202)."""
    if wait := _over_limit(request, body.email):
        return JSONResponse(
            {"error": "too many sign-up attempts; try again later"},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    try:
        with transaction() as session:
            topics = matchups.categories_named(session, body.topics)
            confirmation = service.request_confirmation(
                session, body.email, body.name[:MAX_NAME_LENGTH], source="api", topics=topics
            )
    except InvalidAddress as exc:
        return JSONResponse({"error": f"invalid email {body.email!r}: {exc}"}, status_code=422)
    except Refused as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    if confirmation is not None and not emails.send_confirmation(confirmation).ok:
        return JSONResponse({"error": "the confirmation mail could not be sent"}, status_code=503)
    return JSONResponse({"status": "confirmation_sent"}, status_code=202)


@router.get(paths.CONFIRM_PATTERN, response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    with transaction() as session:
        state, subscriber = service.confirmation_state(session, token)
        email = subscriber.email if subscriber else ""
    if state == service.ConfirmState.INVALID:
        return _link_invalid(request, "confirmation")
    if state == service.ConfirmState.DONE:
        return render(request, T + "confirmed.html", {"email": email, "prefs": None})
    return render(request, T + "confirm.html", {"email": email, "token": token})


@router.post(paths.CONFIRM_PATTERN, response_class=HTMLResponse)
def confirm(request: Request, token: str) -> HTMLResponse:
    with transaction() as session:
        state, subscriber = service.confirm(session, token, ip=_ip(request))
        if state != service.ConfirmState.DONE or subscriber is None:
            return _link_invalid(request, "confirmation")
        context = {
            "email": subscriber.email,
            "prefs": paths.preferences(service.subscriber_token(subscriber.public_id)),
        }
        welcome = service.claim_welcome(session, subscriber, latest_published_week(session))
    if welcome is not None and not emails.send_welcome(welcome).ok:
        # The confirmation stands; the record says no welcome went out.
        with transaction() as session:
            service.welcome_not_sent(session, welcome)
    return render(request, T + "confirmed.html", context)


# --- leaving: RFC 8058 one-click and the visible link -----------------------------------------


@router.get(paths.UNSUBSCRIBE_PATTERN, response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    if is_sample_token(token):
        return sample_link_page(request, token, "unsubscribe")
    with transaction() as session:
        subscriber = resolve_token(session, token)
        if subscriber is None:
            return _link_invalid(request, "unsubscribe")
        context = {"email": subscriber.email, "token": token, "status": subscriber.status.value}
    return render(request, T + "unsubscribe.html", context)


@router.post(paths.UNSUBSCRIBE_PATTERN, response_class=HTMLResponse)
def unsubscribe(request: Request, token: str) -> HTMLResponse:
    """RFC 8058: a POST with body `List-Unsubscribe=One-Click` unsubscribes at once, with no
    further page or login; the button on the GET page posts the same body."""
    if is_sample_token(token):
        return sample_link_page(request, token, "unsubscribe")
    with transaction() as session:
        subscriber = resolve_token(session, token)
        if subscriber is None:
            return _link_invalid(request, "unsubscribe")
        link = read_delivery_token(token)
        if service.unsubscribe(session, subscriber.id) and link is not None:
            # The editors see which issue lost a reader.
            tracking_service.record_unsubscribe(session, link.delivery_id)
        context = {"email": subscriber.email, "prefs": paths.preferences(token)}
    return render(request, T + "unsubscribed.html", context)


@router.get("/api/topics")
def topics_api() -> JSONResponse:
    """The topics a reader can choose: the categories the site has published matchups in."""
    return JSONResponse({"topics": _topic_choices()})


# --- preferences ----------------------------------------------------------------------------


@router.get(paths.PREFERENCES_PATTERN, response_class=HTMLResponse)
def preferences(request: Request, token: str) -> HTMLResponse:
    if is_sample_token(token):
        return sample_link_page(request, token, "preferences")
    with transaction() as session:
        subscriber = resolve_token(session, token)
        if subscriber is None:
            return _link_invalid(request, "preferences")
        chosen = service.topics_of(session, subscriber.id)
        context = {
            "subscriber": service.to_json(subscriber),
            "token": token,
            "left": subscriber.status in service.LEFT
            or subscriber.status == SubscriberStatus.PENDING,
            "chosen_topics": chosen,
            # A topic they chose that the site no longer publishes stays listed, so it can be
            # unticked.
            "topic_choices": sorted(set(matchups.categories(session)) | set(chosen)),
        }
    return render(request, T + "preferences.html", context)


@router.post(paths.PREFERENCES_PATTERN + "/topics")
def choose_topics(
    request: Request, token: str, topic: Annotated[list[str] | None, Form()] = None
) -> Response:
    """The preferences page's topic boxes: what is ticked replaces what was chosen; nothing
    ticked means every topic."""
    if is_sample_token(token):
        return sample_link_page(request, token, "preferences")
    with transaction() as session:
        subscriber = resolve_token(session, token)
        if subscriber is None:
            return _link_invalid(request, "preferences")
        try:
            names = matchups.categories_named(
                session, topic or [], also=service.topics_of(session, subscriber.id)
            )
            chosen = service.set_topics(session, subscriber.id, names)
        except Refused as exc:
            context = {"title": "Not saved", "detail": str(exc)}
            return render(request, "web/error.html", context, status_code=400)
    if chosen:
        flash(request, "Saved: you get the matchups in " + ", ".join(chosen) + ".")
    else:
        flash(request, "Saved: you get every topic.")
    return redirect(paths.preferences(token) + "#topics")


def _act(request: Request, token: str, action: str) -> Response:
    if is_sample_token(token):
        return sample_link_page(request, token, "preferences")
    with transaction() as session:
        subscriber = resolve_token(session, token)
        if subscriber is None:
            return _link_invalid(request, "preferences")
        if action == "pause":
            service.set_paused(session, subscriber.id, True)
            message = "Paused: no issues until you resume."
        elif action == "resume":
            service.set_paused(session, subscriber.id, False)
            message = "Resumed: the next issue will reach you."
        elif action == "resubscribe":
            service.resubscribe(session, subscriber.id, ip=_ip(request))
            message = "Welcome back: you are subscribed again."
        elif action == "still-reading":
            if subscriber.status is not SubscriberStatus.ACTIVE:
                message = "You are not on the list: there is nothing to keep."
            else:
                service.still_reading(session, subscriber.id)
                if service.get(session, subscriber.id) is not None and service.is_paused(
                    session, subscriber.id
                ):
                    message = (
                        "Thanks: you stay on the list. Your subscription stays paused, as you "
                        "chose: resume it below when you want issues again."
                    )
                else:
                    message = "Thanks: you stay on the list, and the next issue will reach you."
        elif action == "tracking-off":
            service.set_tracking_opt_out(session, subscriber.id, True)
            message = "Tracking is off: your issues carry no open pixel or tracked links."
        else:
            service.set_tracking_opt_out(session, subscriber.id, False)
            message = "Tracking is on."
    flash(request, message)
    return redirect(paths.preferences(token))


@router.get(paths.STILL_READING_PATTERN, response_class=HTMLResponse)
def still_reading_page(request: Request, token: str) -> HTMLResponse:
    """The "still want this?" mail's button: a page with the button that answers (a link
    scanner's GET answers nothing)."""
    if is_sample_token(token):
        return sample_link_page(request, token, "preferences")
    with transaction() as session:
        subscriber = resolve_token(session, token)
        if subscriber is None:
            return _link_invalid(request, "preferences")
        context = {
            "email": subscriber.email,
            "prefs": paths.preferences(token),
            "action": paths.still_reading(token),
            "left": subscriber.status is not SubscriberStatus.ACTIVE,
            "paused_for_silence": subscriber.reengage_paused_at is not None,
        }
    return render(request, T + "still_reading.html", context)


@router.post(paths.STILL_READING_PATTERN)
def still_reading(request: Request, token: str) -> Response:
    return _act(request, token, "still-reading")


@router.post(paths.PREFERENCES_PATTERN + "/pause")
def pause(request: Request, token: str) -> Response:
    return _act(request, token, "pause")


@router.post(paths.PREFERENCES_PATTERN + "/resume")
def resume(request: Request, token: str) -> Response:
    return _act(request, token, "resume")


@router.post(paths.PREFERENCES_PATTERN + "/resubscribe")
def resubscribe(request: Request, token: str) -> Response:
    return _act(request, token, "resubscribe")


@router.post(paths.PREFERENCES_PATTERN + "/tracking-off")
def tracking_off(request: Request, token: str) -> Response:
    return _act(request, token, "tracking-off")


@router.post(paths.PREFERENCES_PATTERN + "/tracking-on")
def tracking_on(request: Request, token: str) -> Response:
    return _act(request, token, "tracking-on")


@router.get(paths.PREFERENCES_PATTERN + "/export.json", response_model=None)
def export_my_data(request: Request, token: str) -> Response:
    if is_sample_token(token):
        return sample_link_page(request, token, "preferences")
    with transaction() as session:
        subscriber = resolve_token(session, token)
        if subscriber is None:
            return _link_invalid(request, "preferences")
        data = personal_data(session, subscriber)
    return JSONResponse(
        data,
        headers={
            "Content-Disposition": 'attachment; filename="my-newsletter-data.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get(paths.PREFERENCES_PATTERN + "/erase", response_class=HTMLResponse)
def erase_page(request: Request, token: str) -> HTMLResponse:
    if is_sample_token(token):
        return sample_link_page(request, token, "preferences")
    with transaction() as session:
        subscriber = resolve_token(session, token)
        if subscriber is None:
            return _link_invalid(request, "preferences")
        context = {"email": subscriber.email, "token": token}
    return render(request, T + "erase.html", context)


@router.post(paths.PREFERENCES_PATTERN + "/erase", response_class=HTMLResponse)
def erase(request: Request, token: str) -> HTMLResponse:
    if is_sample_token(token):
        return sample_link_page(request, token, "preferences")
    with transaction() as session:
        subscriber = resolve_token(session, token)
        if subscriber is None:
            return _link_invalid(request, "preferences")
        erasure.erase(session, subscriber.id)
    return render(request, T + "erased.html", {})

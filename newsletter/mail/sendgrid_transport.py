"""SendGrid's v3 Mail Send API: the only module that imports `sendgrid`.

One request carries up to 1,000 personalizations; the issue's HTML and text travel once and
SendGrid fills each recipient's token in server-side (`substitutions`). What SendGrid answers is
mapped onto a `BatchOutcome`; deciding what that means for the ledger is the worker's job.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import time
import urllib.error
from collections.abc import Mapping, Sequence
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from newsletter.mail.message import (
    BatchOutcome,
    BatchResult,
    MailContent,
    OutgoingMessage,
    Recipient,
    SendResult,
    list_id_header,
    unsubscribe_headers,
    unsubscribe_url,
)
from newsletter.security.delivery_tokens import TOKEN_PLACEHOLDER
from newsletter.sender import require_postal_address
from newsletter.settings import Settings, get_settings

# SendGrid refuses a request whose custom_args exceed 10,000 bytes in total.
CUSTOM_ARGS_MAX_BYTES = 10_000
# "personalizations.12.to.0.email": the position of the recipient SendGrid objects to.
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)\b")
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]+")
# The body is JSON we serialise ourselves; python_http_client sends a string as-is (instead of
# encoding it once more) when the content type is not exactly "application/json".
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class _Payload(bytes):
    """A request body that prints as its size. python_http_client formats every request's body
    and headers into debug lines whether or not debug logging is on: the repr of a batch's
    400 KB, a tenth of the sender's CPU, and with logging at DEBUG every recipient's address
    and token in the log. The bytes sent are the same."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self):,} bytes of JSON>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)


class _Body(str):
    """The serialised JSON, encoded by python_http_client into a `_Payload`."""

    __slots__ = ()

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return _Payload(str.encode(self, encoding, errors))


def _quiet_client_logger() -> None:
    """python_http_client logs each request's headers at DEBUG, the API key's Authorization
    among them: kept at INFO whatever the root logger's level (the scheduler's --log-level
    DEBUG, say)."""
    logger = logging.getLogger("python_http_client.client")
    if logger.level < logging.INFO:
        logger.setLevel(logging.INFO)


def _envelope(
    *,
    subject: str,
    text: str,
    html: str,
    headers: Mapping[str, str],
    categories: Sequence[str],
    settings: Settings,
) -> dict[str, Any]:
    """Everything in a request but its personalizations (for a batch: the same every batch)."""
    payload: dict[str, Any] = {
        "from": {"email": settings.newsletter_from_email, "name": settings.newsletter_from_name},
        "subject": subject,
        # SendGrid wants text/plain before text/html: the order of multipart/alternative.
        "content": [
            {"type": "text/plain", "value": text},
            {"type": "text/html", "value": html},
        ],
        # Opens and clicks are tracked by the service itself; SendGrid's own rewriting would
        # wrap the already-tracked links a second time (and a confirmation link in a redirect).
        "tracking_settings": {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
        },
        "mail_settings": {"sandbox_mode": {"enable": settings.sendgrid_sandbox_mode}},
    }
    if headers:
        payload["headers"] = dict(headers)
    if categories:
        payload["categories"] = list(dict.fromkeys(categories))[:10]
    return payload


def _check_count(recipients: Sequence[Recipient]) -> None:
    if not 1 <= len(recipients) <= 1000:
        raise ValueError(f"a SendGrid request takes 1 to 1,000 recipients, not {len(recipients)}")


def mail_body(
    content: MailContent,
    recipients: Sequence[Recipient],
    *,
    issue_id: int,
    categories: Sequence[str],
    settings: Settings,
) -> str:
    """The JSON body of POST /v3/mail/send for one issue and up to 1,000 recipients, written
    directly (the only builder of a batch request: the tests read what the send posts).

    Building 1,000 nested dicts and encoding them cost more than the rest of a batch; here
    each personalization is one string. Addresses and names are JSON-escaped; the token is
    URL-safe by construction (base64url and `.`), so it needs no escaping, nor do the digits.
    Each personalization carries the recipient's token as a substitution (SendGrid fills the
    placeholder server-side; values must be strings, or it answers 400), the delivery and
    issue ids as custom args (echoed back in every webhook event), and the unsubscribe headers
    (substitutions do not reach headers).
    """
    _check_count(recipients)
    if not _URL_SAFE.fullmatch("".join(r.token for r in recipients)):
        raise ValueError("a delivery token must be URL-safe to be written into the request")
    envelope = _envelope(
        subject=content.subject,
        text=content.text,
        html=content.html,
        headers={
            "List-Id": list_id_header(settings.newsletter_from_name, settings.newsletter_list_id)
        },
        categories=categories,
        settings=settings,
    )
    head = json.dumps(envelope)
    # `<base>/u/` as a JSON string without its closing quote: the token and `>"` follow.
    unsubscribe = json.dumps(f"<{unsubscribe_url(settings.newsletter_base_url, '')}")[:-1]
    issue = str(issue_id)
    one_click = json.dumps(unsubscribe_headers("", "")["List-Unsubscribe-Post"])
    dumps = json.dumps
    parts = []
    for r in recipients:
        to = (
            f'{{"email":{dumps(r.email)},"name":{dumps(r.name)}}}'
            if r.name
            else f'{{"email":{dumps(r.email)}}}'
        )
        parts.append(
            f'{{"to":[{to}],"substitutions":{{"{TOKEN_PLACEHOLDER}":"{r.token}"}},'
            f'"custom_args":{{"delivery_id":"{int(r.delivery_id)}","issue_id":"{issue}"}},'
            f'"headers":{{"List-Unsubscribe":{unsubscribe}{r.token}>",'
            f'"List-Unsubscribe-Post":{one_click}}}}}'
        )
    return f'{head[:-1]}, "personalizations": [{",".join(parts)}]}}'


def single_body(message: OutgoingMessage, settings: Settings) -> str:
    """A one-recipient message whose values are already filled in (confirmations, test
    copies, notices), with the same envelope as a batch."""
    to: dict[str, str] = {"email": message.to_email}
    if message.to_name:
        to["name"] = message.to_name
    personalization: dict[str, Any] = {"to": [to]}
    if message.custom_args:
        custom_args = {k: str(v) for k, v in message.custom_args.items()}
        size = len(json.dumps(custom_args, separators=(",", ":")).encode())
        if size > CUSTOM_ARGS_MAX_BYTES:
            raise ValueError(
                f"custom_args of {size:,} bytes: SendGrid takes at most "
                f"{CUSTOM_ARGS_MAX_BYTES:,} in a request"
            )
        personalization["custom_args"] = custom_args
    payload = _envelope(
        subject=message.subject,
        text=message.text,
        html=message.html,
        headers=message.headers or {},
        categories=message.categories,
        settings=settings,
    )
    payload["personalizations"] = [personalization]
    return json.dumps(payload)


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    return str(value) if value is not None else None


def _error_messages(body: bytes | str | None) -> tuple[str, dict[int, str]]:
    """SendGrid's error body: a readable summary and the recipients it names, by position."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(body or "")
        errors = parsed.get("errors") or []
    except (ValueError, AttributeError):
        return (body or "").strip()[:500], {}
    messages: list[str] = []
    by_position: dict[int, str] = {}
    for error in errors:
        if not isinstance(error, Mapping):
            continue
        message = str(error.get("message") or "error")
        field = error.get("field")
        messages.append(f"{field}: {message}" if field else message)
        match = _PERSONALIZATION_FIELD.match(str(field or ""))
        if match:
            by_position[int(match.group(1))] = message
    return "; ".join(messages)[:2000] or "bad request", by_position


def _retry_after(headers: Any, now: float) -> float | None:
    """Seconds to wait after a 429: X-RateLimit-Reset is a Unix time, Retry-After seconds."""
    reset = _header(headers, "X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    retry_after = _header(headers, "Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    return None


def result_from_status(status: int, body: bytes | str | None, headers: Any) -> BatchResult:
    if status in (200, 202):
        return BatchResult(BatchOutcome.ACCEPTED, message_id=_header(headers, "X-Message-Id"))
    summary, by_position = _error_messages(body)
    error = f"SendGrid {status}: {summary}"
    if status == 400:
        return BatchResult(BatchOutcome.REJECTED, error=error, recipient_errors=by_position)
    if status == 413:
        return BatchResult(BatchOutcome.TOO_LARGE, error=error)
    if status == 429:
        return BatchResult(
            BatchOutcome.RATE_LIMITED, error=error, retry_after=_retry_after(headers, time.time())
        )
    if status in (401, 403):
        return BatchResult(BatchOutcome.UNAUTHORIZED, error=error)
    if status >= 500:
        return BatchResult(BatchOutcome.UNAVAILABLE, error=error)
    # Any other 4xx (404, 405, 415…) says the request itself is wrong: retrying cannot help.
    return BatchResult(BatchOutcome.REJECTED, error=error)


class SendGridTransport:
    name = "sendgrid"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        if not self.settings.sendgrid_api_key:
            raise ValueError("NEWSLETTER_TRANSPORT=sendgrid needs SENDGRID_API_KEY")
        require_postal_address(self.settings)
        self.client = SendGridAPIClient(
            api_key=self.settings.sendgrid_api_key, host=self.settings.sendgrid_api_host
        )
        self.timeout = self.settings.sendgrid_timeout_seconds
        _quiet_client_logger()

    def post(self, body: str) -> BatchResult:
        """POST a JSON body (already serialised) to /v3/mail/send and map the answer."""
        try:
            response = self.client.client.mail.send.post(
                request_body=_Body(body),
                request_headers={"Content-Type": JSON_CONTENT_TYPE},
                timeout=self.timeout,
            )
        except HTTPError as exc:
            return result_from_status(int(exc.status_code), exc.body, exc.headers)
        except urllib.error.URLError as exc:
            # urllib wraps what fails while connecting or writing the request: SendGrid never
            # got a whole request, so it cannot have accepted it.
            return BatchResult(
                BatchOutcome.UNAVAILABLE, error=f"SendGrid unreachable: {exc.reason}"
            )
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
            # Raised while waiting for the answer: the request went out and may have been taken.
            detail = str(exc) or type(exc).__name__
            return BatchResult(
                BatchOutcome.UNKNOWN, error=f"no answer from SendGrid after the request: {detail}"
            )
        return result_from_status(response.status_code, response.body, response.headers)

    def send_batch(
        self,
        content: MailContent,
        recipients: Sequence[Recipient],
        *,
        issue_id: int,
        categories: Sequence[str] = (),
    ) -> BatchResult:
        body = mail_body(
            content, recipients, issue_id=issue_id, categories=categories, settings=self.settings
        )
        return self.post(body)

    def send_one(self, message: OutgoingMessage) -> SendResult:
        result = self.post(single_body(message, self.settings))
        if result.outcome is BatchOutcome.ACCEPTED:
            return SendResult(ok=True, message_id=result.message_id)
        return SendResult(ok=False, error=result.error)

"""The SendGrid transport field by field: the exact request the loopback SendGrid records, and
what each of SendGrid's answers (and each way of getting none) becomes."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from newsletter.mail.message import BatchOutcome, OutgoingMessage, Recipient
from newsletter.mail.sendgrid_transport import SendGridTransport, result_from_status
from newsletter.security.delivery_tokens import TOKEN_PLACEHOLDER
from newsletter.settings import get_settings, reset_settings
from tests.sending.conftest import TEXT, TRACKED_HTML
from tests.support.content import FrozenContent
from tests.support.sendgrid_server import SendGridServer

CONTENT = FrozenContent(subject="Verdicts of the week", html=TRACKED_HTML, text=TEXT)
FROM = {"email": "verdicts@aitoolverdicts.example", "name": "Weekly AI Tool Verdicts"}
LIST_ID = "Weekly AI Tool Verdicts <weekly-verdicts.aitoolverdicts.example>"
NO_SENDGRID_TRACKING = {
    "click_tracking": {"enable": False, "enable_text": False},
    "open_tracking": {"enable": False},
}


def personalization(delivery_id: int, email: str, token: str, name: str = "") -> dict[str, Any]:
    to = {"email": email, "name": name} if name else {"email": email}
    return {
        "to": [to],
        "substitutions": {TOKEN_PLACEHOLDER: token},
        "custom_args": {"delivery_id": str(delivery_id), "issue_id": "7"},
        "headers": {
            "List-Unsubscribe": f"<https://nl.example/u/{token}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }


def test_a_batch_request_is_exactly_what_sendgrid_is_meant_to_get(
    sendgrid: SendGridServer,
) -> None:
    recipients = [
        Recipient(11, "ann@mail.example.com", "Ann Lee", "MTE.sig"),
        Recipient(12, "bo@mail.example.com", "", "MTI.sig"),
    ]
    result = SendGridTransport().send_batch(
        CONTENT, recipients, issue_id=7, categories=("weekly-verdicts", "2026-W47")
    )
    [request] = sendgrid.accepted
    assert (result.outcome, result.message_id, result.error) == (
        BatchOutcome.ACCEPTED,
        request.message_id,
        None,
    )
    assert request.payload == {
        "from": FROM,
        "subject": "Verdicts of the week",
        "content": [
            {"type": "text/plain", "value": TEXT},
            {"type": "text/html", "value": TRACKED_HTML},
        ],
        "headers": {"List-Id": LIST_ID},
        # The service counts opens and clicks itself: SendGrid's own rewriting stays off.
        "tracking_settings": NO_SENDGRID_TRACKING,
        "mail_settings": {"sandbox_mode": {"enable": False}},
        "categories": ["weekly-verdicts", "2026-W47"],
        "personalizations": [
            personalization(11, "ann@mail.example.com", "MTE.sig", "Ann Lee"),
            personalization(12, "bo@mail.example.com", "MTI.sig"),
        ],
    }


def test_sandbox_mode_and_categories_as_sendgrid_allows_them(
    sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_SANDBOX_MODE", "true")
    reset_settings()
    many = [f"c{n}" for n in range(12)]
    transport = SendGridTransport()
    one = [Recipient(1, "a@mail.example.com", "", "MQ.sig")]
    transport.send_batch(CONTENT, one, issue_id=7, categories=["b", "a", "b", *many])
    transport.send_batch(CONTENT, one, issue_id=7)
    with_categories, without = (r.payload or {} for r in sendgrid.accepted)
    assert with_categories["mail_settings"] == {"sandbox_mode": {"enable": True}}
    # Repeats dropped in their order, then SendGrid's limit of 10.
    assert with_categories["categories"] == ["b", "a", *many[:8]]
    assert "categories" not in without


def test_a_single_message_is_sent_as_it_was_filled_in(sendgrid: SendGridServer) -> None:
    message = OutgoingMessage(
        to_email="new@mail.example.com",
        to_name="New\r\nReader",
        subject="Confirm your subscription",
        text="Confirm: https://nl.example/c",
        html="<p>Confirm</p>",
        headers={"List-Id": LIST_ID},
        categories=("confirmation", "confirmation", *(f"c{n}" for n in range(12))),
        custom_args={"kind": "confirm", "attempt": 2},  # type: ignore[dict-item]
    )
    result = SendGridTransport().send_one(message)
    [request] = sendgrid.accepted
    assert (result.ok, result.message_id, result.error) == (True, request.message_id, None)
    assert request.payload == {
        "from": FROM,
        "subject": "Confirm your subscription",
        "content": [
            {"type": "text/plain", "value": "Confirm: https://nl.example/c"},
            {"type": "text/html", "value": "<p>Confirm</p>"},
        ],
        "personalizations": [
            {
                "to": [{"email": "new@mail.example.com", "name": "New Reader"}],
                # SendGrid answers 400 to a custom_args value that is not a string.
                "custom_args": {"kind": "confirm", "attempt": "2"},
            }
        ],
        # SendGrid's own open and click tracking stays off (it would rewrite the link to
        # confirm into a redirect of its own).
        "tracking_settings": {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
        },
        "mail_settings": {"sandbox_mode": {"enable": False}},
        "headers": {"List-Id": LIST_ID},
        "categories": ["confirmation", *(f"c{n}" for n in range(9))],
    }

    bare = OutgoingMessage(to_email="b@mail.example.com", subject="s", text="t", html="<p>h</p>")
    SendGridTransport().send_one(bare)
    payload = sendgrid.accepted[-1].payload or {}
    assert payload["personalizations"] == [{"to": [{"email": "b@mail.example.com"}]}]
    assert "headers" not in payload and "categories" not in payload


def test_a_single_message_that_sendgrid_refuses_says_why(sendgrid: SendGridServer) -> None:
    sendgrid.fail_next(500)
    message = OutgoingMessage(to_email="b@mail.example.com", subject="s", text="t", html="h")
    result = SendGridTransport().send_one(message)
    assert (result.ok, result.message_id, result.error) == (
        False,
        None,
        "SendGrid 500: injected 500",
    )


def test_the_api_key_comes_from_the_settings_not_the_environment(
    sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()  # as read from a .env file: nothing in the environment
    monkeypatch.delenv("SENDGRID_API_KEY")
    result = SendGridTransport(settings).send_batch(CONTENT, one(), issue_id=7)
    assert result.outcome is BatchOutcome.ACCEPTED


def test_an_exception_without_words_is_named_by_its_type(
    sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from python_http_client.client import Client

    def silent_timeout(*_: Any, **__: Any) -> None:
        raise TimeoutError()

    monkeypatch.setattr(Client, "_make_request", silent_timeout)
    result = SendGridTransport().send_batch(CONTENT, one(), issue_id=7)
    assert (result.outcome, result.error) == (
        BatchOutcome.UNKNOWN,
        "no answer from SendGrid after the request: TimeoutError",
    )


def test_the_transport_needs_an_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    reset_settings()
    with pytest.raises(ValueError, match=r"^NEWSLETTER_TRANSPORT=sendgrid needs SENDGRID_API_KEY$"):
        SendGridTransport(get_settings())


# --- what SendGrid answers --------------------------------------------------------------------


def errors(*items: Any) -> bytes:
    return json.dumps({"errors": list(items)}).encode()


def test_an_accepted_request_carries_sendgrids_message_id() -> None:
    for status in (200, 202):
        result = result_from_status(status, b"", {"X-Message-Id": "abc"})
        assert (result.outcome, result.message_id, result.error) == (
            BatchOutcome.ACCEPTED,
            "abc",
            None,
        )
    assert result_from_status(202, None, None).message_id is None
    assert result_from_status(202, b"", {}).message_id is None


def test_a_400_names_each_recipient_sendgrid_objects_to_by_position() -> None:
    body = errors(
        "not an object",
        {"message": "Invalid mailbox.", "field": "personalizations.12.to.0.email"},
        {"message": "On a blocklist.", "field": "personalizations.3"},
        {"message": "Bad subject", "field": "subject"},
        {"field": "personalizationsX.4"},
    )
    result = result_from_status(400, body, {})
    assert result.outcome is BatchOutcome.REJECTED
    assert result.recipient_errors == {12: "Invalid mailbox.", 3: "On a blocklist."}
    assert result.error == (
        "SendGrid 400: personalizations.12.to.0.email: Invalid mailbox.; "
        "personalizations.3: On a blocklist.; subject: Bad subject; personalizationsX.4: error"
    )
    assert result.retry_after is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (errors({"message": "Bad Request", "field": None}), "SendGrid 400: Bad Request"),
        (errors(), "SendGrid 400: bad request"),
        (b'{"errors": null}', "SendGrid 400: bad request"),
        (b"  upstream said no \n", "SendGrid 400: upstream said no"),
        ("plain text", "SendGrid 400: plain text"),
        (b"[1, 2]", "SendGrid 400: [1, 2]"),
        (b"\xff oops", "SendGrid 400: \ufffd oops"),
        (None, "SendGrid 400: "),
        (b"x" * 600, "SendGrid 400: " + "x" * 500),
        (
            errors(*[{"message": "m" * 100}] * 30),
            "SendGrid 400: " + "; ".join(["m" * 100] * 30)[:2000],
        ),
    ],
)
def test_a_400_keeps_sendgrids_words_within_bounds(body: Any, error: str) -> None:
    result = result_from_status(400, body, {})
    assert result.error == error
    assert result.recipient_errors == {}


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (413, BatchOutcome.TOO_LARGE),
        (401, BatchOutcome.UNAUTHORIZED),
        (403, BatchOutcome.UNAUTHORIZED),
        (500, BatchOutcome.UNAVAILABLE),
        (502, BatchOutcome.UNAVAILABLE),
        (503, BatchOutcome.UNAVAILABLE),
        (404, BatchOutcome.REJECTED),
        (405, BatchOutcome.REJECTED),
        (415, BatchOutcome.REJECTED),
        (499, BatchOutcome.REJECTED),
    ],
)
def test_each_status_means_what_sendgrid_documents(status: int, outcome: BatchOutcome) -> None:
    result = result_from_status(status, errors({"message": "why"}), {"X-Message-Id": "abc"})
    assert (result.outcome, result.error, result.message_id, result.retry_after) == (
        outcome,
        f"SendGrid {status}: why",
        None,
        None,
    )
    assert result.recipient_errors == {}


def test_a_429_says_how_long_to_wait() -> None:
    def wait(headers: dict[str, str]) -> float | None:
        result = result_from_status(429, errors({"message": "slow down"}), headers)
        assert (result.outcome, result.error) == (
            BatchOutcome.RATE_LIMITED,
            "SendGrid 429: slow down",
        )
        return result.retry_after

    # X-RateLimit-Reset is a Unix time; it wins over Retry-After (seconds).
    assert wait({"X-RateLimit-Reset": str(time.time() + 30)}) == pytest.approx(30, abs=2)
    both = {"X-RateLimit-Reset": str(time.time() + 30), "Retry-After": "5"}
    assert wait(both) == pytest.approx(30, abs=2)
    assert wait({"X-RateLimit-Reset": str(time.time() - 30)}) == 0.0
    assert wait({"Retry-After": "7"}) == 7.0
    assert wait({"Retry-After": "2.5"}) == 2.5
    assert wait({"Retry-After": "-4"}) == 0.0
    assert wait({"X-RateLimit-Reset": "soon", "Retry-After": "7"}) == 7.0
    assert wait({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert wait({"X-RateLimit-Reset": "", "Retry-After": ""}) is None
    assert wait({}) is None


# --- when no answer comes ---------------------------------------------------------------------


def one() -> list[Recipient]:
    return [Recipient(1, "a@mail.example.com", "", "MQ.sig")]


def test_a_refused_connection_means_sendgrid_never_got_the_request(
    sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("SENDGRID_API_HOST", f"http://127.0.0.1:{closed_port}")
    reset_settings()
    result = SendGridTransport().send_batch(CONTENT, one(), issue_id=7)
    assert result.outcome is BatchOutcome.UNAVAILABLE
    assert (result.error or "").startswith("SendGrid unreachable: ")
    assert "refused" in (result.error or "").lower()


def test_no_answer_within_the_timeout_is_unknown_not_unavailable(
    sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_TIMEOUT_SECONDS", "0.2")
    reset_settings()
    sendgrid.slow_next(1.0)
    began = time.monotonic()
    result = SendGridTransport().send_batch(CONTENT, one(), issue_id=7)
    assert time.monotonic() - began < 0.9  # the configured timeout, not the server's pace
    assert result.outcome is BatchOutcome.UNKNOWN
    assert result.error == "no answer from SendGrid after the request: timed out"


def test_a_dropped_connection_is_unknown_and_names_what_happened(
    sendgrid: SendGridServer,
) -> None:
    sendgrid.drop_next(accepted=True)
    result = SendGridTransport().send_batch(CONTENT, one(), issue_id=7)
    assert result.outcome is BatchOutcome.UNKNOWN
    prefix = "no answer from SendGrid after the request: "
    assert (result.error or "").startswith(prefix) and len(result.error or "") > len(prefix)


def test_the_body_python_http_client_formats_prints_as_its_size_and_goes_out_whole(
    sendgrid: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library formats each body into a debug line before asking whether debug is on: the
    bytes it is given print as their size, and are still the exact request."""
    from python_http_client.client import Client

    seen: list[bytes] = []
    real = Client._make_request

    def record(self: Client, opener: Any, request: Any, timeout: Any = None) -> Any:
        seen.append(request.data)
        return real(self, opener, request, timeout=timeout)

    monkeypatch.setattr(Client, "_make_request", record)
    recipients = [Recipient(11, "ann@mail.example.com", "Ann Lee", "MTE.sig")]
    result = SendGridTransport().send_batch(CONTENT, recipients, issue_id=7)
    assert result.outcome is BatchOutcome.ACCEPTED
    [data] = seen
    shown_as: object = data  # formatted as the library does, not as bytes are meant to be
    [request] = sendgrid.accepted
    assert isinstance(data, bytes) and json.loads(data) == request.payload
    shown = f"<{len(data):,} bytes of JSON>"
    # The library's own words: '{data}'.format(data=request.data).
    line = "PAYLOAD: {data}".format
    assert (repr(data), str(data), f"{shown_as}", line(data=data)) == (
        shown,
        shown,
        shown,
        f"PAYLOAD: {shown}",
    )


def test_the_body_encodes_as_a_str_and_the_librarys_debug_lines_stay_unwritten(
    sendgrid: SendGridServer, caplog: pytest.LogCaptureFixture
) -> None:
    """In this process, as the scheduler's --log-level DEBUG sets it: the root logger at DEBUG
    keeps its level, and python_http_client's logger alone is held at INFO."""
    import logging

    from newsletter.mail.sendgrid_transport import _Body, _Payload

    assert _Body("Ünïcode ✓").encode() == "Ünïcode ✓".encode()
    assert type(_Body("x").encode("utf-8")) is _Payload
    with pytest.raises(UnicodeEncodeError):
        _Body("\ud800").encode()  # strict, as str.encode is
    library = logging.getLogger("python_http_client.client")
    library.setLevel(logging.NOTSET)
    caplog.set_level(logging.DEBUG)
    result = SendGridTransport().send_batch(CONTENT, one(), issue_id=7)
    assert result.outcome is BatchOutcome.ACCEPTED
    assert library.level == logging.INFO
    assert logging.getLogger().level == logging.DEBUG  # the operator's choice, untouched
    assert [r.name for r in caplog.records if r.name.startswith("python_http_client")] == []
    # An operator who quietened it further keeps their level.
    library.setLevel(logging.ERROR)
    SendGridTransport()
    assert library.level == logging.ERROR

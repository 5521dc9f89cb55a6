"""The request SendGrid gets, checked against its official schema; the outbox's .eml files;
the loopback server's enforcement of SendGrid's documented limits."""

from __future__ import annotations

import email
import email.policy
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from newsletter.mail.message import OutgoingMessage, Recipient
from newsletter.mail.outbox import OutboxTransport
from newsletter.mail.sendgrid_transport import CUSTOM_ARGS_MAX_BYTES, mail_body, single_body
from newsletter.security.delivery_tokens import TOKEN_PLACEHOLDER
from newsletter.settings import get_settings
from tests.sending.conftest import TEXT, TRACKED_HTML
from tests.support.content import FrozenContent
from tests.support.sendgrid_server import SendGridServer, load_request_validator

CONTENT = FrozenContent(subject="Verdicts", html=TRACKED_HTML, text=TEXT)


def mail_payload(content: FrozenContent, batch: list[Recipient], **args: Any) -> Any:
    """What the send posts, read back: the one builder of a batch request is `mail_body`."""
    return json.loads(mail_body(content, batch, **args))


def recipients(n: int) -> list[Recipient]:
    return [Recipient(i + 1, f"r{i}@mail.example.com", f"R {i}", f"tok{i}.sig") for i in range(n)]


def test_a_1000_recipient_request_matches_the_official_schema_and_sendgrids_rules() -> None:
    payload = mail_payload(
        CONTENT,
        recipients(1000),
        issue_id=7,
        categories=["weekly", "2026-W47"],
        settings=get_settings(),
    )
    errors = list(load_request_validator().iter_errors(payload))
    assert errors == []
    SendGridServer(validate_schema=False).validate(payload)  # the documented limits as well
    first = payload["personalizations"][0]
    assert first["to"] == [{"email": "r0@mail.example.com", "name": "R 0"}]
    assert first["substitutions"] == {TOKEN_PLACEHOLDER: "tok0.sig"}
    assert first["custom_args"] == {"delivery_id": "1", "issue_id": "7"}
    assert first["headers"]["List-Unsubscribe"].endswith("/u/tok0.sig>")
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert payload["headers"]["List-Id"].endswith(f"<{get_settings().newsletter_list_id}>")
    assert payload["categories"] == ["weekly", "2026-W47"]


def test_the_body_written_directly_escapes_what_strangers_wrote() -> None:
    """The send writes its JSON by hand for speed: addresses and names from strangers (quotes,
    backslashes, newlines, angle brackets, accents) come back exactly, each in its own
    personalization, with its own token, ids and unsubscribe header."""
    odd = [
        Recipient(1, 'quote"back\\slash@mail.example.com', 'Zoë "Z" \\ <z>\n', "MQ.sig-_~"),
        Recipient(2, "plain@mail.example.com", "", "Mg.sig"),
        *recipients(998)[2:],
    ]
    for batch in (odd, recipients(1)):
        for categories in ((), ("weekly", "2026-W47", "weekly")):
            payload = mail_payload(
                CONTENT, batch, issue_id=7, categories=categories, settings=get_settings()
            )
            assert list(load_request_validator().iter_errors(payload)) == []
            assert payload.get("categories", []) == list(dict.fromkeys(categories))
            assert [p["to"] for p in payload["personalizations"]] == [
                [{"email": r.email, **({"name": r.name} if r.name else {})}] for r in batch
            ]
            for r, p in zip(batch, payload["personalizations"], strict=True):
                assert p["substitutions"] == {TOKEN_PLACEHOLDER: r.token}
                assert p["custom_args"] == {"delivery_id": str(r.delivery_id), "issue_id": "7"}
                assert p["headers"]["List-Unsubscribe"] == (
                    f"<{get_settings().newsletter_base_url}/u/{r.token}>"
                )
    with pytest.raises(
        ValueError,
        match=r"^a delivery token must be URL-safe to be written into the request$",
    ):
        mail_body(
            CONTENT,
            [Recipient(1, "a@mail.example.com", "", 'x"y')],
            issue_id=1,
            categories=(),
            settings=get_settings(),
        )


def test_a_single_message_shares_the_batch_envelope_and_its_custom_args_limit() -> None:
    message = OutgoingMessage(
        to_email="a@mail.example.com",
        to_name="Ann",
        subject="Confirm",
        html="<p>hi</p>",
        text="hi",
        headers={"List-Id": "x <x.example.com>"},
        categories=("confirm", "confirm"),
        custom_args={"kind": "confirm"},
    )
    payload = json.loads(single_body(message, get_settings()))
    assert list(load_request_validator().iter_errors(payload)) == []
    SendGridServer(validate_schema=False).validate(payload)
    assert payload["personalizations"] == [
        {"to": [{"email": "a@mail.example.com", "name": "Ann"}], "custom_args": {"kind": "confirm"}}
    ]
    # SendGrid must not rewrite a confirmation link into its own redirect either.
    assert payload["tracking_settings"]["click_tracking"]["enable"] is False
    assert payload["categories"] == ["confirm"]
    assert payload["headers"] == {"List-Id": "x <x.example.com>"}
    batch = mail_payload(CONTENT, recipients(1), issue_id=1, categories=(), settings=get_settings())
    assert {
        k: v
        for k, v in payload.items()
        if k not in ("subject", "content", "personalizations", "headers", "categories")
    } == {
        k: v
        for k, v in batch.items()
        if k not in ("subject", "content", "personalizations", "headers")
    }
    # {"k":"…"} is 8 bytes around its value: 9,992 fill the limit exactly, one more is refused.
    at_limit = OutgoingMessage(**{**message.__dict__, "custom_args": {"k": "x" * 9_992}})
    assert json.loads(single_body(at_limit, get_settings()))["personalizations"][0]["custom_args"]
    big = OutgoingMessage(**{**message.__dict__, "custom_args": {"k": "x" * CUSTOM_ARGS_MAX_BYTES}})
    with pytest.raises(
        ValueError,
        match=r"^custom_args of 10,008 bytes: SendGrid takes at most 10,000 in a request$",
    ):
        single_body(big, get_settings())


@pytest.mark.parametrize("count", [0, 1001])
def test_a_request_takes_1_to_1000_recipients(count: int) -> None:
    with pytest.raises(ValueError, match="1 to 1,000"):
        mail_payload(CONTENT, recipients(count), issue_id=1, categories=(), settings=get_settings())


def test_the_outbox_writes_the_same_message_one_eml_per_recipient(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path / "outbox")
    result = outbox.send_batch(CONTENT, recipients(3), issue_id=7, categories=["weekly"])
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 3 and len(result.message_ids) == 3
    by_to = {}
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        by_to[str(message["To"])] = message
    message = by_to["R 1 <r1@mail.example.com>"]
    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message["List-Unsubscribe"] == "<http://localhost:8000/u/tok1.sig>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "weekly-verdicts" in message["List-Id"]
    raw = files[0].read_text()
    assert TOKEN_PLACEHOLDER not in raw
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "/o/tok1.sig.gif" in html


def post(server: SendGridServer, payload: Any, key: str | None = "SG.k") -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{server.url}/v3/mail/send",
        data=json.dumps(payload).encode(),
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {key}"} if key else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def good_payload(n: int = 2) -> dict[str, Any]:
    return mail_payload(CONTENT, recipients(n), issue_id=1, categories=(), settings=get_settings())


def test_the_loopback_server_enforces_sendgrids_documented_rules() -> None:
    with SendGridServer(api_key="SG.k") as server:
        status, headers = post(server, good_payload())
        assert status == 202 and headers["X-Message-Id"]
        assert post(server, good_payload(), key=None)[0] == 401
        assert post(server, good_payload(), key="SG.wrong")[0] == 401

        duplicate = good_payload()
        duplicate["personalizations"][0]["bcc"] = [{"email": "R0@mail.example.com"}]
        status, body = post(server, duplicate)
        assert status == 400 and "unique" in body["errors"][0]["message"]

        numeric = good_payload()
        numeric["personalizations"][1]["custom_args"]["delivery_id"] = 2
        status, body = post(server, numeric)
        assert status == 400 and any(
            "personalizations.1.custom_args" in str(e["field"]) for e in body["errors"]
        )

        substitution = good_payload()
        substitution["personalizations"][0]["substitutions"][TOKEN_PLACEHOLDER] = 5
        assert post(server, substitution)[0] == 400

        big = good_payload()
        big["personalizations"][0]["custom_args"]["note"] = "x" * 10_000
        status, body = post(server, big)
        assert status == 400 and "10,000 bytes" in body["errors"][0]["message"]

        too_many = good_payload(1000)
        too_many["personalizations"].append(
            dict(too_many["personalizations"][0], to=[{"email": "x@mail.example.com"}])
        )
        assert post(server, too_many)[0] == 400

        html_first = good_payload()
        html_first["content"].reverse()
        assert post(server, html_first)[0] == 400

        assert server.received[("1", "r0@mail.example.com")] == 1  # only the first was taken
        assert server.stats()["accepted_requests"] == 1

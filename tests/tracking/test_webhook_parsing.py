"""The webhook's parts one at a time, field by field: the signature check, the body parser and
the normalisation of each SendGrid event (what the stored row then says is in test_webhook)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from newsletter.sending.models import MAX_DELIVERY_ID
from newsletter.tracking.events import SendGridEvents
from newsletter.tracking.models import EventType
from newsletter.tracking.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PayloadError,
    SignatureError,
    WebhookConfigError,
    encode_public_key,
    load_public_key,
    parse_events,
    sign_payload,
    verify,
)

NOW = 1_760_000_000
RECEIVED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())
BODY = b'[{"event": "open"}]'


def check(
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes = BODY,
    now: float = NOW,
    max_age: int = 600,
) -> None:
    verify(
        KEY.public_key(),
        signature=signature,
        timestamp=timestamp,
        body=body,
        max_age_seconds=max_age,
        now=now,
    )


def signed_at(at: int, body: bytes = BODY) -> str:
    return sign_payload(KEY, str(at), body)


# --- the signature ----------------------------------------------------------------------------


def test_a_signature_made_with_the_key_over_timestamp_and_body_passes() -> None:
    check(signature=signed_at(NOW), timestamp=str(NOW))


@pytest.mark.parametrize(
    ("signature", "timestamp"), [(None, str(NOW)), ("c2ln", None), ("", str(NOW)), ("c2ln", "")]
)
def test_either_header_missing_is_a_signature_error_naming_both(
    signature: str | None, timestamp: str | None
) -> None:
    with pytest.raises(SignatureError) as refused:
        check(signature=signature, timestamp=timestamp)
    assert str(refused.value) == f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header"


def test_a_timestamp_that_is_not_a_number_is_named_and_cut_short() -> None:
    with pytest.raises(SignatureError) as refused:
        check(signature=signed_at(NOW), timestamp="x" * 100)
    assert str(refused.value) == f"{TIMESTAMP_HEADER} is not a Unix time: {'x' * 40!r}"


def test_the_age_limit_is_inclusive_on_both_sides_of_now() -> None:
    for at in (NOW - 600, NOW + 600):
        check(signature=signed_at(at), timestamp=str(at))
    for at in (NOW - 601, NOW + 601):
        with pytest.raises(SignatureError) as refused:
            check(signature=signed_at(at), timestamp=str(at))
        assert str(refused.value) == (
            f"timestamp {at} is more than 600s from now: stale or replayed"
        )


def test_without_now_the_clock_is_read() -> None:
    at = int(time.time())
    verify(
        KEY.public_key(),
        signature=signed_at(at),
        timestamp=str(at),
        body=BODY,
        max_age_seconds=5,
    )
    with pytest.raises(SignatureError, match="stale"):
        verify(
            KEY.public_key(),
            signature=signed_at(NOW),
            timestamp=str(NOW),
            body=BODY,
            max_age_seconds=5,
        )


@pytest.mark.parametrize("signature", ["not base64!", "c2ln!", "c2ln\n"])
def test_a_signature_that_is_not_strict_base64_is_named(signature: str) -> None:
    # Lenient decoding would drop the stray characters and check what is left.
    with pytest.raises(SignatureError) as refused:
        check(signature=signature, timestamp=str(NOW))
    assert str(refused.value) == f"{SIGNATURE_HEADER} is not base64"


def test_a_signature_over_another_body_or_time_does_not_match() -> None:
    for signature, timestamp, body in (
        (signed_at(NOW), str(NOW), BODY + b" "),
        (signed_at(NOW - 1), str(NOW), BODY),
        # The signature covers timestamp + body, not the body alone.
        (sign_payload(KEY, "", BODY), str(NOW), BODY),
    ):
        with pytest.raises(SignatureError) as refused:
            check(signature=signature, timestamp=timestamp, body=body)
        assert str(refused.value) == "signature does not match the body and timestamp"


def test_the_public_key_as_sendgrid_shows_it_is_loaded_and_checked() -> None:
    encoded = encode_public_key(KEY)
    der = KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64decode(encoded) == der
    loaded = load_public_key(f"  {encoded}\n")
    assert loaded.public_numbers() == KEY.public_key().public_numbers()

    with pytest.raises(WebhookConfigError) as refused:
        load_public_key("not a key!")
    assert str(refused.value).startswith(
        "SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key: "
    )
    not_p256 = [
        ec.generate_private_key(ec.SECP384R1()).public_key(),
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(),
    ]
    for other in not_p256:
        der = other.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        with pytest.raises(WebhookConfigError) as refused:
            load_public_key(base64.b64encode(der).decode())
        assert str(refused.value) == "SENDGRID_WEBHOOK_PUBLIC_KEY is not an EC P-256 public key"


# --- the body ---------------------------------------------------------------------------------


def test_a_json_array_of_objects_is_returned_as_it_is() -> None:
    body = b'[{"event": "open", "n": 1.5, "k": [true, null]}, {}]'
    assert parse_events(body) == [{"event": "open", "n": 1.5, "k": [True, None]}, {}]
    assert parse_events(b"[]") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not JSON: "),
        (b"\xff\xfe[]", "body is not JSON: "),
        (b'{"event": "open"}', "body is not a JSON array of events"),
        (b'[{}, {}, "x"]', "event 2 is not a JSON object"),
        (b'[{"n": NaN}]', "body is not JSON: number NaN is not a finite JSON number"),
        (b'[{"n": -Infinity}]', "body is not JSON: number -Infinity is not a finite JSON"),
        (b'[{"n": 1e999}]', "body is not JSON: number 1e999 is not a finite JSON number"),
        (
            b'[{"n": ' + b"1" * 50 + b"e999}]",
            f"body is not JSON: number {'1' * 40} is not a finite JSON number",
        ),
    ],
)
def test_a_body_that_is_not_an_event_array_is_a_payload_error(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as refused:
        parse_events(body)
    assert str(refused.value).startswith(message)


def test_nul_characters_are_taken_out_of_keys_and_values_at_any_depth() -> None:
    body = json.dumps(
        [{"use\u0000ragent": "a\u0000b", "list": ["x\u0000", {"deep\u0000": ["\u0000y"]}], "n": 3}]
    ).encode()
    assert parse_events(body) == [
        {"useragent": "ab", "list": ["x", {"deep": ["y"]}], "n": 3},
    ]


# --- each event, normalised -------------------------------------------------------------------


def normalised(**raw: Any) -> Any:
    return SendGridEvents.normalise(raw, received_at=RECEIVED)


def test_an_event_keeps_its_own_time_and_its_raw_object() -> None:
    raw = {"event": "delivered", "timestamp": 1_763_640_000, "sg_event_id": "e1"}
    event = SendGridEvents.normalise(raw, received_at=RECEIVED)
    assert event.occurred_at == datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
    assert event.raw is raw
    assert normalised(timestamp=1_763_640_000.5).occurred_at == datetime(
        2025, 11, 20, 12, 0, 0, 500_000, tzinfo=UTC
    )


@pytest.mark.parametrize("timestamp", [None, "1763640000", True, 10**20, -(10**20), float("nan")])
def test_an_event_without_a_usable_time_takes_the_time_it_arrived(timestamp: Any) -> None:
    assert normalised(event="open", timestamp=timestamp).occurred_at == RECEIVED


def test_sendgrids_names_map_onto_ours_and_unknown_ones_are_kept_as_they_came() -> None:
    expected = {
        "processed": EventType.PROCESSED,
        "delivered": EventType.DELIVERED,
        "deferred": EventType.DEFERRED,
        "bounce": EventType.BOUNCED,
        "blocked": EventType.BOUNCED,
        "dropped": EventType.DROPPED,
        "open": EventType.OPENED,
        "click": EventType.CLICKED,
        "spamreport": EventType.COMPLAINED,
        "unsubscribe": EventType.UNSUBSCRIBED,
        "group_unsubscribe": EventType.UNSUBSCRIBED,
        "group_resubscribe": EventType.RESUBSCRIBED,
    }
    for name, event_type in expected.items():
        event = normalised(event=name)
        assert (event.type, event.provider_type) == (event_type, name)
    odd = normalised(event="x" * 100)
    assert (odd.type, odd.provider_type) == (EventType.UNKNOWN, "x" * 64)
    assert normalised().provider_type == ""
    assert normalised(event=7).provider_type == "7"


def test_only_a_bounce_of_type_bounce_is_hard() -> None:
    hard = normalised(event="bounce", type="bounce")
    block = normalised(event="bounce", type="blocked")
    old_block = normalised(event="blocked")
    assert (hard.provider_type, hard.hard_bounce) == ("bounce", True)
    assert (block.type, block.provider_type, block.hard_bounce) == (
        EventType.BOUNCED,
        "blocked",
        False,
    )
    assert (old_block.provider_type, old_block.hard_bounce) == ("blocked", False)
    assert normalised(event="dropped", type="bounce").hard_bounce is False
    assert normalised(event="bounce").hard_bounce is True


def test_only_opens_that_sendgrid_flags_are_machine_opens() -> None:
    assert normalised(event="open", sg_machine_open=True).machine is True
    assert normalised(event="open", sg_machine_open=False).machine is False
    assert normalised(event="open", sg_machine_open="true").machine is False
    assert normalised(event="open").machine is False
    assert normalised(event="click", sg_machine_open=True).machine is False


def test_the_event_id_is_sendgrids_or_a_digest_of_the_event() -> None:
    assert normalised(sg_event_id="abc").provider_event_id == "abc"
    assert normalised(sg_event_id="i" * 200).provider_event_id == "i" * 128
    legacy = {"event": "open", "email": "a@example.com", "timestamp": 5, "sg_event_id": ""}
    canonical = json.dumps(legacy, sort_keys=True, separators=(",", ":"))
    digest = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert normalised(**legacy).provider_event_id == digest
    # The same legacy event redelivered with its keys in another order is the same event.
    assert normalised(**dict(reversed(legacy.items()))).provider_event_id == digest
    assert normalised(**{**legacy, "sg_event_id": 5}).provider_event_id.startswith("sha256:")
    assert normalised(when=RECEIVED).provider_event_id.startswith("sha256:")  # not JSON: str()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        (7, 7),
        (str(MAX_DELIVERY_ID), MAX_DELIVERY_ID),
        (str(MAX_DELIVERY_ID + 1), None),
        (MAX_DELIVERY_ID + 1, None),
        ("0", None),
        (0, None),
        (-3, None),
        ("-3", None),
        ("²", None),
        (True, None),
        (3.0, None),
        (None, None),
        ("9" * 40, None),
    ],
)
def test_the_delivery_id_is_one_of_ours_or_none(value: Any, expected: int | None) -> None:
    assert normalised(delivery_id=value).delivery_id == expected


def test_the_user_agent_and_the_detail_are_kept_in_bounds() -> None:
    event = normalised(
        event="bounce",
        useragent="u" * 3000,
        status="5.1.1",
        reason="no such user",
        response="",
        url=None,
        bounce_classification="Invalid Address",
    )
    assert event.user_agent == "u" * 2000
    assert event.detail == "5.1.1 | no such user | Invalid Address"
    assert normalised(response="r" * 3000).detail == "r" * 2000
    assert normalised(url="https://x.example/a", status=0).detail == "0 | https://x.example/a"
    assert normalised(useragent=12).user_agent == "12"
    assert normalised(useragent="").user_agent is None
    assert normalised().user_agent is None
    assert normalised(reason="").detail is None

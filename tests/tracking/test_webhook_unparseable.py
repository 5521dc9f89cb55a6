"""What SendGrid (or anyone) posts that cannot be read is a 400, never a 500: SendGrid retries a
5xx for a day, so a 500 for bad input would replay it for a day and hold up real events."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.tracking.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_payload
from tests.tracking.conftest import World
from tests.tracking.test_webhook import URL, event, signed, stored


@pytest.fixture
def client(db_url: str) -> TestClient:
    from newsletter.web.app import create_app

    # raise_server_exceptions=False: a 500 is an answer to assert on.
    return TestClient(create_app(), raise_server_exceptions=False)


def _post(
    client: TestClient, body: bytes, headers: dict[str, str] | dict[str, bytes]
) -> tuple[int, str]:
    response = client.post(URL, content=body, headers=headers)
    return response.status_code, response.text


@pytest.mark.parametrize("stamp", ["9" * 5000, "9" * 400, "1" + "0" * 30, "١٧٠٠٠٠٠٠٠٠", "-5"])
def test_a_timestamp_header_that_is_no_unix_time_is_a_400(
    client: TestClient,
    world: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    stamp: str,
) -> None:
    body = json.dumps([event(world, 0, "open", "ts-1")]).encode()
    signature = sign_payload(signing_key, stamp, body)
    headers = {SIGNATURE_HEADER: signature.encode(), TIMESTAMP_HEADER: stamp.encode()}
    status, text = _post(client, body, headers)
    assert status == 400, text
    assert TIMESTAMP_HEADER in text
    assert stored(db) == []


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
def test_a_post_with_only_one_of_the_two_signature_headers_is_a_400(
    client: TestClient,
    world: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    missing: str,
) -> None:
    body, headers = signed(signing_key, [event(world, 0, "open", "one-header")])
    del headers[missing]
    status, text = _post(client, body, headers)
    assert status == 400, text
    assert missing in text
    assert stored(db) == []


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_a_deeply_nested_signed_body_is_a_400(
    client: TestClient,
    world: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    depth: int,
) -> None:
    for body in (b"[" * depth + b"]" * depth, b'[{"a":' * depth + b"1" + b"}]" * depth):
        stamp = str(int(time.time()))
        headers = {
            SIGNATURE_HEADER: sign_payload(signing_key, stamp, body),
            TIMESTAMP_HEADER: stamp,
        }
        status, text = _post(client, body, headers)
        assert status == 400, text[:200]
        assert "nested" in text or "not a JSON object" in text
    assert stored(db) == []


def test_a_lone_surrogate_in_a_signed_body_is_stored_cleaned_with_the_rest_of_its_batch(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    """Neither engine can encode a lone surrogate; the event is kept with U+FFFD in its place
    (as a NUL is dropped) so one odd user agent does not block the batch, and a real pair
    (an emoji, escaped) comes through whole."""
    events = [
        event(world, 0, "click", "sur-1", url="https://aitoolverdicts.example/", useragent="UA"),
        event(world, 1, "open", "sur-2", useragent="Mozilla 😀"),
    ]
    body = json.dumps(events).replace('"UA"', '"U\\ud800A\\udfff"').encode()
    assert b"\\ud800" in body and b"\\ud83d\\ude00" in body  # json.dumps escapes the emoji
    stamp = str(int(time.time()))
    headers = {SIGNATURE_HEADER: sign_payload(signing_key, stamp, body), TIMESTAMP_HEADER: stamp}
    status, text = _post(client, body, headers)
    assert status == 200, text
    assert json.loads(text)["stored"] == 2
    rows = {row.provider_event_id: row for row in stored(db)}
    assert rows["sur-1"].raw is not None and rows["sur-1"].raw["useragent"] == "U\ufffdA\ufffd"
    assert rows["sur-2"].raw is not None and rows["sur-2"].raw["useragent"] == "Mozilla 😀"

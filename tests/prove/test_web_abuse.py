"""Abuse of the public surface: oversized bodies, out-of-range ids, forged and replayed tokens,
webhook posts that are not SendGrid's. Each gets a clear 4xx and changes nothing; none a 5xx."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.accounts.models import Role
from newsletter.accounts.service import create_user, issue_api_token
from newsletter.db import transaction
from newsletter.security.delivery_tokens import DELIVERY_PURPOSE, delivery_token
from newsletter.security.signing import sign
from newsletter.settings import reset_settings
from newsletter.tracking.models import TrackingEvent
from newsletter.tracking.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    encode_public_key,
    sign_payload,
)
from newsletter.votes.models import Vote
from newsletter.web.bodylimit import DEFAULT_LIMIT
from subscribers.models import Subscriber, SubscriberStatus, Suppression
from tests.tracking.conftest import BROWSER, World, build_world

TOO_BIG = DEFAULT_LIMIT + 1
TOKEN_CHARS = string.ascii_letters + string.digits + "-_.~%"


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    from newsletter.web.app import create_app

    # raise_server_exceptions=False: a 5xx is an answer to assert on, not a test error.
    with TestClient(
        create_app(), headers={"User-Agent": BROWSER}, raise_server_exceptions=False
    ) as test_client:
        yield test_client


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", encode_public_key(key))
    reset_settings()
    return key


def recorded(db: Session) -> tuple[int, int, int, int]:
    """Tracking events, votes, suppressions, subscribers no longer active."""
    db.expire_all()
    return (
        db.scalar(select(func.count()).select_from(TrackingEvent)) or 0,
        db.scalar(select(func.count()).select_from(Vote)) or 0,
        db.scalar(select(func.count()).select_from(Suppression)) or 0,
        db.scalar(
            select(func.count())
            .select_from(Subscriber)
            .where(Subscriber.status != SubscriberStatus.ACTIVE)
        )
        or 0,
    )


# --- oversized bodies ---------------------------------------------------------------------------


READS_THE_BODY = ["/api/subscribe", "/subscribe", "/login"]
PUBLIC_POSTS = [*READS_THE_BODY, "/u/x", "/p/x/erase", "/v/x/y/0"]


@pytest.mark.parametrize("path", PUBLIC_POSTS)
def test_an_oversized_body_is_refused_with_413_before_it_is_read(
    client: TestClient, path: str
) -> None:
    declared = client.post(
        path, content=b"a" * TOO_BIG, headers={"Content-Type": "application/json"}
    )
    assert declared.status_code == 413, declared.text
    assert "larger than" in declared.text

    # Chunked (no Content-Length): counted as it arrives. A route that refuses the request
    # without reading its body (a bad token) never sees it at all.
    chunks = iter([b"email=" + b"a" * 65536] * (TOO_BIG // 65536 + 2))
    streamed = client.post(
        path, content=chunks, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    if path in READS_THE_BODY:
        assert streamed.status_code == 413, streamed.text
    else:
        assert streamed.status_code in (404, 413), streamed.status_code


def test_the_json_api_refuses_an_oversized_body_too(db_url: str, client: TestClient) -> None:
    with transaction() as session:
        admin = create_user(session, "admin@example.com", "correct horse battery", Role.ADMIN)
        token = issue_api_token(session, admin)
    body = json.dumps({"email": "a" * TOO_BIG + "@example.com"})
    response = client.post(
        "/api/v1/subscribers", content=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(("application/json", "text/plain"))


def test_a_chunked_oversized_webhook_post_is_413_and_stores_nothing(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    from newsletter.tracking.webhook import MAX_BODY_BYTES

    chunks = iter([b"[" + b" " * (1 << 20)] + [b" " * (1 << 20)] * (MAX_BODY_BYTES >> 20))
    response = client.post(
        "/webhooks/sendgrid", content=chunks, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert recorded(db) == (0, 0, 0, 0)


def test_routes_that_need_a_big_body_still_get_it(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    """The webhook's limit is SendGrid's batch size, not the 1 MB of a form."""
    events = [
        {
            "email": "reader0@example.com",
            "timestamp": int(time.time()) - 60,
            "event": "processed",
            "sg_event_id": f"event-{i}",
            "delivery_id": str(world.deliveries[0]),
            "issue_id": str(world.issue_id),
            "padding": "x" * 400,
        }
        for i in range(3000)
    ]
    body = json.dumps(events).encode()
    assert len(body) > DEFAULT_LIMIT
    stamp = str(int(time.time()))
    response = client.post(
        "/webhooks/sendgrid",
        content=body,
        headers={
            SIGNATURE_HEADER: sign_payload(signing_key, stamp, body),
            TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 3000


# --- ids out of any column's range ----------------------------------------------------------------

HUGE = str(2**63)


def test_an_id_beyond_64_bits_is_a_4xx_not_a_crash(
    db_url: str, client: TestClient, admin: TestClient, editor: TestClient
) -> None:
    with transaction() as session:
        user = create_user(session, "api@example.com", "correct horse battery", Role.ADMIN)
        token = issue_api_token(session, user)
    bearer = {"Authorization": f"Bearer {token}"}
    for path in (f"/api/v1/issues/{HUGE}", f"/api/v1/issues/{HUGE}/stats"):
        response = client.get(path, headers=bearer)
        assert response.status_code in (404, 422), (path, response.status_code)
    erase = client.delete(f"/api/v1/subscribers/{HUGE}", headers=bearer)
    assert erase.status_code in (404, 422)
    page = client.get("/api/v1/subscribers", params={"before": HUGE}, headers=bearer)
    assert page.status_code in (200, 422)
    for path in (f"/admin/subscribers/{HUGE}", f"/admin/suppressions?before={HUGE}"):
        assert admin.get(path).status_code in (200, 404, 422), path
    for path in (f"/admin/issues/{HUGE}", f"/admin/issues/{HUGE}/stats"):
        assert editor.get(path).status_code in (404, 422), path


# --- forged and replayed tokens -----------------------------------------------------------------


def token_urls(token: str, world: World) -> list[tuple[str, str]]:
    slug = world.slugs[0]
    return [
        ("GET", f"/o/{token}.gif"),
        ("GET", f"/c/{token}/m0"),
        ("GET", f"/v/{token}/{slug}/0"),
        ("POST", f"/v/{token}/{slug}/1"),
        ("GET", f"/u/{token}"),
        ("POST", f"/u/{token}"),
        ("GET", f"/p/{token}"),
        ("POST", f"/p/{token}/pause"),
        ("POST", f"/p/{token}/tracking-off"),
        ("POST", f"/p/{token}/erase"),
        ("GET", f"/p/{token}/export.json"),
        ("GET", f"/confirm/{token}"),
        ("POST", f"/confirm/{token}"),
    ]


def altered(token: str, position: int, char: str) -> str:
    position %= len(token)
    replaced = token[:position] + char + token[position + 1 :]
    return replaced if replaced != token else token[:position] + token[position + 1 :]


@given(data=st.data())
def test_forged_altered_and_misused_tokens_change_nothing_anywhere(
    client: TestClient, world: World, db: Session, data: st.DataObject
) -> None:
    good = world.token(0)
    token = data.draw(
        st.one_of(
            st.text(TOKEN_CHARS, min_size=1, max_size=120),
            # Whatever a stranger types into a link: any character, percent-encoded by the client.
            st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60).map(
                lambda t: quote(t, safe="")
            ),
            st.builds(altered, st.just(good), st.integers(0, 500), st.sampled_from(TOKEN_CHARS)),
            st.sampled_from(
                [
                    sign("confirm", str(world.deliveries[0])),  # another purpose's token
                    sign("subscriber", "987654"),  # genuine, for nobody on the list
                    delivery_token(987654, "nobody"),  # a genuine signature, no such delivery
                    good.partition(".")[0] + "." + world.token(1).rpartition(".")[2],
                ]
            ),
        )
    )
    if token in {world.token(i) for i in range(len(world.deliveries))}:
        return  # an edit that happens to give back a real token
    for method, url in token_urls(token, world):
        response = client.request(method, url, follow_redirects=False)
        assert response.status_code < 500, (method, url, response.status_code)
        # 307: "/u/0%2F" is "/u/0/", which the router redirects to "/u/0" (recording nothing).
        assert response.status_code in (307, 400, 404, 405, 410, 422), (method, url)
    assert recorded(db) == (0, 0, 0, 0)


def test_a_replayed_unsubscribe_vote_and_pixel_count_once(
    client: TestClient, world: World, db: Session
) -> None:
    token = world.token(0)
    slug = world.slugs[0]
    for _ in range(3):
        assert client.post(f"/v/{token}/{slug}/1").status_code == 200
        assert client.post(f"/u/{token}").status_code == 200
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Vote)) == 1
    assert db.scalar(select(func.count()).select_from(Suppression)) == 1
    unsubscribed = db.get(Subscriber, world.subscribers[0])
    assert unsubscribed is not None and unsubscribed.status is SubscriberStatus.UNSUBSCRIBED
    others = [db.get(Subscriber, s) for s in world.subscribers[1:]]
    assert all(s is not None and s.status is SubscriberStatus.ACTIVE for s in others)


# --- webhook posts that are not SendGrid's -------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["open", "click", "bounce", "spamreport", "weird"]) | st.text(),
        "sg_event_id": st.text(max_size=30) | st.integers(),
        "delivery_id": st.text(max_size=25) | st.integers(min_value=-(2**70), max_value=2**70),
        "issue_id": st.text(max_size=25) | st.integers(),
        "timestamp": st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=10),
        "email": st.text(max_size=40),
        "type": st.text(max_size=10),
        "sg_machine_open": json_values,
        "url": st.text(max_size=40),
    },
)


@given(body=st.lists(event_like, max_size=5) | json_values)
def test_signed_bodies_of_any_shape_are_stored_or_refused_never_a_5xx(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, body: object
) -> None:
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    headers = {SIGNATURE_HEADER: sign_payload(signing_key, stamp, raw), TIMESTAMP_HEADER: stamp}
    response = client.post("/webhooks/sendgrid", content=raw, headers=headers)
    assert response.status_code in (200, 400), (response.status_code, response.text[:300])


@given(
    signature=st.text(max_size=120),
    stamp=st.text(max_size=20),
    body=st.binary(max_size=300),
)
def test_unsigned_or_badly_signed_webhook_posts_are_400_and_store_nothing(
    client: TestClient,
    world: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    signature: str,
    stamp: str,
    body: bytes,
) -> None:
    headers = {SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: stamp}
    try:
        response = client.post("/webhooks/sendgrid", content=body, headers=headers)
    except (UnicodeEncodeError, ValueError):
        return  # not a header an HTTP client can even send
    assert response.status_code == 400
    assert recorded(db)[0] == 0


def test_a_nul_character_in_an_event_does_not_block_its_batch(
    client: TestClient, world: World, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    """PostgreSQL cannot store NUL; a 5xx would make SendGrid retry the batch for ever."""
    events = [
        {
            "event": "click",
            "sg_event_id": f"nul-{i}",
            "timestamp": int(time.time()) - 60,
            "delivery_id": str(world.deliveries[0]),
            "issue_id": str(world.issue_id),
            "url": "https://aitoolverdicts.example/\x00evil",
            "useragent": "Mozilla\x00/5.0",
        }
        for i in range(2)
    ]
    raw = json.dumps(events).encode()
    stamp = str(int(time.time()))
    headers = {SIGNATURE_HEADER: sign_payload(signing_key, stamp, raw), TIMESTAMP_HEADER: stamp}
    response = client.post("/webhooks/sendgrid", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 2
    db.expire_all()
    stored = list(db.scalars(select(TrackingEvent)))
    assert len(stored) == 2
    assert all("\x00" not in json.dumps(e.raw) for e in stored)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        # Not strict JSON, or numbers PostgreSQL's json cannot hold: refused, not a 500 that
        # SendGrid would retry for good.
        (b'[{"event": "open", "sg_event_id": "a", "x": Infinity}]', 400),
        (b'[{"event": "open", "sg_event_id": "b", "x": NaN}]', 400),
        (b'[{"event": "open", "sg_event_id": "c", "x": 1e999}]', 400),
        # Another system's custom args on the same SendGrid account: kept, unmatched.
        (b'[{"event": "open", "sg_event_id": "d", "delivery_id": "99999999999"}]', 200),
        (b'[{"event": "open", "sg_event_id": "e", "delivery_id": 2147483648}]', 200),
    ],
)
def test_webhook_events_out_of_any_columns_range_are_refused_or_kept_unmatched(
    client: TestClient,
    world: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    raw: bytes,
    status: int,
) -> None:
    stamp = str(int(time.time()))
    headers = {SIGNATURE_HEADER: sign_payload(signing_key, stamp, raw), TIMESTAMP_HEADER: stamp}
    response = client.post("/webhooks/sendgrid", content=raw, headers=headers)
    assert response.status_code == status, response.text
    db.expire_all()
    rows = list(db.scalars(select(TrackingEvent)))
    assert len(rows) == (1 if status == 200 else 0)
    assert all(row.delivery_id is None for row in rows)


def test_a_token_with_characters_no_token_has_is_a_404_not_a_crash(
    client: TestClient, world: World
) -> None:
    """hmac.compare_digest raises TypeError on non-ASCII text; a link is what anyone types."""
    for path in ("/confirm/0.%C2%80", "/u/%C3%A9.%C3%A9", "/p/x.%E2%80%A8", "/v/%C2%80.x/s/0"):
        assert client.get(path).status_code == 404, path


@pytest.mark.parametrize("value", [str(2**31), str(2**63), "0", "²", "٣"])
def test_a_signed_token_naming_an_impossible_delivery_is_a_404(
    client: TestClient, world: World, value: str
) -> None:
    """Correctly signed (say, by another deployment sharing the secret) yet no delivery id this
    database can hold: refused like a forged token, never an overflow in a query."""
    token = sign(DELIVERY_PURPOSE, value)
    for path in (f"/o/{token}.gif", f"/c/{token}/m0", f"/u/{token}", f"/p/{token}"):
        assert client.get(path).status_code == 404, path


@pytest.mark.parametrize("custom_arg", ["³", "٣", "1²"])
def test_a_delivery_id_in_unicode_digits_is_kept_unmatched_not_a_5xx(
    client: TestClient,
    world: World,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    custom_arg: str,
) -> None:
    """'³'.isdigit() is true and int('³') fails: found by the body fuzz above (a 500 here
    makes SendGrid retry the batch for ever)."""
    events = [
        {
            "event": "open",
            "sg_event_id": "unicode-digit",
            "timestamp": int(time.time()) - 60,
            "delivery_id": custom_arg,
        }
    ]
    raw = json.dumps(events).encode()
    stamp = str(int(time.time()))
    headers = {SIGNATURE_HEADER: sign_payload(signing_key, stamp, raw), TIMESTAMP_HEADER: stamp}
    response = client.post("/webhooks/sendgrid", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    db.expire_all()
    [stored] = list(db.scalars(select(TrackingEvent)))
    assert stored.delivery_id is None

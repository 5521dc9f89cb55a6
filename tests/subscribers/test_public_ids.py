"""Public ids: 16 random bytes each, a batch's sharing their first 6 (so an import's batch
lands in one place of the unique index), and nothing in them that tells when they were made."""

from __future__ import annotations

import base64
import re
import secrets

import pytest

from subscribers.models import new_public_id, new_public_ids

URL_SAFE = re.compile(r"[A-Za-z0-9_-]{22}")


def _raw(public_id: str) -> bytes:
    return base64.urlsafe_b64decode(public_id + "==")


def test_a_batch_shares_six_random_bytes_and_keeps_ten_of_its_own() -> None:
    ids = new_public_ids(5000)
    assert all(URL_SAFE.fullmatch(i) for i in ids)
    raw = [_raw(i) for i in ids]
    assert all(len(r) == 16 for r in raw)
    assert {r[:6] for r in raw} == {raw[0][:6]}
    assert len({r[6:] for r in raw}) == 5000


def test_the_shared_part_is_random_not_a_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two calls in the same millisecond, and calls whose random source is pinned: the shared
    # bytes are whatever the random source gave, in order, and nothing else.
    first, second = new_public_ids(2), new_public_ids(2)
    assert _raw(first[0])[:6] != _raw(second[0])[:6]
    pool = bytes(range(26))
    monkeypatch.setattr(secrets, "token_bytes", lambda n: pool[:n])
    pinned = [_raw(i) for i in new_public_ids(2)]
    assert pinned == [pool[:6] + pool[6:16], pool[:6] + pool[16:26]]


def test_a_single_id_is_sixteen_random_bytes() -> None:
    ids = {new_public_id() for _ in range(200)}
    assert len(ids) == 200 and all(URL_SAFE.fullmatch(i) for i in ids)
    assert len({_raw(i)[:6] for i in ids}) == 200

"""Addresses: email-validator decides; the fast path never accepts what the library refuses."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from subscribers.addresses import InvalidAddress, _plain, address_hash, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Bob.Smith@Example.COM ", "bob.smith@example.com"),
        ("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
        ("JOSÉ@Exämple.com", "josé@exämple.com"),
        ("x@xn--bcher-kva.com", "x@bücher.com"),
    ],
)
def test_normalise_trims_validates_and_lowercases(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "missing"),
        ("bob", "@-sign"),
        ("bob@@example.com", ""),
        ("bob..smith@example.com", "two periods"),
        ("bob@localhost", ""),
        ("bob@example.test", "special-use"),
        ("bob@example", ""),
        ("bob smith@example.com", ""),
    ],
)
def test_invalid_addresses_are_refused_with_the_library_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidAddress) as exc:
        normalise(raw)
    assert reason in str(exc.value)


_ATOM = st.text(alphabet="abcXYZ019_%+-.", min_size=1, max_size=70)
_LABEL = st.text(alphabet="abcQ09-", min_size=1, max_size=66)
_TLD = st.sampled_from(["com", "io", "TEST", "local", "x", "c0m", "onion", "arpa", "museum"])


@settings(max_examples=600, deadline=None)
@given(local=_ATOM, labels=st.lists(_LABEL, min_size=1, max_size=3), tld=_TLD)
def test_fast_path_accepts_only_what_email_validator_accepts_unchanged(
    local: str, labels: list[str], tld: str
) -> None:
    address = f"{local}@{'.'.join([*labels, tld])}"
    if not _plain(address):
        return
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AssertionError(f"fast path accepted {address!r}, library says {exc}") from None
    assert result.normalized.lower() == address.lower()


def test_hash_is_keyed_and_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.settings import reset_settings

    first = address_hash("bob@example.com")
    assert first == address_hash("bob@example.com")
    assert len(first) == 64
    monkeypatch.setenv("NEWSLETTER_SUPPRESSION_KEY", "another key")
    reset_settings()
    assert address_hash("bob@example.com") != first

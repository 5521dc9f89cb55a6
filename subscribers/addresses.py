"""Email addresses: validation, the normalised form the list is keyed on, and its one-way hash."""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache
from urllib.parse import quote

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from newsletter.errors import Refused
from newsletter.settings import get_settings


class InvalidAddress(Refused):
    """The text is not an email address; the message says why, in the library's words."""


# email-validator is the authority, but at ~40 µs an address it caps a large import near
# 25,000 rows/s. This pattern accepts only a plain subset (ASCII dot-atom, LDH labels, an
# alphabetic TLD, no punycode) that the library accepts unchanged apart from case; anything
# else goes to the library. tests/subscribers/test_addresses.py holds the two to that.
_PLAIN = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
    re.IGNORECASE | re.ASCII,
)
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)
# Every special-use name is one label today, so looking at the TLD suffices; if the library
# ever lists a longer one, every ending of the domain is checked instead.
_SPECIAL_USE_SINGLE_LABEL = all("." not in name for name in _SPECIAL_USE)


def _plain(address: str) -> bool:
    if len(address) > 254 or not _PLAIN.fullmatch(address) or "--" in address:
        return False
    local, _, domain = address.rpartition("@")
    if len(local) > 64:
        return False
    domain = domain.lower()
    # The library refuses special-use names as a whole domain or as its ending.
    if _SPECIAL_USE_SINGLE_LABEL:
        return domain.rpartition(".")[2] not in _SPECIAL_USE
    labels = domain.split(".")
    return not any(".".join(labels[i:]) in _SPECIAL_USE for i in range(len(labels)))


def normalise(raw: str) -> str:
    """The form stored and compared: trimmed, validated (no DNS), lower-cased.

    Lower-casing the local part too is what every list tool does: nobody runs two mailboxes
    that differ only by case, and duplicates that do are what imports must merge.
    """
    text = raw.strip()
    if not text:
        raise InvalidAddress("missing email address")
    if _plain(text):
        return text.lower()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    return result.normalized.lower()


@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"suppression:" + secret.encode()).digest()


def address_hash(email: str) -> str:
    """HMAC-SHA256 of the normalised address, hex.

    Keyed rather than a plain SHA-256: addresses are guessable, so an unkeyed hash of an erased
    person's address could be confirmed by anyone holding a copy of the database and a list of
    candidates, which would undo the erasure. The price is that the key must never change
    (NEWSLETTER_SUPPRESSION_KEY, defaulting to NEWSLETTER_SECRET_KEY).
    """
    settings = get_settings()
    secret = settings.newsletter_suppression_key or settings.newsletter_secret_key
    return hmac.digest(_key(secret), email.encode(), "sha256").hex()


def scrub(text: str, email: str, replacement: str = "[erased]") -> str:
    """`text` without the address in any letter case, nor its percent-encoded form (a click
    URL): what erasure leaves of a bounce reason or an error message."""
    forms = {email, quote(email, safe=""), quote(email)}
    pattern = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
    text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    # The mailbox name alone too ("alan.reader3 mailbox busy"): it names the person as well.
    # As a whole word only, and not a short generic one that would blank other words.
    local = email.rpartition("@")[0]
    if len(local) >= 4:
        text = re.sub(rf"(?<![\w.+-]){re.escape(local)}(?![\w+-])", replacement, text, flags=re.I)
    return text

"""Password hashing for staff accounts (Argon2id through argon2-cffi)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from newsletter.errors import Refused

MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the account does not exist keeps a login for an unknown
    address as slow as one for a known address, so timing does not reveal who has an account.
    Made on first use, not at import: every command that imports accounts paid 0.3-0.5 s."""
    return _hasher.hash("no such account: timing equaliser")


class WeakPasswordError(Refused):
    pass


def check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if password.strip() != password:
        raise WeakPasswordError("password must not start or end with whitespace")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)

"""Staff accounts: create, authenticate, change roles, API tokens.

Services never commit: the CLI command or the web request owns the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from newsletter.accounts import repository
from newsletter.accounts.models import Role, User, new_session_key
from newsletter.accounts.passwords import hash_password, needs_rehash, verify_password
from newsletter.errors import Refused

API_TOKEN_PREFIX = "nlt_"  # noqa: S105 - a recognisable prefix lets secret scanners spot leaks


class AccountError(Refused):
    """A refused account change, with a message fit for the person who asked."""


def normalise_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise AccountError(f"{raw!r} is not a valid email address: {exc}") from exc


def parse_role(raw: str) -> Role:
    try:
        return Role(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise AccountError(f"unknown role {raw!r}: expected one of {allowed}") from None


def create_user(session: Session, email: str, password: str, role: Role) -> User:
    address = normalise_email(email)
    if repository.get_by_email(session, address) is not None:
        raise AccountError(f"a user {address} already exists")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise AccountError(str(exc)) from exc
    return repository.add(session, address, hashed, role)


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user when the password matches, else None (same cost whether the account exists)."""
    try:
        address = normalise_email(email)
    except AccountError:
        address = email.strip().lower()
    user = repository.get_by_email(session, address)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.flush()
    return user


def end_sessions(session: Session, user: User) -> None:
    """Sign the user out everywhere: every session cookie issued so far stops working."""
    user.session_key = new_session_key()
    session.flush()


def session_is_current(user: User, key: object) -> bool:
    return isinstance(key, str) and hmac.compare_digest(key.encode(), user.session_key.encode())


def set_password(session: Session, user: User, password: str) -> None:
    """A new password, and every session signed in with the old one ends."""
    try:
        user.password_hash = hash_password(password)
    except ValueError as exc:
        raise AccountError(str(exc)) from exc
    end_sessions(session, user)


def set_role(session: Session, user: User, role: Role) -> None:
    """A new role; the user's sessions end, so no page opened under the old role stays live."""
    if user.role is Role.ADMIN and role is not Role.ADMIN and repository.count_admins(session) <= 1:
        raise AccountError("the last admin cannot be demoted: make another admin first")
    if user.role is not role:
        user.role = role
        end_sessions(session, user)


def remove_user(session: Session, user: User) -> None:
    if user.role is Role.ADMIN and repository.count_admins(session) <= 1:
        raise AccountError("the last admin cannot be removed")
    repository.delete(session, user)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(session: Session, user: User) -> str:
    """A new API token for the user; the previous one stops working. Shown once, stored hashed."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.api_token_hash = _token_hash(token)
    session.flush()
    return token


def revoke_api_token(session: Session, user: User) -> None:
    user.api_token_hash = None
    session.flush()


def user_for_api_token(session: Session, token: str) -> User | None:
    if not token.startswith(API_TOKEN_PREFIX) or len(token) > 200:
        return None
    return repository.get_by_token_hash(session, _token_hash(token))


def find(session: Session, email: str) -> User:
    user = repository.get_by_email(session, normalise_email(email))
    if user is None:
        raise AccountError(f"no user {email.strip()}")
    return user


def get(session: Session, user_id: int) -> User | None:
    return repository.get(session, user_id)


def list_all(session: Session) -> list[User]:
    """Staff accounts by address."""
    return repository.list_all(session)

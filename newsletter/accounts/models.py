"""Staff accounts for the web app: editors and admins."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.orm import Base, UTCDateTime, str_enum, utcnow


class Role(enum.StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"


def new_session_key() -> str:
    return secrets.token_urlsafe(32)


class User(Base):
    __tablename__ = "users"
    # A session names its user's id: a removed user's id must never name a new user.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Normalised (trimmed, lower-cased) so a login is case-insensitive by construction.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    # Only a SHA-256 of the API token is kept: a leaked database gives no usable token.
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Every session cookie carries it; a new one (logout, password or role change) ends every
    # session signed in before, copied cookies included. Random, not a counter, so an account
    # made later under a reused id never matches an old cookie.
    session_key: Mapped[str] = mapped_column(String(64), default=new_session_key)

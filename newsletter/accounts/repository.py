"""All SQL about staff accounts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.accounts.models import Role, User


def get(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_by_email(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == email)).one_or_none()


def get_by_token_hash(session: Session, token_hash: str) -> User | None:
    return session.scalars(select(User).where(User.api_token_hash == token_hash)).one_or_none()


def list_all(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def count_admins(session: Session) -> int:
    return session.scalar(select(func.count()).where(User.role == Role.ADMIN)) or 0


def add(session: Session, email: str, password_hash: str, role: Role) -> User:
    user = User(email=email, password_hash=password_hash, role=role)
    session.add(user)
    session.flush()
    return user


def delete(session: Session, user: User) -> None:
    session.delete(user)
    session.flush()

"""Facts about this installation kept in its database (`instance_state`): one value per name.

What lives here must travel with the data, not with a process's environment: the fingerprint
of the key the suppression list is hashed with (subscribers/keys.py), and the highest ids whose
links were signed before links named a public id (newsletter/security/delivery_tokens.py).
"""

from __future__ import annotations

from sqlalchemy import Connection, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.orm import Base, upsert_insert


class InstanceState(Base):
    __tablename__ = "instance_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def get_value(db: Session | Connection, name: str) -> str | None:
    value: str | None = db.execute(
        select(InstanceState.value).where(InstanceState.name == name)
    ).scalar_one_or_none()
    return value


def legacy_max_id(db: Session | Connection, name: str) -> int:
    """The highest id of a table whose links were signed the old way (0: none were)."""
    value = get_value(db, name)
    return int(value) if value is not None and value.isdigit() else 0


def set_value(session: Session, name: str, value: str) -> None:
    """An upsert, not a read-then-write: two processes setting the same name at once (two
    schedulers' heartbeats) must not fail on the key the first one just wrote."""
    stmt = upsert_insert(session, InstanceState).values(name=name, value=value)
    session.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"value": stmt.excluded.value})
    )


def compare_and_set(session: Session, name: str, expected: str | None, value: str) -> bool:
    """Set `name` to `value` only if it still holds `expected` (None: absent); True if this
    call did it. Two processes racing for the same change: exactly one wins (a daily job run
    by two schedulers)."""
    if expected is None:
        stmt = upsert_insert(session, InstanceState).values(name=name, value=value)
        # RETURNING, not rowcount: an INSERT's rowcount is -1 through SQLAlchemy on psycopg.
        stmt = stmt.on_conflict_do_nothing(index_elements=["name"]).returning(InstanceState.name)
        return session.execute(stmt).first() is not None
    result = session.execute(
        update(InstanceState)
        .where(InstanceState.name == name, InstanceState.value == expected)
        .values(value=value)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]

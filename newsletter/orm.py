"""The declarative base shared by every domain's models.

A naming convention makes constraint names identical on SQLite and PostgreSQL, so Alembic
migrations can name what they alter.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, DateTime, Enum, MetaData, Table, TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both engines.

    SQLite stores no offset, so values come back naive; this type refuses naive input and
    hands back aware UTC datetimes everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def str_enum(enum_cls: type[enum.Enum], name: str) -> Enum:
    """A status column stored as its value, with a CHECK constraint on both engines."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda cls: [m.value for m in cls],
        validate_strings=True,
    )


def upsert_insert(session: Session, table: Any) -> Any:
    """An INSERT that can say ON CONFLICT: spelled the same on SQLite and PostgreSQL, but
    built by each dialect's own `insert()`."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def unnest_insert(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], tail: str
) -> CursorResult[Any]:
    """`INSERT INTO table (columns) SELECT * FROM unnest(one array per column) <tail>`, for
    PostgreSQL: many rows in a statement whose text is the same whatever their number.

    A multi-row `VALUES` list is a new query text for every batch, thousands of placeholders
    long, and psycopg parses (and SQLAlchemy re-renders) each one in Python: a quarter of the
    webhook's CPU at 1,000 events a POST (py-spy, 2026-12-04). Here the text never changes, so
    psycopg parses it once and prepares it. Values go through each column's own bind processor
    (enums to their value, UTC times, JSON), as they would through SQLAlchemy. Every row has
    the keys of the first."""
    dialect = connection.dialect
    names = list(rows[0])
    arrays: list[list[Any]] = []
    casts: list[str] = []
    for name in names:
        column = table.c[name]
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        values = [row[name] for row in rows]
        arrays.append([process(v) for v in values] if process is not None else values)
        casts.append(f"%s::{column.type.compile(dialect=dialect)}[]")
    return connection.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"SELECT * FROM unnest({', '.join(casts)}) {tail}",
        tuple(arrays),
    )

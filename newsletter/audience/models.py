"""A segment: a saved, named filter over the list (issue 17). Its rule is kept as JSON
(audience/rules.py reads and checks it) and counted live: who is in it is decided each time it
is read, never stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.orm import Base, UTCDateTime, utcnow


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique as typed after trimming; the lookups by name ignore case (service.find).
    name: Mapped[str] = mapped_column(String(100), unique=True)
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

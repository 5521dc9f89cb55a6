"""The list as CSV, one shape for the CLI and the admin page (a re-import reads it back)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from subscribers import listing, service
from subscribers.csv_reading import spreadsheet_safe
from subscribers.models import SubscriberStatus

COLUMNS = [
    "email",
    "name",
    "status",
    "paused",
    "source",
    "consent_at",
    "consent_method",
    "consent_ip",
    "confirmed_at",
    "unsubscribed_at",
    "created_at",
]


def csv_rows(
    session: Session,
    status: SubscriberStatus | None = None,
    *,
    search: str | None = None,
    ids: Sequence[int] | None = None,
    within: Select[Any] | None = None,
) -> Iterator[list[str]]:
    """The header, then one row per subscriber, streamed (a million rows never sit in memory).

    Every cell that a stranger could have typed goes through spreadsheet_safe: a name such as
    "=HYPERLINK(…)" must not run as a formula in the admin's spreadsheet."""
    yield COLUMNS
    rows = listing.list_subscribers(session, status=status, search=search, ids=ids, within=within)
    for subscriber in rows:
        data = service.to_json(subscriber)
        consent = data["consent"]
        yield [
            spreadsheet_safe(data["email"]),
            spreadsheet_safe(data["name"]),
            data["status"],
            "yes" if data["paused"] else "no",
            spreadsheet_safe(data["source"] or ""),
            consent["at"] or "",
            consent["method"] or "",
            consent["ip"] or "",
            data["confirmed_at"] or "",
            data["unsubscribed_at"] or "",
            data["created_at"],
        ]

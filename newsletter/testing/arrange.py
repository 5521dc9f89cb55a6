"""Arranging a send without the steps before it: many active subscribers and an approved
issue whose frozen render is filled directly (what `issues.service.approve` produces).

Shared by the sending tests and the send and fault benchmarks, which need the same starting
point at 10 or 1,000,000 subscribers. The caller commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueStatus
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus

CHUNK = 10_000


def add_subscribers(
    session: Session,
    count: int,
    *,
    prefix: str = "reader",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    opt_out_every: int = 0,
    source: str = "test",
) -> list[str]:
    """`count` subscribers {prefix}0@mail.example.com …; every `opt_out_every`-th one (from the
    first) opted out of tracking. Inserted in chunks, so a million rows never sit in memory."""
    now = datetime.now(UTC)
    emails = [f"{prefix}{i}@mail.example.com" for i in range(count)]

    def rows(start: int) -> Iterator[dict[str, Any]]:
        for i in range(start, min(start + CHUNK, count)):
            yield {
                "email": emails[i],
                "email_hash": address_hash(emails[i]),
                "name": f"Reader {i}",
                "status": status,
                "source": source,
                "consent_method": source,
                "paused": False,
                "tracking_opt_out": bool(opt_out_every) and i % opt_out_every == 0,
                "created_at": now,
                "updated_at": now,
                "confirmed_at": now,
            }

    for start in range(0, count, CHUNK):
        session.execute(insert(Subscriber), list(rows(start)))
    return emails


def add_frozen_issue(
    session: Session,
    *,
    html: str,
    text: str,
    untracked_html: str,
    week: str = "2026-W47",
    status: IssueStatus = IssueStatus.APPROVED,
    approved_by: str = "editor@nl.example",
) -> int:
    """An issue whose render is frozen, ready for `start_send`; returns its id."""
    now = datetime.now(UTC)
    issue = Issue(
        week=week,
        status=status,
        cutoff_at=now,
        rendered_subject="AI Tool Verdicts, week 47",
        rendered_preheader="Eight matchups",
        rendered_html=html,
        rendered_text=text,
        rendered_untracked_html=untracked_html,
        rendered_untracked_text=text,
        rendered_at=now,
        approved_at=now,
        approved_by=approved_by,
    )
    session.add(issue)
    session.flush()
    return issue.id

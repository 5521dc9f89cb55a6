"""What a reader's own link records: opens, clicks, votes and unsubscribes (first-party).

SendGrid's events are tracking/ingest.py's; the numbers editors read are tracking/stats.py's.

Services flush, never commit: the web request or CLI command owns the transaction.
A subscriber who opted out of tracking (or NEWSLETTER_TRACKING=off) leaves no open or click
behind even if an old tracked email is opened: the untracked render has no pixel or rewritten
link, and these endpoints are the second line of that promise. Votes and unsubscribes are
actions the reader asked for, so they are always recorded.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from newsletter.instance import legacy_max_id
from newsletter.issues import service as issues
from newsletter.matchups import service as matchups
from newsletter.matchups.models import Matchup
from newsletter.security.delivery_tokens import LEGACY_MAX_DELIVERY_ID, DeliveryLink
from newsletter.settings import get_settings
from newsletter.tracking import repository
from newsletter.tracking.machines import is_machine_hit
from newsletter.tracking.models import EventType
from newsletter.tracking.repository import DeliveryInfo
from newsletter.votes import service as votes
from newsletter.votes.panel import ReaderRecord, ReaderVote, reader_record

FIRST_PARTY = "first_party"
SENDGRID = "sendgrid"  # the source of events from the Event Webhook (tracking/ingest.py)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def tracking_allowed(info: DeliveryInfo) -> bool:
    """Opens and clicks may be kept for this delivery (the instance tracks; the reader has not
    opted out)."""
    return get_settings().newsletter_tracking and not info.tracking_opt_out


def _delivery(session: Session, delivery: int | DeliveryLink) -> DeliveryInfo | None:
    info = repository.delivery_infos(session, [_id(delivery)]).get(_id(delivery))
    return info if info is not None and _holds(session, delivery, info) else None


def _id(delivery: int | DeliveryLink) -> int:
    return delivery.delivery_id if isinstance(delivery, DeliveryLink) else delivery


def _holds(db: Session | Connection, delivery: int | DeliveryLink, info: DeliveryInfo) -> bool:
    """A link from outside acts only on the delivery of the person it was made for; a plain id
    comes from our own code (the CLI, tests, the demo) and is taken as it is."""
    if not isinstance(delivery, DeliveryLink):
        return True
    if delivery.public_id is None:
        return delivery.holds_for(info.public_id, legacy_max_id(db, LEGACY_MAX_DELIVERY_ID))
    return delivery.holds_for(info.public_id, 0)


def _machine(
    info: DeliveryInfo, user_agent: str | None, client_ip: str | None, now: datetime
) -> bool:
    return is_machine_hit(
        user_agent,
        client_ip,
        sent_at=info.sent_at,
        now=now,
        window_seconds=get_settings().newsletter_machine_window_seconds,
    )


# --- first-party hits -------------------------------------------------------------------------


# A hit is read first and written after: `open_hit`/`click_hit` decide the answer and the
# event row without writing, and `store_hit_events` writes the rows. The pixel and click
# endpoints decide a whole batch of hits and then write all their rows at once, so the database's
# write lock (SQLite has one) is held only for the INSERT and COMMIT (see hits.py).
HitEvent = dict[str, Any]


def open_hit(
    db: Session | Connection,
    delivery: int | DeliveryLink,
    *,
    user_agent: str | None,
    client_ip: str | None,
    now: datetime | None = None,
) -> tuple[bool, HitEvent | None]:
    """A pixel fetch: (False if the delivery does not exist, the caller answers 404; the event
    to record, None when the reader is not tracked)."""
    target = repository.hit_target(db, _id(delivery))
    if target is None or not _holds(db, delivery, target.delivery):
        return False, None
    info = target.delivery
    if not tracking_allowed(info):
        return True, None
    at = _now(now)
    return True, {
        "type": EventType.OPENED,
        "source": FIRST_PARTY,
        "provider_type": "pixel",
        "delivery_id": info.id,
        "issue_id": info.issue_id,
        "matchup_id": None,
        "link_key": None,
        "machine": _machine(info, user_agent, client_ip, at),
        "occurred_at": at,
        "received_at": at,
        "user_agent": _agent(info, user_agent),
    }


def click_hit(
    db: Session | Connection,
    delivery: int | DeliveryLink,
    link_key: str,
    *,
    user_agent: str | None,
    client_ip: str | None,
    now: datetime | None = None,
) -> tuple[str | None, HitEvent | None]:
    """A click: (the URL to redirect to, or None when the delivery is unknown or its issue has
    no such link: the redirect only ever goes to links the issue really contains; the event to
    record, None when there is nothing to record)."""
    target = repository.hit_target(db, _id(delivery), link_key)
    if target is None or target.link_url is None or not _is_web_url(target.link_url):
        return None, None
    if not _holds(db, delivery, target.delivery):
        return None, None
    info = target.delivery
    if not tracking_allowed(info):
        return target.link_url, None
    at = _now(now)
    return target.link_url, {
        "type": EventType.CLICKED,
        "source": FIRST_PARTY,
        "provider_type": "click",
        "delivery_id": info.id,
        "issue_id": info.issue_id,
        "matchup_id": target.link_matchup_id,
        "link_key": link_key,
        "machine": _machine(info, user_agent, client_ip, at),
        "occurred_at": at,
        "received_at": at,
        "user_agent": _agent(info, user_agent),
    }


def store_hit_events(db: Session | Connection, events: Sequence[HitEvent]) -> None:
    repository.add_events(db, events)


def record_open(
    db: Session | Connection,
    delivery_id: int,
    *,
    user_agent: str | None,
    client_ip: str | None,
    now: datetime | None = None,
) -> bool:
    """A pixel fetch, recorded. False if the delivery does not exist."""
    found, event = open_hit(db, delivery_id, user_agent=user_agent, client_ip=client_ip, now=now)
    if event is not None:
        store_hit_events(db, [event])
    return found


def record_click(
    db: Session | Connection,
    delivery_id: int,
    link_key: str,
    *,
    user_agent: str | None,
    client_ip: str | None,
    now: datetime | None = None,
) -> str | None:
    """A click, recorded; the URL to redirect to, or None (see `click_hit`)."""
    url, event = click_hit(
        db, delivery_id, link_key, user_agent=user_agent, client_ip=client_ip, now=now
    )
    if event is not None:
        store_hit_events(db, [event])
    return url


def _is_web_url(url: str) -> bool:
    return url.startswith(("https://", "http://"))


class VoteOutcome(enum.StrEnum):
    COUNTED = "counted"
    # A scanner-looking hit: stored, flagged, not counted; the page asks a person to confirm.
    NEEDS_CONFIRMATION = "needs_confirmation"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class VoteResult:
    outcome: VoteOutcome
    matchup: Matchup | None = None
    tool: int | None = None
    pct_tool0: int | None = None
    votes: int = 0
    record: ReaderRecord | None = None  # the reader's own agreement with the panel over time


def record_vote(
    session: Session,
    delivery: int | DeliveryLink,
    slug: str,
    tool: int,
    *,
    user_agent: str | None,
    client_ip: str | None,
    confirmed: bool,
    now: datetime | None = None,
) -> VoteResult:
    """A reader's "which would you ship?" choice for one matchup of the issue they received.

    `confirmed` is a button press (a POST): link scanners follow links but do not submit forms,
    so a confirmed vote is a person's whatever the user agent says.
    """
    info = _delivery(session, delivery)
    # An erased person's vote link is as dead as their preferences link: a vote is their own
    # choice and its page shows their own record, so nothing is recorded for nobody. (Their
    # opens and clicks still count for the issue, anonymously, like their past deliveries.)
    if info is None or info.subscriber_id is None or tool not in (0, 1):
        return VoteResult(VoteOutcome.NOT_FOUND)
    matchup = matchups.get_by_slug(session, slug)
    if matchup is None or not issues.matchup_in_issue(session, info.issue_id, matchup.id):
        return VoteResult(VoteOutcome.NOT_FOUND)
    at = _now(now)
    machine = not confirmed and _machine(info, user_agent, client_ip, at)
    votes.cast(
        session,
        delivery_id=info.id,
        subscriber_id=info.subscriber_id,
        matchup_id=matchup.id,
        tool=tool,
        machine=machine,
        voted_at=at,
    )
    if tracking_allowed(info):
        repository.add_event(
            session,
            type=EventType.VOTED,
            source=FIRST_PARTY,
            provider_type="vote",
            delivery_id=info.id,
            issue_id=info.issue_id,
            matchup_id=matchup.id,
            link_key=str(tool),
            machine=machine,
            occurred_at=at,
            received_at=at,
            user_agent=_agent(info, user_agent),
        )
    pct, count = votes.community_split(session, matchup.id)
    if machine:
        return VoteResult(VoteOutcome.NEEDS_CONFIRMATION, matchup, tool, pct, count)
    record = reader_agreement(session, info.subscriber_id)
    return VoteResult(VoteOutcome.COUNTED, matchup, tool, pct, count, record)


def reader_agreement(session: Session, subscriber_id: int | None) -> ReaderRecord | None:
    """One reader's own votes against the panel, issue by issue (None: no subscriber left,
    e.g. erased, or no vote yet)."""
    if subscriber_id is None:
        return None
    votes = [
        ReaderVote(week, tool, (a, b))
        for week, tool, a, b in repository.reader_votes(session, subscriber_id)
    ]
    return reader_record(votes) if votes else None


def record_unsubscribe(
    session: Session, delivery_id: int, *, source: str = FIRST_PARTY, now: datetime | None = None
) -> None:
    """Count an unsubscribe made from an issue (the /u/{token} page) against that issue.

    Recorded whatever the tracking choice: the reader asked for it, and the editors need to
    know which issue lost them.
    """
    info = _delivery(session, delivery_id)
    if info is None:
        return
    at = _now(now)
    repository.add_event(
        session,
        type=EventType.UNSUBSCRIBED,
        source=source,
        provider_type="unsubscribe",
        delivery_id=info.id,
        issue_id=info.issue_id,
        machine=False,
        occurred_at=at,
        received_at=at,
    )


def _clip(user_agent: str | None) -> str | None:
    return user_agent[:512] if user_agent else None


def _agent(info: DeliveryInfo, user_agent: str | None) -> str | None:
    # An erased person's old mail still counts, anonymously: what their device says is not kept.
    return _clip(user_agent) if info.subscriber_id is not None else None


def silent_in_all(session: Session, issue_ids: list[int]) -> list[int]:
    """Subscribers sent each of these issues who read none of them (no person's open, click or
    vote)."""
    return repository.silent_in_all(session, issue_ids)


def last_read(session: Session, subscriber_ids: list[int], since: datetime) -> dict[int, datetime]:
    """When each of them last read (a person's open, a click, a vote), if since `since`."""
    return repository.last_read(session, subscriber_ids, since)


# What a person did with an issue, as the firsts name it (tracking/rollups.py).
ENGAGED_KINDS = (f"{EventType.CLICKED.value}:h", f"{EventType.VOTED.value}:h")
OPENED_KINDS = (f"{EventType.OPENED.value}:h",)


def engaged_select(issue_ids: Sequence[int]) -> Any:
    """Subscriber ids who clicked or voted, as a person, on one of these issues (a SELECT for
    `IN`: segments, newsletter/audience)."""
    return repository.readers_select(issue_ids, ENGAGED_KINDS)


def opened_select(issue_ids: Sequence[int]) -> Any:
    """Subscriber ids who opened one of these issues as a person (not a proxy's or scanner's
    open)."""
    return repository.readers_select(issue_ids, OPENED_KINDS)


def readers_by_subject(
    session: Session, issue_id: int, *, split_at: datetime | None = None
) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, int]]]:
    """Per subject of a subject test: how many of its deliveries were opened, clicked, voted on,
    and clicked or voted on ("engaged"), each as a person (never a proxy's or a scanner's); of
    all its deliveries and of those made before `split_at` (the test's share)."""
    return repository.readers_by_subject(
        session,
        issue_id,
        {
            "opened": OPENED_KINDS,
            "clicked": ENGAGED_KINDS[:1],
            "voted": ENGAGED_KINDS[1:],
            "engaged": ENGAGED_KINDS,
        },
        split_at,
    )

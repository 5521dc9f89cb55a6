"""Asking the silent ones, once: "still want this?" (issue 18, protecting the sender).

People who were sent each of the last NEWSLETTER_REENGAGE_AFTER_ISSUES issues and left no
person's open, no click and no vote on any of them (a mail client's proxy open is flagged as a
machine's and does not count as reading) are asked once whether they still want the mail.
Whoever answers, or reads again, stays; after NEWSLETTER_REENGAGE_ANSWER_DAYS without either,
their subscription is paused (nothing deleted; resuming from the preferences page ends it).
Mailing people who never read is what hurts a sender with Gmail and Yahoo.

It needs the ledger (who was sent what), tracking (who read) and subscribers (who is asked),
so it lives here, above them; the scheduler runs it at most once a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from newsletter.issues import service as issues
from newsletter.settings import get_settings
from newsletter.tracking import service as tracking
from subscribers import service as subscribers
from subscribers.service import StillReadingRequest


@dataclass
class Round:
    """What one round did: whom it asks (mail them after the commit), how many it paused, how
    many answered by reading again."""

    to_ask: list[StillReadingRequest] = field(default_factory=list)
    paused: int = 0
    read_again: int = 0


def run(session: Session, now: datetime) -> Round:
    settings = get_settings()
    done = Round()
    if not settings.newsletter_reengage:
        return done
    asked = subscribers.asked_before(session, now)
    if asked:
        read = tracking.last_read(session, [i for i, _ in asked], min(at for _, at in asked))
        # Reading since being asked is an answer.
        again = [i for i, at in asked if i in read and read[i] >= at]
        subscribers.read_again(session, again, now)
        done.read_again = len(again)
        deadline = now - timedelta(days=settings.newsletter_reengage_answer_days)
        silent = [i for i, at in asked if at < deadline and i not in again]
        done.paused = subscribers.pause_unanswered(session, silent, now)
    recent = issues.last_sent_issues(session, settings.newsletter_reengage_after_issues)
    if len(recent) == settings.newsletter_reengage_after_issues:
        quiet = tracking.silent_in_all(session, [issue_id for issue_id, _ in recent])
        # Asked again only about issues sent after the last question or answer.
        oldest = min((at for _, at in recent if at is not None), default=now)
        done.to_ask = subscribers.ask_still_reading(session, quiet, now, oldest)
    return done

"""The send loop: claim a batch, hand it to the transport, settle what the provider answered.

Each step is its own committed transaction, in this order, so a crash at any point leaves a
ledger that says what is known:
1. claim: the batch and its deliveries go in flight (committed BEFORE the request);
2. the request (no transaction open);
3. settle: sent / failed / uncertain, or back to queued when nothing was accepted.
A batch still in flight when its worker is gone is flagged uncertain by `sweep_stuck` and
never resent automatically.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from html import escape

from sqlalchemy.orm import Session

from newsletter import limits
from newsletter.db import is_sqlite, transaction
from newsletter.issues import service as issues
from newsletter.issues.models import IssueStatus
from newsletter.issues.service import frozen_content
from newsletter.issues.subjects import subject_texts
from newsletter.mail.message import BatchOutcome, MailContent, Recipient, header_phrase
from newsletter.mail.transport import Transport, get_transport
from newsletter.orm import utcnow
from newsletter.security.delivery_tokens import delivery_tokens
from newsletter.sending import claims, service
from newsletter.sending.claims import BatchRecipient, Claim
from newsletter.settings import Settings, get_settings

SKIPPED_REASON = "no longer mailable when its batch was sent (unsubscribed, paused or suppressed)"
IDLE_POLL_SECONDS = 0.2
# How often a thread waiting for its turn under the rate limit looks whether the send is over.
OVER_POLL_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 60.0


class RateLimiter:
    """At most `per_second` emails handed off per second by every worker together, on every
    machine: the reservations meet in one row of the database (`newsletter/limits.py`), a
    batch's worth per round trip, never one per email."""

    def __init__(
        self,
        per_second: float,
        session: Callable[[], contextlib.AbstractContextManager[Session]] = transaction,
        *,
        name: str = limits.SEND_BUCKET,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.per_second = per_second
        self.name = name
        self._session = session
        # None: the database's clock on PostgreSQL (one for every machine), this one's on SQLite.
        self._clock = clock

    def wait(self, emails: int, stop: threading.Event, over: threading.Event | None = None) -> None:
        """Reserve `emails` and wait for their turn, or until `stop` or `over` (the send ended
        while this thread waited: the caller gives the reservation back)."""
        now = self._clock() if self._clock else None
        with self._session() as session:
            delay = limits.reserve(session, self.name, emails, self.per_second, now)
        if delay <= 0:
            return
        if over is None:
            stop.wait(delay)
            return
        deadline = time.monotonic() + delay
        while not (stop.is_set() or over.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            stop.wait(min(left, OVER_POLL_SECONDS))

    def give_back(self, emails: int) -> None:
        """Return what a wait paid for but did not send (a short or missing batch)."""
        if emails > 0:
            with self._session() as session:
                limits.release(session, self.name, emails, self.per_second)


@dataclass(frozen=True)
class _Done:
    # The batch itself is already closed (the common case: settled in the same transaction).
    finished: bool = False


@dataclass(frozen=True)
class _Retry:
    delay: float
    error: str


@dataclass(frozen=True)
class _Pause:
    error: str


_RetryDecision = _Done | _Retry | _Pause
DONE = _Done()


@dataclass
class _Send:
    """What every thread of one worker process shares while sending one issue."""

    issue_id: int
    settings: Settings
    stop: threading.Event
    transport: Transport | None
    limiter: RateLimiter | None
    issue_statuses: tuple[IssueStatus, ...]
    stuck_after: timedelta
    categories: tuple[str, ...] = ()
    # The frozen renders, by (variant, tracked): the whole issue's read at the start, a
    # variant's (for readers who chose topics) the first time a batch needs it.
    contents: dict[tuple[int | None, bool], MailContent] = field(default_factory=dict)
    # The subject test's subjects (deliveries.subject 1 is the first), fixed before the send.
    subjects: tuple[str, ...] = ()
    contents_lock: threading.Lock = field(default_factory=threading.Lock)
    # A thread failed: its siblings stop at their next batch. Not `stop`, which is the
    # caller's (the scheduler's own: setting it would end the scheduler).
    failed: threading.Event = field(default_factory=threading.Event)
    # A thread found the send over (nothing pending or in flight, or paused or cancelled): its
    # siblings waiting for their turn under the rate limit stop waiting.
    over: threading.Event = field(default_factory=threading.Event)
    # SQLite has one writer: threads that queue on its lock sleep in its busy handler (1, 2,
    # 5, 10 ms...) long after the lock is free. Queuing on a lock of our own wakes the next
    # writer at once. (Other processes still meet at SQLite's lock; PostgreSQL needs neither.)
    write_lock: contextlib.AbstractContextManager[object] = field(
        default_factory=contextlib.nullcontext
    )

    def content(
        self, variant: int | None, tracked: bool, subject: int | None = None
    ) -> MailContent:
        found = self._content(variant, tracked)
        if subject is None:
            return found
        if not 1 <= subject <= len(self.subjects):
            raise RuntimeError(f"issue {self.issue_id} has no test subject {subject}")
        return _with_subject(found, self.subjects[subject - 1])

    def _content(self, variant: int | None, tracked: bool) -> MailContent:
        key = (variant, tracked)
        found = self.contents.get(key)
        if found is None:
            with self.contents_lock, transaction() as session:
                found = self.contents.get(key)
                if found is None:
                    found = frozen_content(session, self.issue_id, tracked=tracked, variant=variant)
                    self.contents[key] = found
        return found

    def transport_for_thread(self) -> Transport:
        return self.transport or get_transport(self.settings)

    @contextlib.contextmanager
    def ledger(self) -> Iterator[Session]:
        """A transaction on the ledger (claim, settle), taken in turn on SQLite."""
        with self.write_lock, transaction() as session:
            yield session


@dataclass(frozen=True, slots=True)
class _Subjected:
    """A render with a subject test's subject: the Subject header and the page's title."""

    subject: str
    html: str
    text: str


_TITLE = re.compile(r"<title>.*?</title>", re.DOTALL)


def _with_subject(content: MailContent, subject: str) -> MailContent:
    title = f"<title>{escape(subject, quote=False)}</title>"
    return _Subjected(subject, _TITLE.sub(lambda _: title, content.html, count=1), content.text)


def backoff(attempts: int) -> float:
    """Exponential, with jitter so several workers do not retry in step."""
    base: float = min(MAX_BACKOFF_SECONDS, 0.25 * 2.0 ** max(0, attempts - 1))
    return base * random.uniform(0.5, 1.0)


def run_until_done(
    issue_id: int,
    *,
    worker_id: str,
    stop: threading.Event | None = None,
    transport: Transport | None = None,
    concurrency: int | None = None,
    resolving: bool = False,
) -> None:
    """Send the issue's batches until none is left, the issue is paused/cancelled, or `stop`.

    Several processes (and machines, on PostgreSQL) may run this for the same issue at once.
    `resolving` lets it send re-queued uncertain deliveries of an issue already marked sent.
    """
    settings = get_settings()
    send = _Send(
        issue_id=issue_id,
        settings=settings,
        stop=stop or threading.Event(),
        transport=transport,
        limiter=None,
        issue_statuses=(IssueStatus.SENDING, IssueStatus.SENT)
        if resolving
        else (IssueStatus.SENDING,),
        stuck_after=timedelta(seconds=settings.newsletter_send_stuck_seconds),
    )
    if is_sqlite(settings.database_url):
        send.write_lock = threading.Lock()
    if settings.newsletter_send_rate_limit > 0:
        # The list's rate, shared by every worker; 0 (unlimited) costs nothing per batch.
        send.limiter = RateLimiter(settings.newsletter_send_rate_limit, send.ledger)
    with transaction() as session:
        service.sweep_stuck(session, older_than=send.stuck_after, issue_id=issue_id)
        issue = issues.get(session, issue_id)
        if issue is None or issue.status not in send.issue_statuses:
            return
        send.categories = ("weekly-verdicts", issue.week)
        # The frozen render is read once per process, not once per batch.
        send.contents[None, True] = frozen_content(session, issue_id, tracked=True)
        send.contents[None, False] = frozen_content(session, issue_id, tracked=False)
        send.subjects = tuple(subject_texts(session, issue_id))

    threads = concurrency or settings.newsletter_send_concurrency
    if threads == 1:
        _loop(send, worker_id)
        return
    errors: list[BaseException] = []

    def run(thread_worker_id: str) -> None:
        try:
            _loop(send, thread_worker_id)
        except BaseException as exc:
            errors.append(exc)
            send.failed.set()

    workers = [
        threading.Thread(target=run, args=(f"{worker_id}:{n}",), daemon=True)
        for n in range(threads)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if errors:
        raise errors[0]


def _loop(send: _Send, worker_id: str) -> None:
    transport = send.transport_for_thread()
    batch_size = send.settings.newsletter_batch_size
    while not (send.stop.is_set() or send.failed.is_set() or send.over.is_set()):
        if send.limiter is not None:
            # Nothing left to claim: no turn is reserved (a reservation of a whole batch at a
            # low rate is minutes of waiting, and the send would stay "sending" meanwhile).
            if not _any_pending(send):
                if not _wait_for_work(send):
                    send.over.set()
                    return
                continue
            # The limiter's wait comes before the claim: a batch claimed and then held while
            # waiting would be flagged uncertain by a crash although none of it ever left.
            send.limiter.wait(batch_size, send.stop, send.over)
            if send.stop.is_set() or send.over.is_set():
                send.limiter.give_back(batch_size)
                return
        now = utcnow()
        recipients: list[BatchRecipient] = []
        with send.ledger() as session:
            claim = claims.claim_batch(
                session, send.issue_id, worker_id, now, issue_statuses=send.issue_statuses
            )
            if claim is not None:
                # Someone who left after the snapshot is not mailed: checked right before
                # each batch, in the transaction that puts the batch in flight.
                recipients = claims.put_in_flight(
                    session, claim.batch_id, now, skip_reason=SKIPPED_REASON
                )
        if send.limiter is not None:
            send.limiter.give_back(batch_size - len(recipients))
        if claim is None:
            if not _wait_for_work(send):
                send.over.set()
                return
            continue
        _deliver(send, transport, worker_id, claim, recipients)


def _any_pending(send: _Send) -> bool:
    """Whether a batch of the issue waits to be claimed (due or not)."""
    with transaction() as session:
        pending, _, _ = claims.batch_progress(session, send.issue_id)
    return pending > 0


def _wait_for_work(send: _Send) -> bool:
    """Nothing to claim now: False when the send is over (or stopped), else wait a little."""
    now = utcnow()
    with send.ledger() as session:
        status = issues.status_of(session, send.issue_id)
        if status not in send.issue_statuses:
            return False
        pending, in_flight, earliest = claims.batch_progress(session, send.issue_id)
        if pending == 0 and in_flight == 0:
            service.mark_sent_if_done(session, send.issue_id, now)
            return False
        if in_flight:
            # Another worker's batch: wait for it, unless its worker is gone.
            service.sweep_stuck(session, older_than=send.stuck_after, issue_id=send.issue_id)
    delay = IDLE_POLL_SECONDS
    if pending and not in_flight and earliest is not None:
        delay = min(max((earliest - now).total_seconds(), 0.01), 1.0)
    send.stop.wait(delay)
    return True


def _deliver(
    send: _Send,
    transport: Transport,
    worker_id: str,
    claim: Claim,
    recipients: Sequence[BatchRecipient],
) -> None:
    tracking = send.settings.newsletter_tracking
    # One request per render: the variant (their topics), tracked or not, and the subject.
    groups: dict[tuple[int | None, bool, int | None], list[Recipient]] = {}
    tokens = delivery_tokens((r.delivery_id, r.public_id) for r in recipients)
    for r, token in zip(recipients, tokens, strict=True):
        groups.setdefault((r.variant, tracking and not r.tracking_opt_out, r.subject), []).append(
            # A tuple runs no validation: the name becomes a To: header, so it is made one line.
            Recipient(r.delivery_id, r.email, header_phrase(r.name), token)
        )
    decision: _RetryDecision = DONE
    try:
        # Tracking opt-outs get the untracked render: a separate request.
        for (variant, tracked, subject), group in groups.items():
            if group:
                whole = len(group) == len(recipients)
                decision = _send(
                    send,
                    transport,
                    worker_id,
                    claim,
                    send.content(variant, tracked, subject),
                    group,
                    whole,
                    paid=True,
                )
                if not isinstance(decision, _Done):
                    break
    except BaseException as exc:
        # Something broke on our side mid-batch: whether a request went out is unknown.
        with send.ledger() as session:
            now = utcnow()
            reason = f"worker error while sending: {exc!r}"
            claims.mark_uncertain(session, claim.batch_id, None, reason, now)
            claims.finish_batch(session, claim.batch_id, now, reason)
        raise
    if not (isinstance(decision, _Done) and decision.finished):
        _settle(send, claim, decision)


def _settle(send: _Send, claim: Claim, decision: _RetryDecision) -> None:
    now = utcnow()
    with send.ledger() as session:
        if isinstance(decision, _Done):
            if not decision.finished:
                claims.finish_batch(session, claim.batch_id, now)
        elif isinstance(decision, _Pause):
            # Credentials are wrong: every batch would fail the same way, so the whole send
            # stops and waits for an operator. Nothing is marked failed.
            claims.release_batch(
                session, claim.batch_id, retry_at=None, error=decision.error, now=now
            )
            issues.pause_sending(session, send.issue_id, now)
        else:
            deadline = claim.first_attempt_at + timedelta(
                seconds=send.settings.newsletter_send_deadline_seconds
            )
            retry_at = now + timedelta(seconds=decision.delay)
            if retry_at > deadline:
                reason = f"gave up at the retry deadline; last answer: {decision.error}"
                claims.mark_failed(session, claim.batch_id, None, reason, now)
                claims.finish_batch(session, claim.batch_id, now, reason)
            else:
                claims.release_batch(
                    session, claim.batch_id, retry_at=retry_at, error=decision.error, now=now
                )


def _send(
    send: _Send,
    transport: Transport,
    worker_id: str,
    claim: Claim,
    content: MailContent,
    recipients: Sequence[Recipient],
    whole: bool,
    *,
    paid: bool = False,
) -> _RetryDecision:
    """One request for `recipients`; a 400 or 413 is narrowed down by splitting.

    `paid`: the limiter was already waited for these recipients, before the batch was claimed;
    the requests that narrow a refused one down wait here, as they go.
    """
    if send.limiter is not None and not paid:
        send.limiter.wait(len(recipients), send.stop)
    result = transport.send_batch(
        content, recipients, issue_id=send.issue_id, categories=send.categories
    )
    ids = None if whole else [r.delivery_id for r in recipients]
    now = utcnow()
    outcome = result.outcome
    if outcome is BatchOutcome.ACCEPTED:
        with send.ledger() as session:
            if result.message_ids:
                claims.mark_sent_each(session, claim.batch_id, result.message_ids, now)
            claims.mark_sent(session, claim.batch_id, ids, result.message_id, now)
            if whole:
                # One commit settles the deliveries and closes the batch.
                claims.finish_batch(session, claim.batch_id, now)
                return _Done(finished=True)
            claims.touch_batch(session, claim.batch_id, worker_id, now)
        return DONE
    if outcome is BatchOutcome.UNKNOWN:
        with send.ledger() as session:
            claims.mark_uncertain(session, claim.batch_id, ids, result.error or "no answer", now)
        return DONE
    if outcome is BatchOutcome.RATE_LIMITED:
        delay = result.retry_after if result.retry_after is not None else backoff(claim.attempts)
        return _Retry(delay, result.error or "rate limited")
    if outcome is BatchOutcome.UNAVAILABLE:
        return _Retry(backoff(claim.attempts), result.error or "unavailable")
    if outcome is BatchOutcome.UNAUTHORIZED:
        return _Pause(result.error or "unauthorized")
    # 400 / 413: find who is at fault instead of failing everyone.
    error = result.error or "rejected"
    if len(recipients) == 1:
        message = result.recipient_errors.get(0)
        with send.ledger() as session:
            claims.mark_failed(
                session,
                claim.batch_id,
                [recipients[0].delivery_id],
                f"SendGrid 400: {message}" if message else error,
                now,
            )
        return DONE
    named = {
        position: message
        for position, message in result.recipient_errors.items()
        if 0 <= position < len(recipients)
    }
    if outcome is BatchOutcome.REJECTED and named:
        with send.ledger() as session:
            for position, message in named.items():
                claims.mark_failed(
                    session,
                    claim.batch_id,
                    [recipients[position].delivery_id],
                    f"SendGrid 400: {message}",
                    now,
                )
            claims.touch_batch(session, claim.batch_id, worker_id, now)
        rest = [r for position, r in enumerate(recipients) if position not in named]
        return _send(send, transport, worker_id, claim, content, rest, False) if rest else DONE
    half = len(recipients) // 2
    decision = _send(send, transport, worker_id, claim, content, recipients[:half], False)
    if not isinstance(decision, _Done):
        return decision
    return _send(send, transport, worker_id, claim, content, recipients[half:], False)

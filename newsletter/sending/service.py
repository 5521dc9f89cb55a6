"""Sending an issue: start, pause, resume, cancel, resolve; test sends and editor notices.

Services never commit: the CLI command, web request or job owns the transaction. The batches
themselves are sent by `newsletter.sending.worker`, which owns its own transactions.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.orm import Session

from newsletter.errors import Refused
from newsletter.issues import service as issues
from newsletter.issues.models import IN_SEND, IssueStatus
from newsletter.issues.service import frozen_content
from newsletter.issues.subjects import get as subject_test
from newsletter.issues.subjects import no_test_waiting
from newsletter.mail.message import (
    OutgoingMessage,
    SendResult,
    list_id_header,
    unsubscribe_headers,
)
from newsletter.mail.transport import Transport, get_transport
from newsletter.orm import utcnow
from newsletter.security.delivery_tokens import TEST_TOKEN, TOKEN_PLACEHOLDER, fill
from newsletter.sending import recovery, repository
from newsletter.sending.models import Delivery, DeliveryStatus, Evidence
from newsletter.settings import Settings, get_settings
from subscribers import service as subscribers

CANCELLED_REASON = "send cancelled by an operator before this delivery was handed off"


class SendError(Refused):
    """A refused sending action; the message names the issue and the reason."""


def _require_status(session: Session, issue_id: int) -> IssueStatus:
    status = issues.status_of(session, issue_id)
    if status is None:
        raise issues.IssueNotFound(f"no issue with id {issue_id}")
    return status


def _require_sendable_sender() -> None:
    """Refuse before anything is queued when SendGrid is the transport and the footer would
    lack the postal address: otherwise the web app's "Send now" and the scheduler queued
    deliveries that every worker then refused to build a transport for, silently."""
    from newsletter.sender import SenderConfigError, require_postal_address

    settings = get_settings()
    if settings.transport != "sendgrid":
        return
    try:
        require_postal_address(settings)
    except SenderConfigError as exc:
        raise SendError(f"not sent: {exc}") from None


def start_send(
    session: Session,
    issue_id: int,
    *,
    now: datetime | None = None,
    within: Select[Any] | None = None,
    subject: ColumnElement[int] | None = None,
) -> bool:
    """approved|scheduled -> sending, and snapshot the audience into queued deliveries.

    False if the issue is not ready to send (a second caller, or another worker, got there
    first). The snapshot is in the caller's transaction: either the issue is sending with every
    delivery planned, or nothing changed.

    `within`: the members of the segment the issue goes to (newsletter/audience's `start_send`
    passes them). An issue that names a segment is refused without them: it is never sent to
    everyone by a caller that forgot its audience. `subject`: the subject test's number of
    each one's subject (newsletter/audience/subject_tests.py; `within` is then the test's
    share).
    """
    now = now or utcnow()
    _require_sendable_sender()
    issue = issues.get(session, issue_id)
    if issue is not None and issue.segment_id is not None and within is None:
        raise SendError(
            f"issue {issue_id} goes to segment {issue.segment_id}: start it through "
            "newsletter.audience.service.start_send, which knows its members"
        )
    test = subject_test(session, issue_id)
    if test is not None and test.started_at is None and subject is None:
        raise SendError(
            f"issue {issue_id} has a subject test: start it through "
            "newsletter.audience.service.start_send, which sends only the test's share"
        )
    if not issues.start_sending(session, issue_id, now):
        return False
    # Freeze the render now (if approval did not): every batch sends these exact bytes.
    issues.freeze(session, issue_id, now=now)
    # A test's share is not the whole send: even when nobody in it is mailed (an empty share,
    # or everyone in it skipped), the rest still waits for the winner, so the snapshot does
    # not finish the send (the caller marks the test started in this transaction).
    _snapshot(
        session, issue_id, now, within=within, subject=subject, fresh=False, finish=subject is None
    )
    return True


def send_rest(
    session: Session,
    issue_id: int,
    *,
    subject: ColumnElement[int],
    within: Select[Any] | None = None,
    now: datetime | None = None,
) -> int:
    """A subject test's winner to everyone else: a queued delivery (carrying `subject`) for
    each one of the audience (`within`, None: everyone mailable) the issue has no delivery for
    yet. In the caller's transaction, with the decision; returns how many were made."""
    now = now or utcnow()
    status = _require_status(session, issue_id)
    if status not in IN_SEND:
        raise SendError(f"issue {issue_id} is {status.value}, not sending or paused")
    return _snapshot(
        session, issue_id, now, within=within, subject=subject, fresh=True, finish=True
    )


def _snapshot(
    session: Session,
    issue_id: int,
    now: datetime,
    *,
    within: Select[Any] | None,
    subject: ColumnElement[int] | None,
    fresh: bool,
    finish: bool,
) -> int:
    bits = issues.topic_bits(session, issue_id) if subscribers.any_topics(session) else {}
    made = repository.snapshot_audience(
        session,
        issue_id,
        now,
        get_settings().newsletter_batch_size,
        variants=subscribers.topic_masks(bits) if bits else None,
        within=within,
        subject=subject,
        fresh=fresh,
    )
    if bits:
        _freeze_variants(session, issue_id, now)
    if finish:
        # An empty audience is a finished send.
        mark_sent_if_done(session, issue_id, now)
    return made


def subject_counts(
    session: Session, issue_id: int, *, split_at: datetime | None = None
) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, int]]]:
    return repository.subject_counts(session, issue_id, split_at=split_at)


# Someone whose topics have nothing this week gets no mail (an issue of none of their matchups
# would be empty); the ledger says why, for each of them.
NOTHING_IN_THEIR_TOPICS = "nothing in their topics this week"


def _freeze_variants(session: Session, issue_id: int, now: datetime) -> None:
    """Every variant the snapshot named, frozen; those whose topics take in every matchup get
    the whole issue, those whose topics have none this week are skipped."""
    masks = repository.variants_in(session, issue_id)
    if 0 in masks:
        repository.skip_variant(session, issue_id, 0, NOTHING_IN_THEIR_TOPICS, now)
    chosen = issues.freeze_variants(session, issue_id, [m for m in masks if m], now=now)
    for mask, named in chosen.items():
        if named is None:
            repository.rename_variant(session, issue_id, mask, None)


def variants(session: Session, issue_id: int) -> list[dict[str, Any]]:
    """What readers who chose topics get: each variant's topics, subject, matchups and how many
    deliveries carry it (the whole issue first, when anyone gets it)."""
    counts = repository.variant_counts(session, issue_id)
    if set(counts) <= {None}:
        return []
    found: list[dict[str, Any]] = []
    if None in counts:
        found.append(
            {"topics": None, "subject": None, "matchups": None, "deliveries": counts[None]}
        )
    for variant in issues.variant_summaries(session, issue_id):
        found.append(
            {
                "topics": variant["categories"],
                "subject": variant["subject"],
                "matchups": len(variant["matchup_ids"]),
                "deliveries": counts.get(variant["mask"], 0),
            }
        )
    if counts.get(0):
        found.append({"topics": [], "subject": None, "matchups": 0, "deliveries": counts[0]})
    return found


def any_delivery_open(session: Session, issue_id: int) -> bool:
    """True while one of the issue's deliveries is queued or in flight: one EXISTS on the
    issue's index, not the GROUP BY over all its deliveries that status_counts is."""
    return not bool(session.scalar(select(repository.no_delivery_open(issue_id))))


def mark_sent_if_done(session: Session, issue_id: int, now: datetime) -> bool:
    """sending -> sent, only once no delivery of the issue is still open."""
    return issues.finish_sending(
        session,
        issue_id,
        now,
        when=and_(repository.no_delivery_open(issue_id), no_test_waiting(issue_id)),
    )


def pause(session: Session, issue_id: int, *, now: datetime | None = None) -> None:
    status = _require_status(session, issue_id)
    if not issues.pause_sending(session, issue_id, now or utcnow()):
        raise SendError(f"issue {issue_id} is {status.value}, not sending: nothing to pause")


def guard_reputation(
    session: Session,
    issue_id: int,
    *,
    hard_bounces: int,
    complaints: int,
    now: datetime | None = None,
) -> str | None:
    """Pause the send when what it has sent so far bounced or was reported as spam past the
    thresholds (settings): the domain's reputation is worth more than this week's issue.
    Returns the reason when it paused the send now, else None. Tracking calls this with the
    counts of the issue's events after each webhook batch that brought a bounce or complaint."""
    settings = get_settings()
    if issues.status_of(session, issue_id) is not IssueStatus.SENDING:
        return None
    sent = repository.status_counts(session, issue_id)["sent"]
    if sent < settings.newsletter_pause_min_sent:
        return None
    reasons = []
    if hard_bounces / sent > settings.newsletter_pause_bounce_rate:
        reasons.append(
            f"hard bounces {hard_bounces:,} of {sent:,} sent ({hard_bounces / sent:.1%}, above "
            f"NEWSLETTER_PAUSE_BOUNCE_RATE {settings.newsletter_pause_bounce_rate:.1%})"
        )
    if complaints / sent > settings.newsletter_pause_complaint_rate:
        reasons.append(
            f"spam complaints {complaints:,} of {sent:,} sent ({complaints / sent:.2%}, above "
            f"NEWSLETTER_PAUSE_COMPLAINT_RATE {settings.newsletter_pause_complaint_rate:.2%})"
        )
    if not reasons:
        return None
    reason = "paused itself: " + "; ".join(reasons)
    return (
        reason if issues.pause_sending(session, issue_id, now or utcnow(), reason=reason) else None
    )


def resume(session: Session, issue_id: int, *, now: datetime | None = None) -> None:
    status = _require_status(session, issue_id)
    if not issues.resume_sending(session, issue_id, now or utcnow()):
        raise SendError(f"issue {issue_id} is {status.value}, not paused: nothing to resume")


def cancel(session: Session, issue_id: int, *, now: datetime | None = None) -> tuple[str, int]:
    """Cancel an issue, whatever its state allows: before its send (a draft, approved or
    scheduled issue) through issues, during it (sending or paused) through the ledger, which
    skips what was not handed off yet. Returns (the issue's week, how many were skipped)."""
    status = _require_status(session, issue_id)
    if status in IN_SEND:
        skipped = cancel_send(session, issue_id, now=now)
        issue = issues.require(session, issue_id)
        return issue.week, skipped
    return issues.cancel(session, issue_id).week, 0


def cancel_send(session: Session, issue_id: int, *, now: datetime | None = None) -> int:
    """sending|paused -> cancelled; deliveries not handed off yet end as skipped, with why.

    Batches already in flight finish normally (their worker settles them). Returns how many
    deliveries were skipped.
    """
    now = now or utcnow()
    status = _require_status(session, issue_id)
    if not issues.cancel_sending(session, issue_id, now):
        raise SendError(f"issue {issue_id} is {status.value}, not sending or paused")
    return recovery.skip_queued(session, issue_id, CANCELLED_REASON, now)


def resolve_mark_sent(
    session: Session,
    issue_id: int,
    *,
    delivery_ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> int:
    """The operator checked (e.g. in SendGrid's activity feed) that the uncertain ones went out.

    `delivery_ids` limits it to those deliveries (the others stay uncertain); None = all.
    """
    _require_status(session, issue_id)
    return recovery.resolve_uncertain_as_sent(
        session,
        issue_id,
        "marked sent by an operator after an uncertain hand-off",
        now or utcnow(),
        delivery_ids,
    )


def resolve_requeue(
    session: Session,
    issue_id: int,
    *,
    delivery_ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> int:
    """Queue the uncertain deliveries (only them, or only `delivery_ids` of them) in fresh
    batches; a worker then sends them (the scheduler's tick, `issue worker`, or the resolving
    command itself; a paused send's once it is resumed).

    A cancelled issue sends nothing more, so its uncertain deliveries are refused here rather
    than queued where no worker would ever take them.
    """
    status = _require_status(session, issue_id)
    if status is IssueStatus.CANCELLED:
        raise SendError(
            f"issue {issue_id} is cancelled: nothing more of it is sent, so its uncertain "
            "deliveries cannot be sent again; mark sent the ones SendGrid's activity feed shows"
        )
    return recovery.requeue_uncertain(
        session, issue_id, get_settings().newsletter_batch_size, now or utcnow(), delivery_ids
    )


def issues_with_work(session: Session) -> list[tuple[int, bool]]:
    """(issue id, resolving) for every issue with batches a worker should send now."""
    return recovery.issues_with_work(session)


def worker_is_gone(worker_id: str | None) -> bool:
    """True when the worker that claimed a batch was a process of this PID namespace on this
    running machine, and has died.

    Worker ids are "host:pid:key" (`default_worker_id`), key naming where the pid means
    something. A hostname alone does not: a Kubernetes pod's containers share one hostname,
    each with its own PID namespace (so do `docker run --network host` containers, and cloned
    machines), and a pid there names another process, or none, here. Any other id (another
    host's, another namespace's, one without a key) cannot be checked here and waits for the
    stuck-batch timeout instead.
    """
    if not worker_id:
        return True
    parts = worker_id.split(":")
    if (
        len(parts) < 3
        or parts[0] != socket.gethostname()
        or not parts[1].isdigit()
        or parts[2] != pid_namespace_key()
    ):
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


@functools.cache
def pid_namespace_key() -> str:
    """8 hex digits for this process's PID namespace on this machine's running kernel: its boot
    id (unique per boot and machine, shared by the containers of one kernel) and the namespace's
    inode (unique per kernel; the first namespace has the same one on every machine). Where
    /proc is missing (not Linux), one constant: the hostname alone decides, as it used to."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        boot = namespace = ""
    return hashlib.sha256(f"{boot}/{namespace}".encode()).hexdigest()[:8]


def local_worker_id(pid: int) -> str:
    """The id of a worker process with this pid, in this PID namespace, on this machine."""
    return f"{socket.gethostname()}:{pid}:{pid_namespace_key()}"


def default_worker_id() -> str:
    """Unique across machines and containers: hostname, pid, and the PID namespace's key
    (pids repeat across containers: a container's first process is pid 1 in each). Threads
    add ":n", a scheduler ":scheduler-…"."""
    return local_worker_id(os.getpid())


def sweep_stuck(
    session: Session,
    *,
    older_than: timedelta,
    issue_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Batches left in flight by a crashed worker: their deliveries become uncertain.

    A batch counts as crashed when its worker process in this PID namespace on this machine is
    gone, or when it has been in flight longer than `older_than` (its claim or last heartbeat:
    the only test for a worker on another machine or in another container). Nothing is resent: whether SendGrid took the
    request is unknown, and sending twice is worse than asking the operator. Returns how many
    deliveries were flagged uncertain.
    """
    now = now or utcnow()
    flagged = 0
    for batch in recovery.in_flight_batches(session, issue_id):
        stale = batch.claimed_at is None or batch.claimed_at < now - older_than
        if stale or worker_is_gone(batch.claimed_by):
            reason = (
                f"worker {batch.claimed_by} stopped while this batch was in flight "
                "(the request may or may not have reached SendGrid)"
            )
            flagged += recovery.abandon_batch(session, batch.batch_id, reason, now)
    return flagged


MAX_TEST_ADDRESSES = 10  # a test goes to a few reviewers; more is a mailing, with a ledger


def test_addresses(given: Sequence[str]) -> list[str]:
    """The addresses of a test send: each value may hold several, separated by commas,
    semicolons or spaces; each is validated and normalised, duplicates dropped."""
    from subscribers.addresses import InvalidAddress, normalise

    addresses: list[str] = []
    for value in given:
        for part in value.replace(";", ",").replace(" ", ",").split(","):
            if not part.strip():
                continue
            try:
                address = normalise(part)
            except InvalidAddress as exc:
                raise SendError(f"{part.strip()[:80]!r} is not an email address: {exc}") from None
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise SendError("give at least one address for the test copy")
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise SendError(
            f"{len(addresses)} addresses: a test goes to at most {MAX_TEST_ADDRESSES} "
            "(add the others as subscribers to reach more people)"
        )
    return addresses


def send_test(
    session: Session,
    issue_id: int,
    to: Sequence[str],
    *,
    transport: Transport | None = None,
    topics: Sequence[str] = (),
) -> list[tuple[str, SendResult]]:
    """One copy to each address, outside the ledger and untracked. Its per-reader links carry
    the test token: they all open, record nothing, and say what they do for a subscriber, so
    the tester can follow every link (the List-Unsubscribe header too) without skewing numbers.
    With `topics`: the copy readers of those topics get (issues.service.variant_for); refused
    when they get no mail this week.
    """
    settings = get_settings()
    _require_status(session, issue_id)
    if topics:
        variant = issues.variant_for(session, issue_id, topics)
        if variant.rendered is None:
            raise SendError(
                f"readers of {', '.join(variant.topics)} get no mail this week: none of issue "
                f"{issue_id}'s matchups is in their topics, so there is nothing to test"
            )
        rendered = variant.rendered
    else:
        rendered = frozen_content(session, issue_id, tracked=False)
    headers = {
        "List-Id": list_id_header(settings.newsletter_from_name, settings.newsletter_list_id),
        **unsubscribe_headers(settings.newsletter_base_url, TEST_TOKEN),
    }
    transport = transport or get_transport(settings)
    results = []
    for address in to:
        message = OutgoingMessage(
            to_email=address,
            subject=f"[Test] {fill(rendered.subject, TEST_TOKEN)}",
            text=fill(rendered.text, TEST_TOKEN),
            html=fill(rendered.html, TEST_TOKEN),
            headers=headers,
            categories=("test-send",),
            custom_args={"issue_id": str(issue_id), "test_send": "1"},
        )
        assert TOKEN_PLACEHOLDER not in message.html
        results.append((address, transport.send_one(message)))
    return results


def send_notice(
    to: list[str], subject: str, text: str, html: str, *, transport: Transport | None = None
) -> list[SendResult]:
    """Emails to editors (approval reminders, send reports): one message per address."""
    transport = transport or get_transport()
    results = []
    for address in to:
        message = OutgoingMessage(
            to_email=address, subject=subject, text=text, html=html, categories=("editor-notice",)
        )
        try:
            results.append(transport.send_one(message))
        except Exception as exc:
            # One editor's address that breaks the transport must not keep the others uninformed.
            results.append(SendResult(ok=False, error=f"{type(exc).__name__}: {exc}"))
    return results


# --- reading the ledger (for the doors and tracking's numbers) ----------------------------


def status_counts(session: Session, issue_id: int) -> dict[str, int]:
    """recipients, and how many deliveries are in each state (every state present, maybe 0)."""
    return repository.status_counts(session, issue_id)


def sent_by_variant(session: Session, issue_id: int) -> dict[int, int]:
    return repository.sent_by_variant(session, issue_id)


def skipped_reasons(session: Session, issue_id: int) -> list[tuple[str, int]]:
    return repository.skipped_reasons(session, issue_id)


def list_deliveries(
    session: Session, issue_id: int, *, status: DeliveryStatus | None = None, limit: int = 100
) -> list[tuple[Delivery, str | None]]:
    return repository.list_deliveries(session, issue_id, status=status, limit=limit)


def get_delivery(session: Session, delivery_id: int) -> Delivery | None:
    return repository.get_delivery(session, delivery_id)


def backdate_deliveries(session: Session, issue_id: int, *, by: timedelta) -> None:
    """Move the issue's deliveries' send times back by `by` (`newsletter demo`'s last week)."""
    repository.backdate_deliveries(session, issue_id, by)


def settled_counts(session: Session, issue_id: int) -> dict[str, int]:
    """How the issue's once-uncertain deliveries were settled: evidence:<event>, operator,
    resend:operator, resend:auto, with how many each."""
    return repository.settled_counts(session, issue_id)


def last_batch_error(session: Session, issue_id: int) -> str | None:
    return repository.last_batch_error(session, issue_id)


# --- healing uncertain deliveries -----------------------------------------------------------


def record_evidence(
    session: Session, evidence: Sequence[Evidence], *, now: datetime | None = None
) -> int:
    """What SendGrid's webhook says about our deliveries (tracking/ingest.py hands it over):
    the requests it took, and uncertain deliveries settled by it. Returns how many settled."""
    return recovery.record_evidence(session, evidence, now or utcnow())


@dataclass(frozen=True, slots=True)
class Waiting:
    """Uncertain deliveries of one request that healing has not touched, and why."""

    issue_id: int
    deliveries: int
    reason: str
    resend_at: datetime | None = None


@dataclass
class HealReport:
    resent: int = 0
    requests: int = 0
    waiting: list[Waiting] = field(default_factory=list)


def heal_uncertain(
    session: Session,
    *,
    issue_id: int | None = None,
    now: datetime | None = None,
    act: bool = True,
) -> HealReport:
    """Resend, once, the uncertain deliveries SendGrid never named, once its webhook has shown
    it took the requests made after theirs and NEWSLETTER_UNCERTAIN_RESEND_AFTER_SECONDS has
    passed (the scheduler's tick; `python scheduler.py --once` runs one). The rest wait, each
    with its reason (`newsletter issue status` shows them). `act=False` only says what a tick
    would do: those due are listed as waiting for the scheduler's next tick."""
    now = now or utcnow()
    settings = get_settings()
    after = timedelta(seconds=settings.newsletter_uncertain_resend_after_seconds)
    report = HealReport()
    statuses: dict[int, IssueStatus | None] = {}
    for request in recovery.uncertain_requests(session, issue_id):
        if request.issue_id not in statuses:
            statuses[request.issue_id] = issues.status_of(session, request.issue_id)
        reason = _why_waiting(request, statuses[request.issue_id], now, after, settings)
        if reason is not None:
            report.waiting.append(
                Waiting(
                    request.issue_id,
                    len(request.deliveries),
                    reason,
                    request.resend_from + after if request.flowing_past else None,
                )
            )
            continue
        if not act:
            report.waiting.append(
                Waiting(
                    request.issue_id,
                    len(request.deliveries),
                    "due: the scheduler's next tick sends them again",
                    request.resend_from + after,
                )
            )
            continue
        report.resent += recovery.requeue_uncertain(
            session,
            request.issue_id,
            settings.newsletter_resend_batch_size,
            now,
            request.deliveries,
            by=recovery.RESEND_AUTOMATICALLY,
        )
        report.requests += 1
    return report


def _why_waiting(
    request: recovery.UncertainRequest,
    status: IssueStatus | None,
    now: datetime,
    after: timedelta,
    settings: Settings,
) -> str | None:
    if status is IssueStatus.CANCELLED:
        return "the send was cancelled: mark sent what SendGrid's activity feed shows"
    if status is IssueStatus.PAUSED:
        return "the send is paused: healing goes on once it is resumed"
    if not settings.newsletter_uncertain_auto_resend:
        return "automatic resends are off (NEWSLETTER_UNCERTAIN_AUTO_RESEND): an operator decides"
    if request.resent_before:
        return "resent automatically once already and uncertain again: an operator decides"
    if not request.flowing_past:
        return "waiting for SendGrid's events to show it took the requests made after this one"
    if now - request.resend_from < after:
        if request.resend_from > request.uncertain_since:
            return "SendGrid named others of its batch: resent if no event comes for it"
        return "no event from SendGrid for it yet: resent if none comes"
    return None

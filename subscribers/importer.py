"""Import a subscriber CSV as other tools export it, streaming, in batches.

Real exports differ in everything but the idea: a UTF-8 BOM (Excel), UTF-16 (Excel's "Unicode
text"), header names in any case and order ("Email Address", "E-mail", "First Name"…), extra
columns, `;` instead of `,` (Excel in much of Europe), quoted fields, blank lines, the same person
twice in different case, and the tool's own way of saying who left. `subscribers.formats`
recognises the tool from the header and knows its status words and flags. Each row is judged
alone: an invalid one is reported with its line number and reason and nothing of it is written;
the others go in. Someone the file says left is stored as having left and suppressed, never
active; someone who never confirmed is stored as pending and not mailed.

The file is read once, a batch at a time, and each batch is its own transaction, so memory
stays flat whatever the file's size and a long import does not hold the database's write lock
for its whole length. An interrupted import can simply be run again: rows already in are
skipped. A dry run does all the same work in one transaction and rolls it back.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.orm import utcnow
from newsletter.settings import get_settings
from subscribers import addresses, bulk, repository
from subscribers.addresses import address_hash
from subscribers.csv_reading import (
    Candidate,
    ImportRefused,
    InvalidRow,
    _Reader,
)
from subscribers.formats import (
    EMAIL_HEADERS,
    FORMATS,
    Format,
    Mapping,
    State,
    Verdict,
)
from subscribers.formats import header_key as _header_key
from subscribers.models import SubscriberStatus
from subscribers.service import ConfirmationRequest, confirmation_token_for

__all__ = ["EMAIL_HEADERS", "ImportRefused", "ImportReport", "_header_key", "import_csv"]

BATCH_ROWS = 5000  # rows looked up and inserted per statement group
# Rows per transaction. SQLite rewrites every index page a transaction touched into its WAL at
# commit; with addresses arriving in random order each commit touches pages all over the email
# and name indexes, so fewer, larger commits write far less (a 1,000,000-row import: 24.9 s at
# 100,000 a commit, 27.0 s at 50,000, one noisy run each). Bounded: memory stays flat, and a
# commit holds the write lock for 2-3 s, well inside other writers' 30 s busy_timeout.
COMMIT_ROWS = 100_000
# Line numbers kept per outcome in the report: the counts are exact, the list is a sample.
MAX_LINES_LISTED = 1000


@dataclass
class LineTally:
    count: int = 0
    lines: list[int] = field(default_factory=list)

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < MAX_LINES_LISTED:
            self.lines.append(line)


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    # People the file says left (or never subscribed): stored as having left and suppressed,
    # or, for those who never subscribed, not written at all. Never active.
    kept_out: int = 0
    invalid: list[InvalidRow] = field(default_factory=list)
    skipped_by_reason: dict[str, int] = field(
        default_factory=lambda: {
            "duplicate": 0,
            "suppressed": 0,
            "unchanged": 0,
            "consented since": 0,
        }
    )
    kept_out_by_reason: dict[str, int] = field(default_factory=dict)
    # Imported as pending: never confirmed in the other tool, or asked to confirm here.
    pending: int = 0
    # Already on the list here, and the file says they left there: now unsubscribed here too.
    marked_left: int = 0
    confirmations_sent: int = 0
    dry_run: bool = False
    mapping: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], LineTally] = field(default_factory=dict)
    # Rows this import created have ids above this one (their tags may name topics).
    new_after_id: int = 0
    # New people whose tags (or `topics` column) named the site's categories: those became
    # their topics (newsletter/people/topics.py, after the import).
    given_topics: int = 0

    def note(self, outcome: str, reason: str, line: int) -> None:
        key = (outcome, reason)
        entry = self.outcomes.get(key)
        if entry is None:
            entry = self.outcomes[key] = LineTally()
        entry.add(line)

    def note_many(self, outcome: str, reason: str, lines: list[int]) -> None:
        if not lines:
            return
        key = (outcome, reason)
        entry = self.outcomes.get(key)
        if entry is None:
            entry = self.outcomes[key] = LineTally()
        entry.count += len(lines)
        entry.lines.extend(lines[: MAX_LINES_LISTED - len(entry.lines)])

    def skip(self, reason: str, line: int, why: str | None = None) -> None:
        self.skipped += 1
        self.skipped_by_reason[reason] += 1
        self.note("skipped", f"{reason}: {why}" if why else reason, line)

    def keep_out(self, verdict: Verdict, line: int) -> None:
        reason = f"{verdict.state.name.lower()}: {verdict.why}"
        self.kept_out += 1
        self.kept_out_by_reason[reason] = self.kept_out_by_reason.get(reason, 0) + 1
        self.note("kept_out", reason, line)

    def refuse(self, line: int, value: str, reason: str) -> None:
        self.invalid.append(InvalidRow(line, value, reason))
        self.note("invalid", reason, line)

    def accounted(self) -> int:
        """Rows with an outcome: every non-blank data row of the file has exactly one."""
        return self.imported + self.updated + self.skipped + self.kept_out + len(self.invalid)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            **self.mapping,
            "imported": self.imported,
            "pending": self.pending,
            "updated": self.updated,
            "kept_out": self.kept_out,
            "kept_out_by_reason": dict(self.kept_out_by_reason),
            "marked_left": self.marked_left,
            "skipped": self.skipped,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "invalid": [
                {"line": i.line, "value": i.value, "reason": i.reason} for i in self.invalid
            ],
            "confirmations_sent": self.confirmations_sent,
            "given_topics": self.given_topics,
            "outcomes": [
                {
                    "outcome": outcome,
                    "reason": reason,
                    "count": entry.count,
                    "lines": sorted(entry.lines),
                    "lines_not_listed": entry.count - len(entry.lines),
                }
                for (outcome, reason), entry in self.outcomes.items()
            ],
        }


# --- writing --------------------------------------------------------------------------------


def _hasher() -> Callable[[str], str]:
    """`address_hash` for every row of one import, three times faster: the HMAC's keyed inner
    and outer SHA-256 states made once (RFC 2104), copied for each address, instead of the key
    read from the settings and set up again for each. Checked against `address_hash` itself
    first; should the two ever differ, `address_hash` it is."""
    settings = get_settings()
    key = addresses._key(settings.newsletter_suppression_key or settings.newsletter_secret_key)
    block = hashlib.sha256().block_size
    if len(key) > block:
        return address_hash
    padded = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def fast(email: str) -> str:
        digest = inner.copy()
        digest.update(email.encode())
        result = outer.copy()
        result.update(digest.digest())
        return result.hexdigest()

    probes = ("reader@example.com", "ünïcode.ß@exämple.org", "")
    if any(fast(probe) != address_hash(probe) for probe in probes):
        return address_hash
    return fast


_STATUS = {
    State.ACTIVE: SubscriberStatus.ACTIVE,
    State.PENDING: SubscriberStatus.PENDING,
    State.UNSUBSCRIBED: SubscriberStatus.UNSUBSCRIBED,
    State.BOUNCED: SubscriberStatus.BOUNCED,
    State.COMPLAINED: SubscriberStatus.COMPLAINED,
}
# Per row: the rest of the columns are shared by the whole run (_shared_columns).
_VARYING = (
    "status",
    "consent_at",
    "consent_ip",
    "consent_method",
    "confirmed_at",
    "confirm_sent_at",
    "unsubscribed_at",
    "paused",
)


@dataclass
class _Run:
    source: str
    label: str
    require_confirmation: bool
    max_id_before: int
    # One bit per subscriber who existed before the run, set once the file has named them:
    # a later row with the same address is a duplicate, whatever batch it falls in. Exact,
    # and an eighth of a byte per existing subscriber, whatever the file's length.
    seen: bytearray
    report: ImportReport
    hash_of: Callable[[str], str] = address_hash
    _plain: tuple[Any, tuple[Any, ...]] = (None, ())

    def first_sight(self, subscriber_id: int) -> bool:
        byte, bit = divmod(subscriber_id, 8)
        if self.seen[byte] & (1 << bit):
            return False
        self.seen[byte] |= 1 << bit
        return True

    def columns_for(self, c: Candidate, now: datetime) -> tuple[Any, ...]:
        """The varying columns (_VARYING) of a new row for this candidate."""
        state = c.verdict.state
        if state == State.ACTIVE and not self.require_confirmation:
            if c.signup_at is None and c.consent_ip is None and not c.paused:
                # Most rows of a large file: one tuple, so the insert processes it once.
                if self._plain[0] is not now:
                    self._plain = (
                        now,
                        (SubscriberStatus.ACTIVE, now, None, "import", now, None, None, False),
                    )
                return self._plain[1]
            # The importer vouches for consent given elsewhere, at the time the file says.
            consent_at = c.signup_at or now
            return (
                SubscriberStatus.ACTIVE,
                consent_at,
                c.consent_ip,
                "import",
                consent_at,
                None,
                None,
                c.paused,
            )
        if state == State.ACTIVE:
            return (SubscriberStatus.PENDING, None, None, "", None, now, None, c.paused)
        if state == State.PENDING:
            # Never confirmed there: pending here, and no mail (see the README).
            return (SubscriberStatus.PENDING, None, None, "", None, None, None, c.paused)
        left_at = c.left_at or now
        unsubscribed_at = left_at if state == State.UNSUBSCRIBED else None
        return (
            _STATUS[state],
            c.signup_at,
            c.consent_ip,
            "import",
            None,
            None,
            unsubscribed_at,
            c.paused,
        )

    def suppression(self, c: Candidate, email_hash: str) -> dict[str, str]:
        return {
            "email_hash": email_hash,
            "reason": c.verdict.reason,  # a word of ours: within the column's 32
            "detail": f"import from {self.label} ({self.source}, line {c.line}): {c.verdict.why}",
        }


def _write_batch(session: Session, run: _Run, batch: list[Candidate]) -> list[ConfirmationRequest]:
    report = run.report
    now = utcnow()
    first: dict[str, Candidate] = {}
    for candidate in batch:
        if candidate.email in first:
            report.skip("duplicate", candidate.line)
        elif candidate.verdict.state == State.NEVER:
            report.keep_out(candidate.verdict, candidate.line)
        else:
            first[candidate.email] = candidate
    hashes = {email: run.hash_of(email) for email in first}
    suppressed = bulk.suppressed_among(session, list(hashes.values()))
    fresh: list[tuple[str, str, str, tuple[Any, ...]]] = []
    for email, email_hash in hashes.items():
        candidate = first[email]
        if email_hash in suppressed:
            if candidate.verdict.state.left:
                report.keep_out(candidate.verdict, candidate.line)
            else:
                report.skip("suppressed", candidate.line)
        else:
            fresh.append((email, email_hash, candidate.name, run.columns_for(candidate, now)))
    # Insert first and look up only the addresses that were already there: in a large import
    # most rows are new, and one probe of the email index per row is enough.
    # Sorted, so the inserts walk the index in order instead of jumping around it.
    fresh.sort()
    inserted = bulk.insert_new(session, fresh, _VARYING, _shared_columns(run, now))
    added: set[str] = set()
    if len(inserted) < len(fresh):
        added.update(email for email, _ in inserted)
    leaving: list[dict[str, str]] = []
    tags: list[tuple[str, str]] = []
    confirmations: list[ConfirmationRequest] = []
    active_lines: list[int] = []
    for email, public_id in inserted:
        candidate = first[email]
        if candidate.tags:
            tags.extend((email, t) for t in candidate.tags)
        state = candidate.verdict.state
        if state is State.ACTIVE and not run.require_confirmation:
            active_lines.append(candidate.line)
            continue
        if state.left:
            report.keep_out(candidate.verdict, candidate.line)
            leaving.append(run.suppression(candidate, hashes[email]))
            continue
        report.pending += 1
        if state == State.PENDING:
            report.note("imported", "pending: never confirmed, sent nothing", candidate.line)
        else:
            report.note("imported", "pending: confirmation mailed", candidate.line)
            confirmations.append(
                ConfirmationRequest(email, candidate.name, confirmation_token_for(public_id, now))
            )
    report.imported += len(inserted) - len(leaving)
    report.note_many("imported", "active", sorted(active_lines))
    # Every row went in (the usual case in a large import): nobody to look up.
    there = [] if len(inserted) == len(fresh) else [e for e, *_ in fresh if e not in added]
    existing = bulk.existing_by_email(session, there)
    renames: list[dict[str, Any]] = []
    renamed_lines: list[int] = []
    left_now: list[dict[str, Any]] = []
    left_candidates: list[Candidate] = []
    for email in there:
        known = existing.get(email)
        candidate = first[email]
        if known is None or known.id > run.max_id_before or not run.first_sight(known.id):
            # Added or already met earlier in this run: the file names this person twice. (Or
            # erased in the instant between the insert and the look-up: nothing to do.)
            report.skip("duplicate", candidate.line)
            continue
        tags.extend((email, t) for t in candidate.tags)
        if candidate.verdict.state.left:
            if known.status in repository.LEFT:
                report.keep_out(candidate.verdict, candidate.line)
                continue
            status = _STATUS[candidate.verdict.state]
            left_at = candidate.left_at or now
            left_now.append(
                {
                    "b_id": known.id,
                    "b_status": status,
                    "b_left_at": left_at,
                    "b_unsubscribed_at": left_at
                    if status == SubscriberStatus.UNSUBSCRIBED
                    else None,
                    "b_now": now,
                }
            )
            left_candidates.append(candidate)
            leaving.append(run.suppression(candidate, hashes[email]))
        elif known.status in repository.LEFT:
            report.skip("suppressed", candidate.line)
        elif candidate.name and candidate.name != known.name:
            renames.append({"b_id": known.id, "b_name": candidate.name, "b_now": now})
            renamed_lines.append(candidate.line)
        else:
            report.skip("unchanged", candidate.line)
    if left_now:
        bulk.mark_left_many(session, left_now)
        now_left = bulk.left_among(session, [change["b_id"] for change in left_now])
        for change, candidate in zip(left_now, left_candidates, strict=True):
            if change["b_id"] in now_left:
                report.marked_left += 1
                report.keep_out(candidate.verdict, candidate.line)
            else:
                # Their consent here is newer than their leaving there: they came back by
                # themselves, and neither their status nor a suppression changes. Said so, so
                # the admin does not read "unchanged" for a file that says they left.
                report.skip(
                    "consented since",
                    candidate.line,
                    "the file says they left, but they subscribed here after that; still "
                    "subscribed",
                )
                drop = hashes[candidate.email]
                leaving = [e for e in leaving if e["email_hash"] != drop]
    bulk.suppress_many(session, leaving)
    renamed = bulk.rename_many(session, renames)
    report.updated += renamed
    for line in renamed_lines[:renamed]:
        report.note("updated", "name changed", line)
    for line in renamed_lines[renamed:]:
        report.skip("suppressed", line)
    bulk.add_tags(session, tags)
    return confirmations


def _shared_columns(run: _Run, now: datetime) -> dict[str, Any]:
    return {
        "source": run.source,
        "tracking_opt_out": False,
        "created_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True)
class Preview:
    """What the upload page shows before importing: the detected format and the mapping."""

    mapping: Mapping
    headers: list[str]
    sample: list[list[str]]


def preview(path: Path, fmt: str | None = None, overrides: dict[str, str] | None = None) -> Preview:
    """Read the header (and a few rows) only. Raises ImportRefused like import_csv."""
    with path.open("rb") as stream:
        reader = _Reader(stream, ImportReport(), _format(fmt), overrides)
        sample: list[list[str]] = []
        for _ in range(5):
            try:
                row = next(reader.csv)
            except (StopIteration, csv.Error):
                break
            sample.append([cell[:80] for cell in row])
        return Preview(reader.mapping, reader.headers(), sample)


def _format(key: str | None) -> Format | None:
    if not key:
        return None
    try:
        return FORMATS[key.strip().lower()]
    except KeyError:
        raise ImportRefused(f"unknown format {key!r}; use one of {', '.join(FORMATS)}") from None


# After a large import PostgreSQL's planner would, until autovacuum's next ANALYZE, take the
# table for the size it was: it then scans a million rows for a search the trigram index
# answers in milliseconds.
ANALYZE_AFTER_ROWS = 10_000


def import_csv(
    path: Path,
    *,
    require_confirmation: bool = False,
    send_confirmation: Callable[[ConfirmationRequest], object] | None = None,
    on_progress: Callable[[int], None] | None = None,
    fmt: str | None = None,
    overrides: dict[str, str] | None = None,
    dry_run: bool = False,
    source_name: str | None = None,
) -> ImportReport:
    """Import one CSV file. Raises ImportRefused (before writing anything) for a file that has
    no recognisable email column, is empty, or whose header cannot be read; every other problem
    is a row in the report. `source_name` is the file's name as the admin knows it (an upload
    is stored under another)."""
    report = ImportReport(dry_run=dry_run)
    chosen = _format(fmt)
    name = source_name or path.name
    with path.open("rb") as stream:
        reader = _Reader(stream, report, chosen, overrides)
        mapping = reader.mapping
        report.mapping = mapping.to_json()
        with transaction() as session:
            max_id_before = bulk.max_id(session)
        report.new_after_id = max_id_before
        tool = "" if mapping.fmt.key == "generic" else f"{mapping.fmt.key}:"
        run = _Run(
            source=f"import:{tool}{name}"[:64],
            label=mapping.fmt.label,
            require_confirmation=require_confirmation,
            max_id_before=max_id_before,
            seen=bytearray(max_id_before // 8 + 1),
            report=report,
            hash_of=_hasher(),
        )
        candidates = iter(reader)
        if dry_run:
            # One transaction for the whole file, rolled back: the counts are exactly those of
            # a real import (a duplicate in a later batch is still a duplicate).
            with transaction() as session:
                with bulk.bulk_write(session):
                    while batch := list(islice(candidates, BATCH_ROWS)):
                        _write_batch(session, run, batch)
                        if on_progress:
                            on_progress(reader.lines.bytes_read)
                session.rollback()
            return report
        done = False
        while not done:
            confirmations: list[ConfirmationRequest] = []
            with transaction() as session, bulk.bulk_write(session):
                written = 0
                while written < COMMIT_ROWS:
                    batch = list(islice(candidates, BATCH_ROWS))
                    if not batch:
                        done = True
                        break
                    confirmations += _write_batch(session, run, batch)
                    written += len(batch)
                    if on_progress:
                        on_progress(reader.lines.bytes_read)
            # Mail goes out only once the rows it confirms have committed.
            for request in confirmations:
                if send_confirmation is not None:
                    send_confirmation(request)
                    report.confirmations_sent += 1
    if report.imported + report.kept_out >= ANALYZE_AFTER_ROWS:
        with transaction() as session:
            bulk.refresh_statistics(session)
    return report

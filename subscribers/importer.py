"""Import a subscriber CSV as other tools export it, streaming, in batches.

Real exports differ in everything but the idea: a UTF-8 BOM (Excel), header names in any case
and order ("Email Address", "E-mail", "First Name"…), extra columns, `;` instead of `,` (Excel
in much of Europe), quoted fields, blank lines, the same person twice in different case. Each
row is judged alone: an invalid one is reported with its line number and reason and nothing of
it is written; the others go in.

The file is read once, a batch at a time, and each batch is its own transaction, so memory
stays flat whatever the file's size and a long import does not hold the database's write lock
for its whole length. An interrupted import can simply be run again: rows already in are
skipped.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from newsletter.db import transaction
from newsletter.orm import utcnow
from subscribers import repository
from subscribers.addresses import InvalidAddress, address_hash, normalise
from subscribers.models import SubscriberStatus
from subscribers.service import ConfirmationRequest, confirmation_token_for

BATCH_ROWS = 5000
MAX_NAME = 200
_DELIMITERS = (",", ";", "\t")

EMAIL_HEADERS = frozenset(
    {"email", "e mail", "email address", "e mail address", "emailaddress", "mail", "email addr"}
)
NAME_HEADERS = frozenset({"name", "full name", "fullname", "display name", "subscriber name"})
FIRST_NAME_HEADERS = frozenset({"first name", "firstname", "first", "given name", "fname"})
LAST_NAME_HEADERS = frozenset({"last name", "lastname", "last", "surname", "family name", "lname"})


class ImportRefused(ValueError):
    """The file as a whole cannot be read as a subscriber list; nothing was written."""


@dataclass(frozen=True)
class InvalidRow:
    line: int
    value: str
    reason: str


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    invalid: list[InvalidRow] = field(default_factory=list)
    skipped_by_reason: dict[str, int] = field(
        default_factory=lambda: {"duplicate": 0, "suppressed": 0, "unchanged": 0}
    )
    confirmations_sent: int = 0

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped += count
        self.skipped_by_reason[reason] += count

    def to_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "skipped": self.skipped,
            "invalid": [
                {"line": i.line, "value": i.value, "reason": i.reason} for i in self.invalid
            ],
            "skipped_by_reason": dict(self.skipped_by_reason),
            "confirmations_sent": self.confirmations_sent,
        }


@dataclass(frozen=True)
class Candidate:
    line: int
    email: str
    name: str


# --- reading --------------------------------------------------------------------------------


def _header_key(cell: str) -> str:
    return " ".join(re.sub(r"[_\-.]", " ", cell.strip().strip('"').lower()).split())


@dataclass(frozen=True)
class Columns:
    email: int
    name: int | None = None
    first: int | None = None
    last: int | None = None
    has_header: bool = True

    def name_of(self, row: list[str]) -> str:
        def cell(i: int | None) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""

        if self.name is not None and cell(self.name):
            return cell(self.name)
        return " ".join(p for p in (cell(self.first), cell(self.last)) if p)


def _columns(first_row: list[str], line: int) -> Columns:
    keys = [_header_key(c) for c in first_row]

    def find(names: frozenset[str]) -> int | None:
        return next((i for i, k in enumerate(keys) if k in names), None)

    email = find(EMAIL_HEADERS)
    if email is not None:
        return Columns(email, find(NAME_HEADERS), find(FIRST_NAME_HEADERS), find(LAST_NAME_HEADERS))
    # No header at all: a bare list of addresses (first column holding one) is still a list.
    for i, cell in enumerate(first_row):
        try:
            normalise(cell)
        except InvalidAddress:
            continue
        return Columns(i, has_header=False)
    found = ", ".join(repr(c.strip()) for c in first_row if c.strip()) or "nothing"
    raise ImportRefused(
        f"line {line}: no email column in the header (found {found}); "
        "name one 'email', 'e-mail' or 'email address'"
    )


class _Lines:
    """The file's lines as text, counting bytes for progress and lines that are not UTF-8."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.bytes_read = 0
        self.bad_lines: set[int] = set()
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        for raw in self.stream:
            self.bytes_read += len(raw)
            self.number += 1
            if self.number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                self.bad_lines.add(self.number)
                yield raw.decode("utf-8", errors="replace")


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_candidates(
    stream: IO[bytes], invalid: list[InvalidRow], lines: _Lines | None = None
) -> Iterator[Candidate]:
    """Valid rows, normalised, in file order; invalid rows are appended to `invalid`."""
    lines = lines or _Lines(stream)
    text = iter(lines)
    header_line = ""
    for candidate in text:
        if candidate.strip():
            header_line = candidate
            break
    if not header_line:
        raise ImportRefused("the file is empty: expected a header line naming an email column")
    header_at = lines.number
    delimiter = _sniff_delimiter(header_line)

    def rest() -> Iterator[str]:
        yield header_line
        yield from text

    reader = csv.reader(rest(), delimiter=delimiter)
    first = next(reader)
    columns = _columns(first, header_at)
    offset = header_at - 1  # the reader's line 1 is the file's line `header_at`
    if not columns.has_header:
        judged = _judge(
            first, header_at, offset + reader.line_num, columns, invalid, lines, delimiter
        )
        if judged is not None:
            yield judged
    previous = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            invalid.append(InvalidRow(offset + previous + 1, "", f"unreadable CSV: {exc}"))
            previous = reader.line_num
            continue
        # csv.reader counts the lines it consumed; a record starts on the line after the last.
        line, previous = offset + previous + 1, reader.line_num
        judged = _judge(row, line, offset + previous, columns, invalid, lines, delimiter)
        if judged is not None:
            yield judged


def _judge(
    row: list[str],
    line: int,
    end: int,
    columns: Columns,
    invalid: list[InvalidRow],
    lines: _Lines,
    delimiter: str,
) -> Candidate | None:
    """The row as a candidate, or None (blank, or reported invalid)."""
    if not any(cell.strip() for cell in row):
        return None
    raw_email = row[columns.email].strip() if columns.email < len(row) else ""
    if any(n in lines.bad_lines for n in range(line, end + 1)):
        invalid.append(InvalidRow(line, raw_email, "not UTF-8 text (save the file as CSV UTF-8)"))
        return None
    if not raw_email:
        invalid.append(InvalidRow(line, delimiter.join(row).strip(), "missing email address"))
        return None
    try:
        email = normalise(raw_email)
    except InvalidAddress as exc:
        invalid.append(InvalidRow(line, raw_email, str(exc)))
        return None
    name = columns.name_of(row)
    if len(name) > MAX_NAME:
        invalid.append(InvalidRow(line, raw_email, f"name longer than {MAX_NAME} characters"))
        return None
    return Candidate(line, email, name)


# --- writing --------------------------------------------------------------------------------


@dataclass
class _Run:
    source: str
    require_confirmation: bool
    started_at: datetime
    max_id_before: int
    report: ImportReport
    send: Callable[[ConfirmationRequest], object] | None


def _write_batch(run: _Run, batch: list[Candidate]) -> list[ConfirmationRequest]:
    now = utcnow()
    first: dict[str, Candidate] = {}
    for candidate in batch:
        if candidate.email in first:
            run.report.skip("duplicate")
        else:
            first[candidate.email] = candidate
    hashes = {email: address_hash(email) for email in first}
    new_rows: list[dict[str, Any]] = []
    renames: list[dict[str, Any]] = []
    with transaction() as session:
        existing = repository.existing_by_email(session, list(first))
        suppressed = repository.suppressed_among(session, list(hashes.values()))
        for email, candidate in first.items():
            known = existing.get(email)
            if known is not None and (
                known.id > run.max_id_before or known.updated_at >= run.started_at
            ):
                # Written earlier in this same run: the file names this person twice.
                run.report.skip("duplicate")
            elif hashes[email] in suppressed or (known and known.status in repository.LEFT):
                run.report.skip("suppressed")
            elif known is not None:
                if candidate.name and candidate.name != known.name:
                    renames.append({"b_id": known.id, "b_name": candidate.name, "b_now": now})
                else:
                    run.report.skip("unchanged")
            else:
                new_rows.append(_new_row(run, email, hashes[email], candidate.name, now))
        inserted = repository.insert_new(session, new_rows)
        renamed = repository.rename_many(session, renames)
    run.report.imported += len(inserted)
    run.report.skip("duplicate", len(new_rows) - len(inserted))
    run.report.updated += renamed
    run.report.skip("suppressed", len(renames) - renamed)
    if not run.require_confirmation:
        return []
    return [
        ConfirmationRequest(row.email, row.name, confirmation_token_for(row.id, now))
        for row in inserted
    ]


def _new_row(run: _Run, email: str, email_hash: str, name: str, now: datetime) -> dict[str, Any]:
    vouched = not run.require_confirmation
    return {
        "email": email,
        "email_hash": email_hash,
        "name": name,
        "status": SubscriberStatus.ACTIVE if vouched else SubscriberStatus.PENDING,
        "source": run.source,
        # The importer vouches for consent given elsewhere; the record says so.
        "consent_at": now if vouched else None,
        "consent_ip": None,
        "consent_method": "import" if vouched else "",
        "confirmed_at": now if vouched else None,
        "confirm_sent_at": None if vouched else now,
        "unsubscribed_at": None,
        "paused": False,
        "tracking_opt_out": False,
        "created_at": now,
        "updated_at": now,
    }


def import_csv(
    path: Path,
    *,
    require_confirmation: bool = False,
    send_confirmation: Callable[[ConfirmationRequest], object] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import one CSV file. Raises ImportRefused (before writing anything) for a file that has
    no recognisable email column or is empty; every other problem is a row in the report."""
    report = ImportReport()
    with transaction() as session:
        max_id_before = repository.max_id(session)
    run = _Run(
        source=f"import:{path.name}"[:64],
        require_confirmation=require_confirmation,
        started_at=utcnow(),
        max_id_before=max_id_before,
        report=report,
        send=send_confirmation,
    )
    with path.open("rb") as stream:
        lines = _Lines(stream)
        batch: list[Candidate] = []
        for candidate in read_candidates(stream, report.invalid, lines):
            batch.append(candidate)
            if len(batch) >= BATCH_ROWS:
                _flush(run, batch)
                batch = []
                if on_progress:
                    on_progress(lines.bytes_read)
        _flush(run, batch)
        if on_progress:
            on_progress(lines.bytes_read)
    return report


def _flush(run: _Run, batch: list[Candidate]) -> None:
    if not batch:
        return
    # Mail goes out only after the batch that created the pending rows has committed.
    for request in _write_batch(run, batch):
        if run.send is not None:
            run.send(request)
            run.report.confirmations_sent += 1

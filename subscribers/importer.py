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
from itertools import islice
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.orm import utcnow
from subscribers import repository
from subscribers.addresses import InvalidAddress, address_hash, normalise
from subscribers.models import SubscriberStatus
from subscribers.service import ConfirmationRequest, clean_name, confirmation_token_for

BATCH_ROWS = 5000  # rows looked up and inserted per statement group
# Rows per transaction. SQLite rewrites every index page a transaction touched into its WAL at
# commit; with addresses arriving in random order each commit touches pages all over both
# unique indexes, so fewer, larger commits write far less. Still bounded: memory stays flat.
COMMIT_ROWS = 50_000
MAX_NAME = 200
_DELIMITERS = (",", ";", "\t")

EMAIL_HEADERS = frozenset(
    {"email", "e mail", "email address", "e mail address", "emailaddress", "mail", "email addr"}
)
NAME_HEADERS = frozenset({"name", "full name", "fullname", "display name", "subscriber name"})
FIRST_NAME_HEADERS = frozenset({"first name", "firstname", "first", "given name", "fname"})
LAST_NAME_HEADERS = frozenset({"last name", "lastname", "last", "surname", "family name", "lname"})


# A cell starting with one of these is a formula to Excel or LibreOffice: a name typed into the
# public form as "=HYPERLINK(…)" would run when an admin opens the export. The export prefixes
# such a name with an apostrophe (what spreadsheets themselves do); the import takes it off.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _from_spreadsheet(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_STARTS) else text


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
        width = len(row)
        if self.name is not None and self.name < width:
            name = row[self.name].strip()
            if name:
                return name
        first = row[self.first].strip() if self.first is not None and self.first < width else ""
        last = row[self.last].strip() if self.last is not None and self.last < width else ""
        return f"{first} {last}" if first and last else first or last


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
    """The file's lines as text, counting bytes for progress and lines that cannot be read.

    Excel on Windows saves "CSV" in Windows-1252, so a line that is not UTF-8 is read as that
    (a Windows-1252 line is almost never valid UTF-8 by accident, so UTF-8 files are unaffected);
    only a line that is neither is refused."""

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
                try:
                    yield raw.decode("cp1252")
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
    raw_email = row[columns.email].strip() if columns.email < len(row) else ""
    if not raw_email and not "".join(row).strip():
        return None
    if lines.bad_lines and any(n in lines.bad_lines for n in range(line, end + 1)):
        invalid.append(
            InvalidRow(
                line, raw_email, "neither UTF-8 nor Windows-1252 text (save the file as CSV UTF-8)"
            )
        )
        return None
    if not raw_email:
        invalid.append(InvalidRow(line, delimiter.join(row).strip(), "missing email address"))
        return None
    try:
        email = normalise(raw_email)
    except InvalidAddress as exc:
        invalid.append(InvalidRow(line, raw_email, str(exc)))
        return None
    name = clean_name(_from_spreadsheet(columns.name_of(row)))
    if len(name) > MAX_NAME:
        invalid.append(InvalidRow(line, raw_email, f"name longer than {MAX_NAME} characters"))
        return None
    return Candidate(line, email, name)


# --- writing --------------------------------------------------------------------------------


@dataclass
class _Run:
    source: str
    require_confirmation: bool
    max_id_before: int
    # One bit per subscriber who existed before the run, set once the file has named them:
    # a later row with the same address is a duplicate, whatever batch it falls in. Exact,
    # and an eighth of a byte per existing subscriber, whatever the file's length.
    seen: bytearray

    def first_sight(self, subscriber_id: int) -> bool:
        byte, bit = divmod(subscriber_id, 8)
        if self.seen[byte] & (1 << bit):
            return False
        self.seen[byte] |= 1 << bit
        return True

    report: ImportReport


def _write_batch(session: Session, run: _Run, batch: list[Candidate]) -> list[ConfirmationRequest]:
    now = utcnow()
    first: dict[str, Candidate] = {}
    for candidate in batch:
        if candidate.email in first:
            run.report.skip("duplicate")
        else:
            first[candidate.email] = candidate
    hashes = {email: address_hash(email) for email in first}
    suppressed = repository.suppressed_among(session, list(hashes.values()))
    # Insert first and look up only the addresses that were already there: in a large import
    # most rows are new, and one probe of the email index per row is enough.
    # Sorted, so the inserts walk the index in order instead of jumping around it.
    fresh = sorted(
        (email, email_hash, first[email].name)
        for email, email_hash in hashes.items()
        if email_hash not in suppressed
    )
    run.report.skip("suppressed", len(first) - len(fresh))
    inserted = repository.insert_new(session, fresh, _shared_columns(run, now))
    run.report.imported += len(inserted)
    added = {row.email for row in inserted}
    there = [email for email, _, _ in fresh if email not in added]
    existing = repository.existing_by_email(session, there)
    renames: list[dict[str, Any]] = []
    for email in there:
        known = existing.get(email)
        if known is None or known.id > run.max_id_before or not run.first_sight(known.id):
            # Added or already met earlier in this run: the file names this person twice. (Or
            # erased in the instant between the insert and the look-up: nothing to do.)
            run.report.skip("duplicate")
        elif known.status in repository.LEFT:
            run.report.skip("suppressed")
        elif first[email].name and first[email].name != known.name:
            renames.append({"b_id": known.id, "b_name": first[email].name, "b_now": now})
        else:
            run.report.skip("unchanged")
    renamed = repository.rename_many(session, renames)
    run.report.updated += renamed
    run.report.skip("suppressed", len(renames) - renamed)
    if not run.require_confirmation:
        return []
    return [
        ConfirmationRequest(row.email, row.name, confirmation_token_for(row.public_id, now))
        for row in inserted
    ]


def _shared_columns(run: _Run, now: datetime) -> dict[str, Any]:
    vouched = not run.require_confirmation
    return {
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
        max_id_before=max_id_before,
        seen=bytearray(max_id_before // 8 + 1),
        report=report,
    )
    with path.open("rb") as stream:
        lines = _Lines(stream)
        candidates = read_candidates(stream, report.invalid, lines)
        done = False
        while not done:
            confirmations: list[ConfirmationRequest] = []
            with transaction() as session:
                repository.prepare_bulk_write(session)
                written = 0
                while written < COMMIT_ROWS:
                    batch = list(islice(candidates, BATCH_ROWS))
                    if not batch:
                        done = True
                        break
                    confirmations += _write_batch(session, run, batch)
                    written += len(batch)
                    if on_progress:
                        on_progress(lines.bytes_read)
            # Mail goes out only once the rows it confirms have committed.
            for request in confirmations:
                if send_confirmation is not None:
                    send_confirmation(request)
                    report.confirmations_sent += 1
    return report

"""Reading a subscriber CSV as other tools export it: the encoding, the delimiter, the header
and the tool's format (subscribers/formats.py), each line judged alone into a `Candidate` or an
`InvalidRow`. No database: the import (importer.py) writes what this reads.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, NamedTuple

from newsletter.errors import Refused
from subscribers.addresses import InvalidAddress, normalise
from subscribers.formats import (
    FORMATS,
    MAX_TAG,
    MAX_TAGS,
    SUBSCRIBED,
    Format,
    Mapping,
    MappingError,
    State,
    Verdict,
    is_true,
    parse_time,
    resolve,
    split_tags,
)
from subscribers.service import clean_name

if TYPE_CHECKING:
    from subscribers.importer import ImportReport

MAX_NAME = 200
# No real row is this long; a file that is one endless line must not be read into memory whole.
MAX_LINE_BYTES = 1024 * 1024
_DELIMITERS = (",", ";", "\t")


# A cell starting with one of these is a formula to Excel or LibreOffice: a name typed into the
# public form as "=HYPERLINK(…)" would run when an admin opens the export. The export prefixes
# such a cell with an apostrophe (what spreadsheets themselves do, and OWASP's advice); a cell
# that already starts with an apostrophe gets one more, so the import can take exactly one off
# and every value comes back as it was, addresses included ("-x@example.com" is valid).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED = (*_FORMULA_STARTS, "'")


def spreadsheet_safe(text: str) -> str:
    return "'" + text if text.startswith(_ESCAPED) else text


def _from_spreadsheet(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_ESCAPED) else text


class ImportRefused(Refused):
    """The file as a whole cannot be read as a subscriber list; nothing was written."""


@dataclass(frozen=True)
class InvalidRow:
    line: int
    value: str
    reason: str


# A named tuple rather than a frozen dataclass: made once per row, and a frozen dataclass's
# __init__ (one object.__setattr__ a field) cost four times as much.
class Candidate(NamedTuple):
    line: int
    email: str
    name: str
    verdict: Verdict = SUBSCRIBED
    signup_at: datetime | None = None
    left_at: datetime | None = None
    consent_ip: str | None = None
    tags: tuple[str, ...] = ()
    paused: bool = False


class _Lines:
    """The file's lines as text, counting bytes for progress and lines that cannot be read.

    Excel on Windows saves "CSV" in Windows-1252, so a line that is not UTF-8 is read as that
    (a Windows-1252 line is almost never valid UTF-8 by accident, so UTF-8 files are unaffected);
    only a line that is neither is refused. A file starting with a UTF-16 byte-order mark (Excel's
    "Unicode text") is read as UTF-16. A line longer than MAX_LINE_BYTES is skipped and refused,
    never held in memory whole."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.bytes_read = 0
        self.bad_lines: dict[int, str] = {}
        self.number = 0
        self.encoding = "utf-8"
        head = stream.read(4)
        rest = stream.read(60)
        if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
            raise ImportRefused("the file is UTF-32 text: save it as CSV UTF-8")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            self.encoding = "utf-16"
        elif (head + rest).count(b"\x00") * 4 >= len(head + rest) > 8:
            raise ImportRefused(
                "the file looks like UTF-16 text without a byte-order mark: "
                "save it as CSV UTF-8 (or UTF-16 with a BOM)"
            )
        stream.seek(0)

    def __iter__(self) -> Iterator[str]:
        if self.encoding == "utf-16":
            yield from self._utf16()
            return
        readline = self.stream.readline
        while raw := readline(MAX_LINE_BYTES):
            self.bytes_read += len(raw)
            self.number += 1
            if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (more := readline(MAX_LINE_BYTES)) and not more.endswith(b"\n"):
                    self.bytes_read += len(more)
                self.bytes_read += len(more)
                self.bad_lines[self.number] = f"line longer than {MAX_LINE_BYTES:,} bytes"
                yield "\n"
                continue
            if self.number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                try:
                    yield raw.decode("cp1252")
                except UnicodeDecodeError:
                    self.bad_lines[self.number] = (
                        "neither UTF-8 nor Windows-1252 text (save the file as CSV UTF-8)"
                    )
                    yield raw.decode("utf-8", errors="replace")

    def _utf16(self) -> Iterator[str]:
        text = io.TextIOWrapper(self.stream, encoding="utf-16", errors="replace", newline="")
        limit = MAX_LINE_BYTES // 2
        while line := text.readline(limit):
            # Two bytes a character (four for the rare pair): close enough for a progress bar.
            self.bytes_read += 2 * len(line)
            self.number += 1
            if len(line) == limit and not line.endswith("\n"):
                while (more := text.readline(limit)) and not more.endswith("\n"):
                    self.bytes_read += 2 * len(more)
                self.bytes_read += 2 * len(more)
                self.bad_lines[self.number] = f"line longer than {MAX_LINE_BYTES:,} bytes"
                yield "\n"
                continue
            if "\ufffd" in line:
                self.bad_lines[self.number] = "not valid UTF-16 text (save the file as CSV UTF-8)"
            yield line  # the codec has already taken the byte-order mark off


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _bare_address_column(first_row: list[str]) -> int | None:
    """No header at all: a bare list of addresses (a column holding one) is still a list."""
    for i, cell in enumerate(first_row):
        try:
            normalise(cell)
        except InvalidAddress:
            continue
        return i
    return None


class _Reader:
    """The file's rows as candidates, in file order; invalid rows go to the report.

    The header is read when the reader is made, so a file that cannot be read as a list is
    refused before anything is written."""

    def __init__(
        self,
        stream: IO[bytes],
        report: ImportReport,
        fmt: Format | None = None,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.report = report
        self.lines = _Lines(stream)
        text = iter(self.lines)
        header_line = next((line for line in text if line.strip()), "")
        if not header_line:
            if self.lines.bad_lines:
                line, why = next(iter(self.lines.bad_lines.items()))
                raise ImportRefused(f"line {line}: the header cannot be read: {why}")
            raise ImportRefused("the file is empty: expected a header line naming an email column")
        self.header_at = self.lines.number
        # A bad line before the header (an overlong one reads as blank) is the header that
        # could not be read: without this the next line became the header, or the file a bare
        # list of addresses, and the first line vanished without a word.
        unreadable = [n for n in self.lines.bad_lines if n <= self.header_at]
        if unreadable:
            raise ImportRefused(
                f"line {unreadable[0]}: the header cannot be read: "
                f"{self.lines.bad_lines[unreadable[0]]}"
            )
        self.delimiter = _sniff_delimiter(header_line)

        def rest() -> Iterator[str]:
            yield header_line
            yield from text

        self.csv = csv.reader(rest(), delimiter=self.delimiter)
        try:
            first = next(self.csv)
        except csv.Error as exc:
            raise ImportRefused(
                f"line {self.header_at}: the header cannot be read: {exc}"
            ) from None
        self.first = first
        self.has_header = True
        try:
            self.mapping = resolve(first, fmt, overrides)
        except MappingError as exc:
            bare = None if (fmt or overrides) else _bare_address_column(first)
            if bare is None:
                raise ImportRefused(f"line {self.header_at}: {exc}") from None
            self.mapping = Mapping(FORMATS["generic"], (), {"email": bare})
            self.has_header = False
        columns = self.mapping.columns
        self.email = columns["email"]
        self.name = columns.get("name")
        self.first_name = columns.get("first_name")
        self.last_name = columns.get("last_name")
        self.extra = {k: v for k, v in columns.items() if k not in _PLAIN}
        # Nothing but address and name, and no file-wide state: every row is simply subscribed.
        self.simple = not self.extra and self.mapping.file_state is None

    def headers(self) -> list[str]:
        return [c.strip() for c in self.first] if self.has_header else []

    def __iter__(self) -> Iterator[Candidate]:
        reader = self.csv
        offset = self.header_at - 1  # the reader's line 1 is the file's line `header_at`
        if not self.has_header:
            judged = self._judge(self.first, self.header_at, offset + reader.line_num)
            if judged is not None:
                yield judged
        previous = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.report.refuse(offset + previous + 1, "", f"unreadable CSV: {exc}")
                previous = reader.line_num
                continue
            # csv.reader counts the lines it consumed; a record starts on the line after the last.
            line, previous = offset + previous + 1, reader.line_num
            judged = self._judge(row, line, offset + previous)
            if judged is not None:
                yield judged

    def _name(self, row: list[str], width: int) -> str:
        if self.name is not None and self.name < width:
            name = row[self.name].strip()
            if name:
                return name
        first = (
            row[self.first_name].strip()
            if self.first_name is not None and self.first_name < width
            else ""
        )
        last = (
            row[self.last_name].strip()
            if self.last_name is not None and self.last_name < width
            else ""
        )
        return f"{first} {last}" if first and last else first or last

    def _judge(self, row: list[str], line: int, end: int) -> Candidate | None:
        """The row as a candidate, or None (blank, or reported invalid)."""
        bad = self.lines.bad_lines
        width = len(row)
        raw_email = row[self.email].strip() if self.email < width else ""
        if bad and any(n in bad for n in range(line, end + 1)):
            why = next(bad[n] for n in range(line, end + 1) if n in bad)
            self.report.refuse(line, raw_email[:320], why)
            return None
        if not raw_email and not "".join(row).strip():
            return None
        if not raw_email:
            value = self.delimiter.join(row).strip()
            self.report.refuse(line, value[:320], "missing email address")
            return None
        try:
            email = normalise(_from_spreadsheet(raw_email))
        except InvalidAddress as exc:
            self.report.refuse(line, raw_email[:320], str(exc))
            return None
        name = clean_name(_from_spreadsheet(self._name(row, width)))
        if len(name) > MAX_NAME:
            self.report.refuse(line, raw_email, f"name longer than {MAX_NAME} characters")
            return None
        if self.simple:
            return Candidate(line, email, name)
        return self._with_state(row, width, line, email, name)

    def _cell(self, row: list[str], width: int, name: str) -> str:
        index = self.extra.get(name)
        return row[index].strip() if index is not None and index < width else ""

    def _with_state(
        self, row: list[str], width: int, line: int, email: str, name: str
    ) -> Candidate | None:
        fmt = self.mapping.fmt
        headers = self.mapping.headers
        verdict = self.mapping.file_state or SUBSCRIBED
        for column in ("status", "list_status"):
            word = self._cell(row, width, column)
            if not word:
                continue
            found = fmt.verdict_for(word)
            if found is None:
                header = headers[self.extra[column]]
                self.report.refuse(
                    line,
                    email,
                    f"unknown status {word[:60]!r} in column {header!r} for {fmt.label}: "
                    "nobody is imported on a guess (choose the right --format, or map another "
                    "status column)",
                )
                return None
            verdict = _stricter(verdict, found)
        flag = self._cell(row, width, "unsubscribed_flag")
        if flag and is_true(flag) is not False:
            header = headers[self.extra["unsubscribed_flag"]]
            how = "= true" if is_true(flag) else "set"
            verdict = _stricter(verdict, Verdict(State.UNSUBSCRIBED, f"{header} {how}"))
        flag = self._cell(row, width, "subscribed_flag")
        if flag and is_true(flag) is False:
            header = headers[self.extra["subscribed_flag"]]
            verdict = _stricter(verdict, Verdict(State.UNSUBSCRIBED, f"{header} = false"))
        tags: tuple[str, ...] = ()
        if "tags" in self.extra:
            found_tags = split_tags(self._cell(row, width, "tags"), fmt.tag_separator)
            if len(found_tags) > MAX_TAGS:
                self.report.refuse(line, email, f"more than {MAX_TAGS} tags")
                return None
            if any(len(tag) > MAX_TAG for tag in found_tags):
                self.report.refuse(line, email, f"a tag longer than {MAX_TAG} characters")
                return None
            tags = tuple(found_tags)
        return Candidate(
            line,
            email,
            name,
            verdict,
            signup_at=parse_time(self._cell(row, width, "signup_at")),
            left_at=parse_time(self._cell(row, width, "left_at")),
            consent_ip=_ip(self._cell(row, width, "consent_ip")),
            tags=tags,
            paused=is_true(self._cell(row, width, "paused")) is True,
        )


_PLAIN = frozenset({"email", "name", "first_name", "last_name"})


def _stricter(a: Verdict, b: Verdict) -> Verdict:
    return b if b.state > a.state else a


def _ip(cell: str) -> str | None:
    try:
        return str(ipaddress.ip_address(cell)) if cell else None
    except ValueError:
        return None

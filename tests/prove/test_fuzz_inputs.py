"""Hypothesis against the two parsers strangers' files go through.

The matchup page parser: any text either parses or raises PageError (naming a line), never
anything else; any valid page built from generated parts parses back to exactly those parts,
through a BOM and CRLF line ends too. The CSV importer: any bytes give a report in which every
data row is accounted for (imported, updated, skipped or invalid), or a whole-file refusal with
nothing written.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from newsletter.db import transaction
from newsletter.matchups.page_parser import (
    FOOTER,
    HEADER,
    SCORECARD,
    decode_page,
    lens_of,
    parse_page,
)
from newsletter.matchups.schemas import PageError
from subscribers.importer import ImportRefused, import_csv
from subscribers.models import Subscriber
from tests.conftest import SEEDS

STRAPLINE = "Which one should you ship with? Here is the side-by-side panel verdict."
# One line of page text: no line breaks, something printable, no surrounding blanks.
line_text = (
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85"),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)
tool_name = line_text.filter(lambda s: " vs " not in s)
quote = line_text.filter(lambda s: not s.startswith("“") and not s.endswith("”"))


@st.composite
def tools(draw: st.DrawFn) -> dict[str, object]:
    return {
        "category": draw(line_text),
        "name": draw(tool_name),
        "tagline": draw(line_text),
        "panel": draw(st.integers(0, 100)),
        "community": draw(st.none() | st.integers(0, 100)),
        "entry": draw(line_text),
        "description": draw(line_text),
    }


def block(tool: dict[str, object]) -> list[str]:
    community = "—" if tool["community"] is None else f"{tool['community']}%"
    return [
        str(tool["category"]),
        str(tool["name"]),
        str(tool["tagline"]),
        f"{tool['panel']}%",
        "Panel ship",
        community,
        "Community",
        str(tool["entry"]),
        "Entry",
        str(tool["description"]),
    ]


@st.composite
def pages(draw: st.DrawFn) -> tuple[str, dict[str, object], dict[str, object], list[str]]:
    a = draw(tools())
    b = draw(tools())
    assume(a["name"] != b["name"])
    quotes = draw(st.lists(quote, min_size=2, max_size=10).filter(lambda q: len(q) % 2 == 0))
    lines = [
        HEADER,
        f"{a['name']} vs {b['name']}",
        STRAPLINE,
        *block(a),
        *block(b),
        SCORECARD,
        *(f"“{q}”" for q in quotes),
        FOOTER,
        "Get the next comparison in your inbox",
    ]
    return "\n".join(lines) + "\n", a, b, quotes


@given(page=pages(), bom=st.booleans(), crlf=st.booleans())
def test_a_valid_page_parses_back_to_its_parts(
    page: tuple[str, dict[str, object], dict[str, object], list[str]], bom: bool, crlf: bool
) -> None:
    text, a, b, quotes = page
    raw = text.replace("\n", "\r\n") if crlf else text
    data = parse_page(decode_page(("\ufeff" if bom else "").encode() + raw.encode()), "gen.txt")
    assert data.title == f"{a['name']} vs {b['name']}"
    for parsed, expected in zip(data.tools, (a, b), strict=True):
        assert parsed.name == expected["name"]
        assert parsed.category == expected["category"]
        assert parsed.tagline == expected["tagline"]
        assert parsed.panel_ship_pct == expected["panel"]
        assert parsed.community_pct == expected["community"]
        assert parsed.entry == expected["entry"]
        assert parsed.description == expected["description"]
    assert [r.quote for r in data.reviews] == [q.strip() for q in quotes]
    assert [r.tool for r in data.reviews] == [0, 1] * (len(quotes) // 2)
    for first, second in zip(data.reviews[::2], data.reviews[1::2], strict=True):
        assert first.reviewer == second.reviewer
        assert first.lens == second.lens == lens_of(first.quote, second.quote)


def seed_lines() -> list[str]:
    return decode_page(sorted(SEEDS.glob("*.txt"))[0].read_bytes()).split("\n")


@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["drop", "replace", "insert", "truncate"]),
            st.integers(0, 60),
            st.text(max_size=30),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_a_damaged_real_page_parses_or_is_refused_with_a_line(
    edits: list[tuple[str, int, str]],
) -> None:
    lines = seed_lines()
    for kind, at, text in edits:
        at %= max(len(lines), 1)
        if kind == "drop" and lines:
            del lines[at]
        elif kind == "replace" and lines:
            lines[at] = text
        elif kind == "insert":
            lines.insert(at, text)
        else:
            lines = lines[:at]
    try:
        parse_page("\n".join(lines), "damaged.txt")
    except PageError as exc:
        assert exc.reason
        assert exc.line is None or exc.line >= 1


@given(raw=st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
@example(raw=b"")
@example(raw=b"\xef\xbb\xbf")
@example(raw=HEADER.encode() + b"\n\n")
def test_any_bytes_parse_or_raise_page_error_only(raw: bytes) -> None:
    try:
        parse_page(decode_page(raw), "fuzz.txt")
    except PageError as exc:
        assert str(exc)


# --- the CSV importer -----------------------------------------------------------------------

cell = st.one_of(
    st.sampled_from(
        [
            "a@example.com",
            "A@Example.com",
            " b@example.com ",
            "not-an-address",
            "",
            '=HYPERLINK("x")',
            "'=1+1",
            "c@exa mple.com",
            "Ünïcode Name",
            "x" * 250,
            "d@example.com\r\nBcc: e@example.com",
        ]
    ),
    st.emails().map(str),
    st.text(max_size=30),
)
header = st.sampled_from(
    [
        ["email", "name"],
        ["Email Address", "First Name", "Last Name"],
        ["E-mail"],
        ["name", "email", "extra"],
        [],
        ["nothing", "useful"],
    ]
)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A CSV, and how many data rows it has if the csv module can say (else None)."""
    columns = draw(header)
    width = max(len(columns), 1)
    rows = draw(st.lists(st.lists(cell, min_size=0, max_size=width + 1), max_size=25))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))
    )
    if columns:
        writer.writerow(columns)
    writer.writerows(rows)
    text = buffer.getvalue()
    if draw(st.booleans()):
        text = "\ufeff" + text
    data = text.encode("utf-8")
    if draw(st.integers(0, 9)) == 0:  # now and then a file that is not UTF-8 at all
        data = text.encode("latin-1", errors="replace")
    if draw(st.integers(0, 9)) == 0:  # or one cut short mid-row
        data = data[: draw(st.integers(0, len(data)))]
    return data, None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@given(file=csv_files())
def test_the_importer_accounts_for_every_row_or_refuses_the_whole_file(
    db_url: str, tmp_path: Path, file: tuple[bytes, int | None]
) -> None:
    data, _ = file
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    with transaction() as session:
        before = session.scalar(select(func.count()).select_from(Subscriber)) or 0
    try:
        report = import_csv(path)
    except ImportRefused as exc:
        assert str(exc)
        with transaction() as session:
            assert session.scalar(select(func.count()).select_from(Subscriber)) == before
        return
    with transaction() as session:
        after = session.scalar(select(func.count()).select_from(Subscriber)) or 0
        names = list(session.scalars(select(Subscriber.name)))
    assert after - before == report.imported
    # Every non-blank data row is in exactly one bucket.
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    records = [
        r
        for r in csv.reader(io.StringIO(text, newline=""), delimiter=_sniffed(text))
        if "".join(r).strip()
    ]
    header_rows = 0 if _bare_list(records) else 1
    accounted = report.accounted()
    if "\r" not in text.replace("\r\n", "\n"):
        assert accounted == len(records) - header_rows, (accounted, records, report.to_json())
    for row in report.invalid:
        assert row.line >= 1 and row.reason
    assert all("\n" not in n and "\r" not in n for n in names)


def _sniffed(text: str) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _bare_list(records: list[list[str]]) -> bool:
    """No header row: the importer takes the first row as data when it holds an address."""
    from subscribers.addresses import InvalidAddress, normalise
    from subscribers.importer import EMAIL_HEADERS, _header_key

    if not records:
        return True
    if any(_header_key(c) in EMAIL_HEADERS for c in records[0]):
        return False
    for value in records[0]:
        try:
            normalise(value)
        except InvalidAddress:
            continue
        return True
    return False


def test_reimporting_renames_several_people_at_once_but_never_those_who_left(
    db_url: str, tmp_path: Path
) -> None:
    """Regression (found by the fuzz above): two renames in one batch crashed the import."""
    from subscribers import service

    path = tmp_path / "list.csv"
    path.write_text("email,name\na@example.com,Old\nb@example.com,Old\nc@example.com,Old\n")
    assert import_csv(path).imported == 3
    with transaction() as session:
        gone = service.find(session, "c@example.com")
        assert gone is not None
        service.unsubscribe(session, gone.id)
    path.write_text("email,name\na@example.com,New A\nb@example.com,New B\nc@example.com,New C\n")
    report = import_csv(path)
    assert (report.updated, report.skipped_by_reason["suppressed"]) == (2, 1)
    with transaction() as session:
        names = dict(session.execute(select(Subscriber.email, Subscriber.name)).all())
    assert names == {"a@example.com": "New A", "b@example.com": "New B", "c@example.com": "Old"}

"""Parser for the comparison site's matchup page (format described in PRODUCT.md).

A page is refused whole on the first problem, with the line it was found on: a half-read
matchup is worse than none.
"""

from __future__ import annotations

import re

from newsletter.matchups.models import Lens
from newsletter.matchups.schemas import MatchupData, PageError, ReviewData, ToolData, unstorable

HEADER = "AI tool comparison"
SCORECARD = "Reviewer scorecard"
FOOTER = "Weekly AI Tool Verdicts"
BLOCK_LABELS = {4: "Panel ship", 6: "Community", 8: "Entry"}
NO_VOTES = {"—", "–", "-", ""}

# How each lens's quote opens (PRODUCT.md). Matched on the quote about either tool.
LENS_OPENINGS: tuple[tuple[Lens, re.Pattern[str]], ...] = (
    (Lens.BUILDER, re.compile(r"^The primitive\b")),
    (Lens.SKEPTIC, re.compile(r"^(Direct competitors|Category)\b")),
    (Lens.FUTURIST, re.compile(r"^The thesis\b")),
    (Lens.MONEY, re.compile(r"^The buyer\b")),
)
_PERCENT = re.compile(r"^(\d{1,3})\s*%$")


def decode_page(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8-sig")  # the site's exports sometimes carry a BOM
    except UnicodeDecodeError as exc:
        raise PageError(f"not UTF-8 text (byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_page(text: str, source_name: str = "") -> MatchupData:
    lines = [line.strip() for line in text.split("\n")]
    for number, line in enumerate(lines, start=1):
        problem = unstorable(line)
        if problem:
            raise PageError(problem, number)
    # Trailing blank lines are not content; blank lines inside the page are refused below.
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise PageError("the file is empty", 1)
    if lines[0] != HEADER:
        raise PageError(f"expected {HEADER!r} on the first line, found {lines[0][:60]!r}", 1)
    if len(lines) < 2 or not lines[1]:
        raise PageError("missing the '<Tool A> vs <Tool B>' title", 2)
    title = lines[1]
    if len(lines) < 3:
        raise PageError("page ends after the title (truncated?)", 3)

    tools = (_parse_tool(lines, 3), _parse_tool(lines, 13))
    expected_title = f"{tools[0].name} vs {tools[1].name}"
    if title != expected_title:
        raise PageError(
            f"title {title!r} does not name the two tools of the page ({expected_title!r})", 2
        )

    scorecard_at = 23
    if len(lines) <= scorecard_at:
        raise PageError(f"page ends before {SCORECARD!r} (truncated?)", scorecard_at + 1)
    if lines[scorecard_at] != SCORECARD:
        raise PageError(
            f"expected {SCORECARD!r}, found {lines[scorecard_at][:60]!r}", scorecard_at + 1
        )

    quotes: list[tuple[int, str]] = []
    index = scorecard_at + 1
    while index < len(lines) and lines[index] != FOOTER:
        quotes.append((index + 1, _unquote(lines[index], index + 1)))
        index += 1
    if index >= len(lines):
        raise PageError(f"page ends before the {FOOTER!r} footer (truncated?)", len(lines))
    if not quotes:
        raise PageError("the reviewer scorecard has no quotes", scorecard_at + 2)
    if len(quotes) % 2:
        raise PageError(
            f"the scorecard has {len(quotes)} quotes; each reviewer writes one about each tool",
            quotes[-1][0],
        )

    reviews: list[ReviewData] = []
    for reviewer in range(1, len(quotes) // 2 + 1):
        about_a = quotes[2 * (reviewer - 1)][1]
        about_b = quotes[2 * (reviewer - 1) + 1][1]
        lens = lens_of(about_a, about_b)
        reviews.append(ReviewData(reviewer, lens, 0, about_a))
        reviews.append(ReviewData(reviewer, lens, 1, about_b))
    return MatchupData(title, tools, tuple(reviews), source_name=source_name)


def lens_of(*quotes: str) -> Lens:
    """A reviewer's lens, read from how their quotes open; the first tool's quote wins."""
    for quote in quotes:
        for lens, opening in LENS_OPENINGS:
            if opening.match(quote):
                return lens
    return Lens.OTHER


def _parse_tool(lines: list[str], start: int) -> ToolData:
    """A product block: 10 lines starting at 0-based index `start`."""
    block = lines[start : start + 10]
    if len(block) < 10:
        raise PageError("page ends inside a product block (truncated?)", len(lines))
    for offset, label in BLOCK_LABELS.items():
        if block[offset] != label:
            raise PageError(
                f"expected {label!r} in the product block, found {block[offset][:60]!r}",
                start + offset + 1,
            )
    for offset, what in (
        (0, "category"),
        (1, "tool name"),
        (3, "panel ship %"),
        (7, "entry price"),
        (9, "description"),
    ):
        if not block[offset]:
            raise PageError(f"the {what} is empty", start + offset + 1)
    return ToolData(
        name=block[1],
        category=block[0],
        tagline=block[2],
        panel_ship_pct=_percent(block[3], start + 4, "panel ship"),
        community_pct=None if block[5] in NO_VOTES else _percent(block[5], start + 6, "community"),
        entry=block[7],
        description=block[9],
    )


def _percent(value: str, line: int, what: str) -> int:
    match = _PERCENT.match(value)
    if not match or int(match.group(1)) > 100:
        raise PageError(f"{what} should be a percentage like '75%', found {value[:30]!r}", line)
    return int(match.group(1))


def _unquote(line: str, line_no: int) -> str:
    if not line:
        raise PageError("blank line inside the reviewer scorecard", line_no)
    if not line.startswith("“"):
        raise PageError(f"a scorecard quote should open with “, found {line[:40]!r}", line_no)
    if not line.endswith("”") or len(line) < 2:
        raise PageError("a scorecard quote is not closed with ” (truncated?)", line_no)
    quote = line[1:-1].strip()
    if not quote:
        raise PageError("an empty scorecard quote", line_no)
    return quote

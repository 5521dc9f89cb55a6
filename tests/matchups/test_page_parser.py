"""The site's page format: every seed page and the variations real files arrive with."""

from __future__ import annotations

import pytest

from newsletter.matchups.models import Lens
from newsletter.matchups.page_parser import decode_page, parse_page
from newsletter.matchups.schemas import PageError
from tests.conftest import SEEDS
from tests.matchups.pages import FOUR_LENS_QUOTES, page, tool_block

SEED_FILES = sorted(SEEDS.glob("*.txt"))


def _seed_lines(path: object) -> list[str]:
    return decode_page(path.read_bytes()).split("\n")  # type: ignore[attr-defined]


def test_seeds_are_present() -> None:
    assert len(SEED_FILES) >= 5


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name)
def test_every_seed_field_matches_the_page(path: object) -> None:
    # Expected values are read straight from the page's fixed line positions, so this proves
    # the parser maps each line to the right field rather than restating the parser's output.
    lines = _seed_lines(path)
    matchup = parse_page("\n".join(lines), "seed")
    assert matchup.title == lines[1]
    for index, start in ((0, 3), (1, 13)):
        tool = matchup.tools[index]
        assert tool.category == lines[start]
        assert tool.name == lines[start + 1]
        assert tool.tagline == lines[start + 2]
        assert tool.panel_ship_pct == int(lines[start + 3].rstrip("%"))
        assert tool.community_pct is None and lines[start + 5] == "—"
        assert tool.entry == lines[start + 7]
        assert tool.description == lines[start + 9]
    quotes = [line[1:-1] for line in lines[24:32]]
    assert [r.quote for r in matchup.reviews] == quotes
    assert [(r.reviewer, r.tool) for r in matchup.reviews] == [
        (i, t) for i in range(1, 5) for t in (0, 1)
    ]
    assert [r.lens for r in matchup.reviews if r.tool == 0] == [
        Lens.BUILDER,
        Lens.SKEPTIC,
        Lens.FUTURIST,
        Lens.MONEY,
    ]


def test_first_seed_concrete_values() -> None:
    matchup = parse_page(decode_page(SEED_FILES[0].read_bytes()))
    assert matchup.tools[0].name == "Claude Haiku Open Weights"
    assert matchup.tools[1].name == "Mistral Small 3.1"
    assert (matchup.tools[0].panel_ship_pct, matchup.tools[1].panel_ship_pct) == (50, 75)
    assert matchup.tools[1].tagline.startswith("Lightweight multimodal AI — vision + text")
    assert matchup.reviews[0].quote.startswith("The primitive here is simple")
    assert not matchup.reviews[0].quote.startswith("“")
    assert matchup.slug == "claude-haiku-open-weights-vs-mistral-small-3-1"


def test_bom_and_crlf_are_handled() -> None:
    raw = SEED_FILES[1].read_bytes()
    dirty = b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n")
    assert parse_page(decode_page(dirty)) == parse_page(decode_page(raw))


def test_tool_name_containing_vs() -> None:
    text = page(tool_block("Docs vs Notes Pro"), tool_block("Scribe"), FOUR_LENS_QUOTES)
    matchup = parse_page(text)
    assert matchup.tools[0].name == "Docs vs Notes Pro"
    assert matchup.tools[1].name == "Scribe"
    assert matchup.title == "Docs vs Notes Pro vs Scribe"


def test_community_percentage_and_any_entry_word() -> None:
    text = page(
        tool_block("Alpha", community="62%", entry="Open source"),
        tool_block("Beta", community="38%", entry="Usage-based"),
        FOUR_LENS_QUOTES,
    )
    matchup = parse_page(text)
    assert [t.community_pct for t in matchup.tools] == [62, 38]
    assert [t.entry for t in matchup.tools] == ["Open source", "Usage-based"]


def test_fewer_reviewers_and_other_voices() -> None:
    quotes = ["The buyer is a CFO.", "The buyer is nobody.", "I love the colours.", "Meh."]
    matchup = parse_page(page(tool_block("Alpha"), tool_block("Beta"), quotes))
    assert [(r.reviewer, r.tool, r.lens) for r in matchup.reviews] == [
        (1, 0, Lens.MONEY),
        (1, 1, Lens.MONEY),
        (2, 0, Lens.OTHER),
        (2, 1, Lens.OTHER),
    ]


def test_lens_read_from_the_second_quote_when_the_first_is_not_telling() -> None:
    quotes = ["Honestly a fine tool.", "The thesis here is clear."]
    matchup = parse_page(page(tool_block("Alpha"), tool_block("Beta"), quotes))
    assert {r.lens for r in matchup.reviews} == {Lens.FUTURIST}


@pytest.mark.parametrize(
    ("cut", "line", "reason"),
    [
        (lambda ls: ls[:2], 3, "truncated"),
        (lambda ls: ls[:10], 11, "truncated"),
        (lambda ls: ls[:20], 20, "product block"),
        (lambda ls: ls[:28], 28, "footer"),
        (lambda ls: [*ls[:29], ls[29][:50]], 30, "not closed"),
    ],
    ids=["after-title", "inside-first-block", "inside-second-block", "before-footer", "mid-quote"],
)
def test_truncated_pages_are_refused_with_the_line(cut: object, line: int, reason: str) -> None:
    lines = _seed_lines(SEED_FILES[0])
    with pytest.raises(PageError) as caught:
        parse_page("\n".join(cut(lines)))  # type: ignore[operator]
    assert caught.value.line is not None and caught.value.line <= line
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("mutate", "line", "reason"),
    [
        (lambda ls: ["Something else", *ls[1:]], 1, "AI tool comparison"),
        (lambda ls: [*ls[:6], "lots", *ls[7:]], 7, "percentage"),
        (lambda ls: [*ls[:6], "140%", *ls[7:]], 7, "percentage"),
        (lambda ls: [*ls[:8], "N/A", *ls[9:]], 9, "community"),
        (lambda ls: [*ls[:11], "Price", *ls[12:]], 12, "'Entry'"),
        (lambda ls: [ls[0], "Other vs Title", *ls[2:]], 2, "does not name"),
        (lambda ls: [*ls[:25], *ls[26:]], 31, "each reviewer"),
        (lambda ls: [*ls[:24], "not a quote", *ls[25:]], 25, "should open"),
    ],
    ids=[
        "header",
        "panel-word",
        "panel-over-100",
        "community",
        "entry-label",
        "title",
        "odd-quotes",
        "unquoted",
    ],
)
def test_malformed_pages_name_line_and_reason(mutate: object, line: int, reason: str) -> None:
    lines = _seed_lines(SEED_FILES[0])
    with pytest.raises(PageError) as caught:
        parse_page("\n".join(mutate(lines)))  # type: ignore[operator]
    assert caught.value.line == line
    assert reason in caught.value.reason


def test_not_utf8_is_refused() -> None:
    with pytest.raises(PageError, match="not UTF-8"):
        decode_page(b"AI tool comparison\n\xff\xfe")

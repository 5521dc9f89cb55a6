"""The verdict writing: one test per shape of result and per storyline case, on matchups made
up for the test, plus the seed pages' long quotes for the sentence-end rule."""

from __future__ import annotations

import re

import pytest

from newsletter.issues import verdicts
from newsletter.issues.verdicts import CommunityVote, Shape, cut
from newsletter.matchups.schemas import MatchupData
from tests.issues.helpers import content_for, example_pages, generated, seed_pages, transient


def _verdict(data: MatchupData, community: CommunityVote | None = None) -> verdicts.Verdict:
    return verdicts.verdict(transient(data, 1), community)


def _week(*datas: MatchupData) -> list[verdicts.Verdict]:
    return verdicts.week_verdicts([(transient(d, i), None) for i, d in enumerate(datas, 1)])


@pytest.mark.parametrize(
    ("panel", "shape", "winner", "headline"),
    [
        (
            (100, 25),
            Shape.LANDSLIDE,
            0,
            "A landslide: Alpha takes 100% of the panel's ship votes, Beta only 25%.",
        ),
        (
            (0, 75),
            Shape.LANDSLIDE,
            1,
            "A landslide: Beta takes 75% of the panel's ship votes, Alpha none.",
        ),
        ((75, 50), Shape.CLEAR, 0, "Alpha beats Beta clearly, 75% to 50% on the panel."),
        ((60, 67), Shape.NARROW, 1, "A close call: Beta edges Alpha by 7 points, 67% to 60%."),
        ((51, 50), Shape.NARROW, 0, "A close call: Alpha edges Beta by 1 point, 51% to 50%."),
        ((50, 50), Shape.SPLIT, None, "Split panel: Alpha and Beta both get 50% ship votes."),
        (
            (100, 100),
            Shape.TIE,
            None,
            "A tie at the top: Alpha and Beta both get 100% ship votes.",
        ),
        ((0, 0), Shape.TIE, None, "A tie at the bottom: no reviewer would ship Alpha or Beta."),
        (
            (25, 25),
            Shape.TIE,
            None,
            "A tie at the bottom: Alpha and Beta both get only 25% ship votes.",
        ),
    ],
)
def test_each_shape_of_result_has_its_own_headline(
    panel: tuple[int, int], shape: Shape, winner: int | None, headline: str
) -> None:
    found = _verdict(generated("Alpha", "Beta", panel))
    assert (found.shape, found.winner, found.headline) == (shape, winner, headline)
    # The split bar always adds up, even when nobody ships either tool.
    assert sum(found.bar) == 100
    if winner is not None:
        assert found.bar[winner] > found.bar[1 - winner]


def test_two_results_of_one_shape_in_an_issue_are_worded_differently() -> None:
    week = _week(
        generated("Alpha", "Beta", (100, 0)),
        generated("Gamma", "Delta", (100, 25)),
        generated("Eta", "Theta", (75, 50)),
        generated("Iota", "Kappa", (50, 75)),
    )
    assert [v.shape for v in week] == [Shape.LANDSLIDE] * 2 + [Shape.CLEAR] * 2
    assert week[0].headline.startswith("A landslide: Alpha")
    assert week[1].headline == "Gamma routs Delta, 100% to 25% on the panel."
    assert week[2].headline == "Eta beats Theta clearly, 75% to 50% on the panel."
    assert week[3].headline == "The panel prefers Kappa to Iota, 75% to 50%."


@pytest.mark.parametrize(
    ("entry", "panel", "paid_over_free", "pricing"),
    [
        (
            ("Paid", "Free"),
            (75, 50),
            True,
            "Worth paying for: the panel picks Alpha (paid) over Beta, which is free.",
        ),
        (
            ("Open source", "$20/mo"),
            (50, 75),
            True,
            "Worth paying for: the panel picks Beta ($20/mo) over Alpha, which is open source.",
        ),
        (
            ("Free", "Paid"),
            (75, 50),
            False,
            "And the winner costs nothing: Alpha is free, Beta paid.",
        ),
        (("Free", "Free"), (75, 50), False, "Entry price: free for both."),
        # A split panel has no winner to be worth paying for.
        (("Paid", "Free"), (50, 50), False, "Entry price: paid for Alpha, free for Beta."),
        (("Freemium", "Paid"), (75, 50), False, "Entry price: freemium for Alpha, paid for Beta."),
    ],
)
def test_a_paid_tool_beating_a_free_one_is_said(
    entry: tuple[str, str], panel: tuple[int, int], paid_over_free: bool, pricing: str
) -> None:
    found = _verdict(generated("Alpha", "Beta", panel, entry=entry))
    assert (found.paid_over_free, found.pricing) == (paid_over_free, pricing)


def test_the_community_disagreeing_with_the_panel_is_said() -> None:
    data = generated("Alpha", "Beta", (100, 25), community=(45, 55))
    against = _verdict(data)
    assert against.crowd_disagrees
    assert against.community == "The community disagrees with the panel: 55% back Beta, 45% Alpha."
    readers = _verdict(data, CommunityVote(70, 30, 12))
    assert not readers.crowd_disagrees
    assert readers.community == "Newsletter readers agree: 70% back Alpha (12 votes)."
    one = _verdict(data, CommunityVote(0, 100, 1))
    assert one.community == (
        "Newsletter readers disagree with the panel: 100% back Beta, 0% Alpha (1 vote)."
    )
    split = _verdict(generated("Alpha", "Beta", (50, 50), community=(62, 38)))
    assert split.community == "The community backs Alpha, 62% to 38%."
    assert _verdict(generated("Alpha", "Beta", (50, 50))).community == (
        "No votes yet, from the site or from readers: yours can be the first."
    )


def test_a_tool_in_several_matchups_is_noted_in_each_verdict() -> None:
    week = _week(
        generated("Hub", "One", (75, 50)),
        generated("Two", "hub", (75, 50)),  # the same tool, spelt in another case
        generated("Hub", "Three", (50, 50)),
        generated("Other", "Four", (75, 50)),
    )
    assert week[0].context == "Hub also lost to Two and tied with Three this week."
    assert week[1].context == "hub also beat One and tied with Three this week."
    assert week[2].context == "Hub also beat One and lost to Two this week."
    assert week[3].context == ""
    assert week[0].context in week[0].sentences


@pytest.mark.parametrize(
    ("panels", "story"),
    [
        (
            [(75, 50), (100, 0)],
            "Hub faces 2 challengers this week and wins both: it beats One (75% to 50%) and "
            "Two (100% to 0%).",
        ),
        (
            [(75, 50), (100, 25), (51, 50)],
            "Hub faces 3 challengers this week and wins all 3: it beats One (75% to 50%), Two "
            "(100% to 25%) and Three (51% to 50%).",
        ),
        (
            [(25, 50), (0, 100)],
            "Hub faces 2 challengers this week and loses both: it loses to One (25% to 50%) and "
            "Two (0% to 100%).",
        ),
        (
            [(25, 50), (0, 100), (50, 75)],
            "Hub faces 3 challengers this week and comes up short in all 3: it loses to One (25% "
            "to 50%), Two (0% to 100%) and Three (50% to 75%).",
        ),
        (
            [(50, 50), (100, 100)],
            "Hub faces 2 challengers this week and ties both: it ties with One (both 50%) and "
            "Two (both 100%).",
        ),
        (
            [(75, 50), (25, 50)],
            "Hub faces 2 challengers this week and goes 1–1: it beats One (75% to 50%) and loses "
            "to Two (25% to 50%).",
        ),
        (
            [(75, 50), (25, 50), (50, 50)],
            "Hub faces 3 challengers this week and goes 1–1 with 1 tied: it beats One (75% to "
            "50%), loses to Two (25% to 50%), and ties with Three (both 50%).",
        ),
    ],
)
def test_storyline_cases(panels: list[tuple[int, int]], story: str) -> None:
    names = ["One", "Two", "Three"]
    week = _week(*(generated("Hub", names[i], p) for i, p in enumerate(panels)))
    assert verdicts.storylines(week) == [story]


def test_several_storylines_fill_one_block_and_no_storyline_without_a_repeat() -> None:
    week = _week(
        generated("Hub", "One", (75, 50)),
        generated("Hub", "Two", (75, 50)),
        generated("Star", "Three", (75, 50)),
        generated("Star", "Four", (50, 75)),
        generated("Lone", "Five", (75, 50)),
    )
    lines = verdicts.storylines(week)
    assert [line.split(" ", 1)[0] for line in lines] == ["Hub", "Star"]
    assert verdicts.storylines(_week(generated("A", "B", (75, 50)))) == []
    from newsletter.issues.render import render_issue
    from tests.issues.helpers import content_for

    datas = [
        generated("Hub", "One", (75, 50)),
        generated("Hub", "Two", (75, 50)),
        generated("Star", "Three", (75, 50)),
        generated("Star", "Four", (50, 75)),
    ]
    rendered, _ = render_issue(
        content_for(datas), base_url="https://n.example", site_url="https://s.example", tracked=True
    )
    assert rendered.html.count(">The storyline</p>") == 1
    assert rendered.text.count("THE STORYLINE") == 1
    # Hub leads (its record opens the email), so the block tells Star's story only.
    assert "Hub faced 2 challengers this week: 2 wins. It beats One" in rendered.text
    assert "Hub faces 2" not in rendered.html and "Star faces 2 challengers" in rendered.html


@pytest.mark.parametrize(
    ("datas", "subject", "opening"),
    [
        (
            [generated("Hub", "One", (75, 50)), generated("Hub", "Two", (25, 50))],
            "Hub vs 2 challengers: 1 win, 1 loss",  # the record already covers both
            "Hub faced 2 challengers this week: 1 win, 1 loss.",
        ),
        (
            [
                generated("Hub", "One", (75, 50)),
                generated("Eta", "Theta", (75, 50)),
                generated("Hub", "Two", (25, 50)),
                generated("Hub", "Three", (50, 50)),
            ],
            "Hub vs 3 challengers: 1 win, 1 loss, 1 tie, plus 1 more verdict",
            "Hub faced 3 challengers this week: 1 win, 1 loss, 1 tie.",
        ),
        (
            [generated("Alpha", "Beta", (100, 0)), generated("Paid", "Free", (75, 50))],
            "Alpha routs Beta, 100% to 0%, plus 1 more verdict",
            "The week's biggest verdict: Alpha routs Beta, 100% to 0% on the panel.",
        ),
        (
            [
                generated("Gamma", "Delta", (75, 50)),
                generated("Pricey", "Gratis", (75, 50), entry=("Paid", "Free")),
            ],
            "Worth paying for: Pricey beats Gratis 75% to 50%, plus 1 more verdict",
            "Worth paying for: the panel picks the paid Pricey over Gratis, 75% to 50%.",
        ),
        (
            [generated("Gamma", "Delta", (75, 50))],
            "Gamma beats Delta 75% to 50%",
            "The clearest call this week: Gamma beats Delta, 75% to 50% on the panel.",
        ),
        (
            [generated("Gamma", "Delta", (50, 50)), generated("Eta", "Theta", (75, 75))],
            "Gamma vs Delta: the panel can't separate them, plus 1 more verdict",
            "No clear call this week: split panel: Gamma and Delta both get 50% ship votes.",
        ),
    ],
)
def test_subject_preheader_and_opening_line_tell_the_same_lead(
    datas: list[MatchupData], subject: str, opening: str
) -> None:
    content = content_for(datas)
    assert content.subject == subject
    assert content.intro.startswith(opening + " ")
    assert content.preheader.startswith(opening)
    assert "\n" not in content.subject and len(content.subject) <= verdicts.SUBJECT_CHARS


def test_the_preheader_names_the_other_matchups_whole_and_counts_the_rest() -> None:
    hub = [generated("Hub", f"Rival{n}", (75, 50)) for n in range(3)]
    others = [generated(f"Tool{n} Longname", f"Other{n} Longname", (75, 50)) for n in range(6)]
    content = content_for(hub + others)
    text = content.preheader
    assert len(text) <= verdicts.PREHEADER_CHARS
    assert "Hub vs" not in text.split("Also judged:")[1]  # the lead speaks for those already
    named = [d.title for d in others if d.title in text]
    assert named, text
    assert text.endswith(f", and {len(others) - len(named)} more.")
    # Every name shown is whole: what follows "Also judged:" is names and separators only.
    listed = text.split("Also judged: ", 1)[1].rsplit(", and", 1)[0]
    assert listed.split("; ") == named


def test_seed_pages_read_as_their_figures_say() -> None:
    found = [
        verdicts.verdict(transient(d, i)) for i, d in enumerate(seed_pages() + example_pages(), 1)
    ]
    for v in found:
        a, b = v.tools
        if a.panel_ship_pct == b.panel_ship_pct:
            assert v.winner is None
        else:
            w = v.tools[v.winner or 0]
            assert w.name in v.headline and f"{w.panel_ship_pct}%" in v.headline


def test_one_pull_quote_per_lens_both_sides_shown() -> None:
    data = next(d for d in seed_pages() if "Mistral Small 3.1" in d.title)
    small = _verdict(data)
    assert [q.label for q in small.quotes] == ["Builder", "Skeptic", "Futurist", "Money"]
    assert {q.tool_name for q in small.quotes} == {t.name for t in data.tools}
    short_panel = _verdict(next(d for d in example_pages() if d.slug == "loomtide-vs-framecast"))
    assert len(short_panel.quotes) == 2


def test_pull_quotes_end_at_a_sentence_end_never_mid_sentence() -> None:
    quotes = [r.quote for d in seed_pages() + example_pages() for r in d.reviews]
    shortened = 0
    for quote in quotes:
        flat = " ".join(quote.split())
        short = cut(flat)
        assert flat.startswith(short)
        if short != flat:
            shortened += 1
            assert re.search(r"[.!?…][”’\"')]*$", short), short
            assert flat[len(short)] == " ", f"not a sentence end: {short!r}"
    assert shortened, "the seed quotes include long ones"


def test_cut_keeps_whole_sentences_and_a_long_first_one_whole() -> None:
    assert cut("Short. Enough.", 20) == "Short. Enough."
    assert cut("One sentence here. Two sentence here. Three.", 40) == (
        "One sentence here. Two sentence here."
    )
    long_first = "A very long first sentence " + "that goes on " * 20 + "and ends. Then more."
    assert cut(long_first, 50) == long_first.split(" Then")[0]
    assert cut("No sentence end at all " * 20, 50) == " ".join(
        ("No sentence end at all " * 20).split()
    )
    # "e.g. this" is not an end: a full stop needs a space or the end after it.
    assert cut("Use it (e.g. for docs).” Next one here.", 30) == "Use it (e.g. for docs).”"


def test_subject_and_preheader_are_single_safe_lines() -> None:
    assert verdicts.header_safe("Big news\r\nBcc: victim@example.com", 90) == (
        "Big news Bcc: victim@example.com"
    )
    long = verdicts.header_safe("word " * 40, 50)
    assert len(long) <= 50 and long.endswith("…") and "\n" not in long
    hostile = content_for([generated("Evil\r\nBcc: x@example.com", "Beta", (75, 50))])
    assert "\r" not in hostile.subject and "\n" not in hostile.subject
    assert "\n" not in hostile.preheader

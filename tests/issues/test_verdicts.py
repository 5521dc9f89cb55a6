"""The verdict sentences, computed from the seed pages and the repository's examples."""

from __future__ import annotations

import re

from newsletter.issues import verdicts
from newsletter.issues.verdicts import CommunityVote, cut
from tests.issues.helpers import example_pages, seed_pages, transient


def _seed(name_part: str) -> verdicts.Verdict:
    data = next(d for d in seed_pages() if name_part in d.title)
    return verdicts.verdict(transient(data, 1))


def _example(slug: str) -> verdicts.Verdict:
    data = next(d for d in example_pages() if d.slug == slug)
    return verdicts.verdict(transient(data, 1))


def test_seed_panel_pricing_and_community_sentences() -> None:
    small = _seed("Mistral Small 3.1")
    assert small.headline == (
        "Mistral Small 3.1 takes the panel 75% to 50%, "
        "a 25-point lead over Claude Haiku Open Weights."
    )
    assert small.pricing == "Entry price: free for both."
    assert small.community == "Community vote: no votes yet."
    medium = _seed("Mistral Medium 3")
    assert medium.headline.startswith("Mistral Medium 3 takes the panel 100% to 50%")
    assert medium.pricing == (
        "Entry price: free for Claude Haiku Open Weights, paid for Mistral Medium 3."
    )


def test_split_panel_and_page_community_figure() -> None:
    split = _example("quillmate-vs-red-vs-blue-critic")
    assert split.winner is None
    assert split.headline == "Split panel: both tools get 50% ship votes."
    assert (
        split.pricing == "Entry price: freemium for Quillmate, open source for Red vs Blue Critic."
    )
    voted = _example("quillmate-vs-proseforge")
    assert voted.community == "The community backs Quillmate, 62% to 38%."
    against_panel = _example("stackwise-vs-patchpilot")
    assert against_panel.community == "The community backs Patchpilot, 55% to 45%."


def test_newsletter_votes_replace_the_page_figure_when_there_are_some() -> None:
    data = next(d for d in example_pages() if d.slug == "quillmate-vs-proseforge")
    found = verdicts.verdict(transient(data, 1), CommunityVote(30, 70, 12))
    assert found.community == "Newsletter readers back Proseforge, 70% to 30% (12 votes)."


def test_one_pull_quote_per_lens_both_sides_shown() -> None:
    small = _seed("Mistral Small 3.1")
    assert [q.label for q in small.quotes] == ["Builder", "Skeptic", "Futurist", "Money"]
    assert {q.tool_name for q in small.quotes} == {
        "Mistral Small 3.1",
        "Claude Haiku Open Weights",
    }
    short_panel = _example("loomtide-vs-framecast")
    assert len(short_panel.quotes) == 2


def test_pull_quotes_are_cut_at_a_sentence_or_a_word_never_mid_word() -> None:
    quotes = [r.quote for d in seed_pages() + example_pages() for r in d.reviews]
    for quote in quotes:
        flat = " ".join(quote.split())
        short = cut(flat)
        assert len(short) <= verdicts.PULL_QUOTE_CHARS + 1
        if short == flat:
            continue
        if short.endswith("…"):
            head = short[:-1]
            assert flat.startswith(head)
            following = flat[len(head)]
            assert not following.isalnum(), f"cut mid-word: {short!r}"
        else:
            assert flat.startswith(short) and re.search(r"[.!?…][”’\"')]?$", short), short


def test_storyline_for_a_tool_in_several_matchups() -> None:
    found = [verdicts.verdict(transient(d, i)) for i, d in enumerate(seed_pages(), start=1)]
    (line,) = verdicts.storylines(found)
    assert line.startswith(
        "Claude Haiku Open Weights faces 5 challengers this week and comes up short in all 5: "
        "it loses to "
    )
    assert "Mistral Medium 3 (50% to 100%)" in line
    mixed = [verdicts.verdict(transient(d, i)) for i, d in enumerate(example_pages(), start=1)]
    (story,) = verdicts.storylines(mixed)
    assert story == (
        "Quillmate faces 3 challengers this week and goes 1–1 with 1 tied: it beats Proseforge "
        "(75% to 50%), loses to Inkwell Duo (50% to 75%), and ties with Red vs Blue Critic "
        "(both 50%)."
    )
    assert verdicts.subject_line(mixed) == "Quillmate vs 3 challengers: this week's panel verdicts"


def test_subject_and_preheader_are_single_safe_lines() -> None:
    assert verdicts.header_safe("Big news\r\nBcc: victim@example.com", 90) == (
        "Big news Bcc: victim@example.com"
    )
    long = verdicts.header_safe("word " * 40, 50)
    assert len(long) <= 50 and long.endswith("…") and "\n" not in long

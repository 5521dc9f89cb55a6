"""The words of an issue: a verdict summary per matchup, the week's storyline, subject, intro.

Everything here is computed from the matchup's own figures and quotes, in plain sentences a
reader takes in at a glance. Nothing here escapes or formats HTML: templates do that.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.matchups.models import Lens, Matchup, MatchupReview, MatchupTool

PULL_QUOTE_CHARS = 150
SUBJECT_CHARS = 90
PREHEADER_CHARS = 140

LENS_LABELS = {
    Lens.BUILDER: "Builder",
    Lens.SKEPTIC: "Skeptic",
    Lens.FUTURIST: "Futurist",
    Lens.MONEY: "Money",
    Lens.OTHER: "Another voice",
}

_SENTENCE_END = re.compile(r"[.!?…](?=[\s”’\"')]|$)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


@dataclass(frozen=True)
class PullQuote:
    lens: Lens
    label: str
    tool_name: str
    text: str


@dataclass(frozen=True)
class CommunityVote:
    """Percent for the first tool (None: no votes yet) and where it comes from."""

    pct_tool0: int | None
    pct_tool1: int | None
    votes: int | None = None  # newsletter readers' votes; None when the figure is the site's


@dataclass(frozen=True)
class Verdict:
    matchup_id: int
    slug: str
    title: str
    tools: tuple[MatchupTool, MatchupTool]
    winner: int | None  # 0 or 1, None for a split panel
    panel_gap: int
    headline: str
    pricing: str
    community: str
    quotes: tuple[PullQuote, ...]

    @property
    def sentences(self) -> str:
        return " ".join((self.headline, self.pricing, self.community))


def panel_gap(matchup: Matchup) -> int:
    a, b = matchup.tools
    return abs(a.panel_ship_pct - b.panel_ship_pct)


def panel_headline(matchup: Matchup) -> tuple[int | None, str]:
    a, b = matchup.tools
    if a.panel_ship_pct == b.panel_ship_pct:
        return None, f"Split panel: both tools get {a.panel_ship_pct}% ship votes."
    winner, loser = (a, b) if a.panel_ship_pct > b.panel_ship_pct else (b, a)
    gap = winner.panel_ship_pct - loser.panel_ship_pct
    return (
        winner.position,
        f"{winner.name} takes the panel {winner.panel_ship_pct}% to {loser.panel_ship_pct}%, "
        f"a {gap}-point lead over {loser.name}.",
    )


def _entry_word(entry: str) -> str:
    # "Free" reads as "free" mid-sentence; "API only" or "$20/mo" keep their own spelling.
    return entry.lower() if entry[1:] == entry[1:].lower() else entry


def pricing_line(matchup: Matchup) -> str:
    a, b = matchup.tools
    if a.entry.strip().lower() == b.entry.strip().lower():
        return f"Entry price: {_entry_word(a.entry)} for both."
    return f"Entry price: {_entry_word(a.entry)} for {a.name}, {_entry_word(b.entry)} for {b.name}."


def page_community(matchup: Matchup) -> CommunityVote:
    a, b = matchup.tools
    return CommunityVote(a.community_pct, b.community_pct)


def community_line(matchup: Matchup, vote: CommunityVote) -> str:
    a, b = matchup.tools
    first, second = vote.pct_tool0, vote.pct_tool1
    if first is None and second is None:
        return "Community vote: no votes yet."
    readers = bool(vote.votes)
    who = "Newsletter readers" if readers else "The community"
    gives, backs, is_ = ("give", "back", "are") if readers else ("gives", "backs", "is")
    tail = f" ({vote.votes} vote{'s' if vote.votes != 1 else ''})" if vote.votes else ""
    if first is None or second is None:
        tool, pct = (b, second) if first is None else (a, first)
        return f"{who} {gives} {tool.name} {pct}%{tail}."
    if first == second:
        return f"{who} {is_} split {first}% to {second}%{tail}."
    leader, lead, trail = (a, first, second) if first > second else (b, second, first)
    return f"{who} {backs} {leader.name}, {lead}% to {trail}%{tail}."


def cut(text: str, limit: int = PULL_QUOTE_CHARS) -> str:
    """At most `limit` characters, ending at a sentence end, else at a word end with "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    window = text[: limit + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() <= limit]
    # A sentence that keeps at least half the room reads better than a longer fragment.
    if ends and ends[-1] >= limit // 2:
        return window[: ends[-1]].strip()
    room = text[:limit]
    space = room.rfind(" ")
    head = room[:space] if space > 0 else room
    return head.rstrip(" ,;:—–-(\"“'‘") + "…"


def pull_quotes(
    matchup: Matchup, winner: int | None, used: set[str] | None = None
) -> tuple[PullQuote, ...]:
    """One quote per reviewer lens, alternating between the panel's pick and the other tool so
    the split shows both sides. A quote already shown earlier in the issue (a tool in several
    matchups carries the same quotes) gives way to the reviewer's quote on the other tool."""
    used = used if used is not None else set()
    by_reviewer: dict[int, list[MatchupReview]] = defaultdict(list)
    for review in matchup.reviews:
        by_reviewer[review.reviewer].append(review)
    first = winner if winner is not None else 0
    quotes: list[PullQuote] = []
    seen: set[Lens] = set()
    for reviewer in sorted(by_reviewer):
        reviews = {r.tool: r for r in by_reviewer[reviewer]}
        lens = next(iter(reviews.values())).lens
        if lens in seen and lens is not Lens.OTHER:
            continue
        seen.add(lens)
        preferred = first if len(quotes) % 2 == 0 else 1 - first
        chosen = reviews.get(preferred) or next(iter(reviews.values()))
        other = reviews.get(1 - chosen.tool)
        if chosen.quote in used and other is not None and other.quote not in used:
            chosen = other
        used.add(chosen.quote)
        quotes.append(
            PullQuote(
                lens=lens,
                label=LENS_LABELS[lens],
                tool_name=matchup.tools[chosen.tool].name,
                text=cut(chosen.quote),
            )
        )
    return tuple(quotes)


def verdict(
    matchup: Matchup, community: CommunityVote | None = None, used_quotes: set[str] | None = None
) -> Verdict:
    winner, headline = panel_headline(matchup)
    vote = community if community is not None else page_community(matchup)
    a, b = matchup.tools
    return Verdict(
        matchup_id=matchup.id,
        slug=matchup.slug,
        title=f"{a.name} vs {b.name}",
        tools=(a, b),
        winner=winner,
        panel_gap=panel_gap(matchup),
        headline=headline,
        pricing=pricing_line(matchup),
        community=community_line(matchup, vote),
        quotes=pull_quotes(matchup, winner, used_quotes),
    )


# --- the week as a whole -------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def storylines(verdicts: Sequence[Verdict]) -> list[str]:
    """A lead line for each tool that appears in several of the week's matchups."""
    appearances: dict[str, list[tuple[Verdict, int]]] = defaultdict(list)
    for v in verdicts:
        for side, tool in enumerate(v.tools):
            appearances[tool.name].append((v, side))
    lines = []
    ranked = sorted(appearances.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    for name, seen in ranked:
        if len(seen) < 2:
            continue
        wins, losses, ties = [], [], []
        for v, side in seen:
            me, other = v.tools[side], v.tools[1 - side]
            score = f"{other.name} ({me.panel_ship_pct}% to {other.panel_ship_pct}%)"
            if v.winner is None:
                ties.append(f"{other.name} (both {me.panel_ship_pct}%)")
            elif v.winner == side:
                wins.append(score)
            else:
                losses.append(score)
        parts = []
        if wins:
            parts.append(f"beats {_join(wins)}")
        if losses:
            parts.append(f"loses to {_join(losses)}")
        if ties:
            parts.append(f"ties with {_join(ties)}")
        if not wins and not ties:
            record = f"comes up short in all {len(seen)}" if len(seen) > 2 else "loses both"
        elif not losses and not ties:
            record = f"wins all {len(seen)}" if len(seen) > 2 else "wins both"
        else:
            record = f"goes {len(wins)}–{len(losses)}" + (f" with {len(ties)} tied" if ties else "")
        lines.append(
            f"{name} faces {_plural(len(seen), 'challenger')} this week and {record}: "
            f"it {_join(parts, final=', and ' if len(parts) > 2 else ' and ')}."
        )
    return lines[:2]


def _join(items: Sequence[str], final: str = " and ") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + final + items[-1]


def header_safe(text: str, limit: int) -> str:
    """One line, no control characters (no header injection), cut at a word."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    if len(flat) <= limit:
        return flat
    room = flat[: limit - 1]
    space = room.rfind(" ")
    return (room[:space] if space > 0 else room).rstrip(" ,;:—–-") + "…"


def subject_line(verdicts: Sequence[Verdict]) -> str:
    if not verdicts:
        return "No new matchups this week"
    repeated = _most_repeated_tool(verdicts)
    if repeated is not None:
        name, count = repeated
        text = f"{name} vs {count} challengers: this week's panel verdicts"
    else:
        top = verdicts[0]
        if top.winner is None:
            text = f"{top.title}: a split panel"
        else:
            w, lo = top.tools[top.winner], top.tools[1 - top.winner]
            text = f"{w.name} beats {lo.name} {w.panel_ship_pct}% to {lo.panel_ship_pct}%"
        if len(verdicts) > 1:
            text += f", plus {_plural(len(verdicts) - 1, 'more verdict')}"
    return header_safe(text, SUBJECT_CHARS)


def preheader_line(verdicts: Sequence[Verdict]) -> str:
    if not verdicts:
        return "The panel is between verdicts; see you next week."
    text = f"{_plural(len(verdicts), 'matchup')}, the reviewer split and your vote: " + "; ".join(
        v.title for v in verdicts
    )
    return header_safe(text, PREHEADER_CHARS)


def intro_text(verdicts: Sequence[Verdict]) -> str:
    if not verdicts:
        return "No new matchups were published this week. The panel is back next week."
    decisive = max(verdicts, key=lambda v: v.panel_gap)
    first = f"This week the panel judged {_plural(len(verdicts), 'matchup')}."
    if decisive.winner is None:
        second = "Every one of them split the panel down the middle."
    else:
        w, lo = decisive.tools[decisive.winner], decisive.tools[1 - decisive.winner]
        second = (
            f"The clearest call: {w.name} over {lo.name}, "
            f"{w.panel_ship_pct}% to {lo.panel_ship_pct}%."
        )
    return f"{first} {second} Read the split, then cast your own vote: one tap per matchup."


def _most_repeated_tool(verdicts: Sequence[Verdict]) -> tuple[str, int] | None:
    counts: dict[str, int] = defaultdict(int)
    for v in verdicts:
        for tool in v.tools:
            counts[tool.name] += 1
    if not counts:
        return None
    name, count = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return (name, count) if count >= 2 else None

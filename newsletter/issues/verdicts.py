"""The words of an issue: a verdict summary per matchup, the week's storyline, subject, intro.

Everything here is computed from the matchup's own figures and quotes, in plain sentences a
reader takes in at a glance. The writing follows the shape of the result (a landslide, a clear
win, a close call, a split panel, a tie), says so when a paid tool beats a free one or the
community disagrees with the panel, and notes a tool's other matchups of the week. Two
matchups of the same shape in one issue are worded differently. Nothing here escapes or formats
HTML: templates do that.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from newsletter.matchups.models import Lens, Matchup, MatchupReview, MatchupTool

# A quote longer than this shows its whole sentences that fit; a first sentence longer than
# this is shown whole: a quote is never cut mid-sentence.
PULL_QUOTE_CHARS = 200
SUBJECT_CHARS = 90
PREHEADER_CHARS = 140
LANDSLIDE_GAP = 50
CLEAR_GAP = 25

LENS_LABELS = {
    Lens.BUILDER: "Builder",
    Lens.SKEPTIC: "Skeptic",
    Lens.FUTURIST: "Futurist",
    Lens.MONEY: "Money",
    Lens.OTHER: "Another voice",
}

_SENTENCE_END = re.compile(r"[.!?…][”’\"')]*(?=\s|$)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


class Shape(enum.StrEnum):
    """How the panel's ship figures compare: what the headline says first."""

    LANDSLIDE = "landslide"  # a gap of 50 points or more
    CLEAR = "clear"  # 25 to 49 points
    NARROW = "narrow"  # under 25 points
    SPLIT = "split"  # the same figure, the reviewers divided on both tools
    TIE = "tie"  # the same figure, every reviewer (or none) shipping both


class PriceTier(enum.IntEnum):
    FREE = 0  # free, open source
    FREEMIUM = 1  # a free tier
    PAID = 2  # paid, a price, a free trial, usage-based, API only…


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
    winner: int | None  # 0 or 1, None when both tools have the same panel figure
    panel_gap: int
    shape: Shape
    headline: str
    pricing: str
    community: str
    quotes: tuple[PullQuote, ...]
    paid_over_free: bool = False
    crowd_disagrees: bool = False  # the community's pick is not the panel's
    context: str = ""  # the tool's other matchups this week, set by `week_verdicts`

    @property
    def sentences(self) -> str:
        return " ".join(s for s in (self.headline, self.pricing, self.community, self.context) if s)

    @property
    def anchor(self) -> str:
        """The id of this matchup's section: the overview at the top jumps to it."""
        return f"m-{self.slug}"

    @property
    def bar(self) -> tuple[int, int]:
        """Each tool's share of the split bar, in percent (they add up to 100)."""
        a, b = (t.panel_ship_pct for t in self.tools)
        if a + b == 0:
            return 50, 50
        first = round(100 * a / (a + b))
        if a != b and first == 50:  # 51% to 50% must still show who is ahead
            first = 51 if a > b else 49
        return first, 100 - first


def panel_gap(matchup: Matchup) -> int:
    a, b = matchup.tools
    return abs(a.panel_ship_pct - b.panel_ship_pct)


def shape_of(first_pct: int, second_pct: int) -> Shape:
    gap = abs(first_pct - second_pct)
    if gap >= LANDSLIDE_GAP:
        return Shape.LANDSLIDE
    if gap >= CLEAR_GAP:
        return Shape.CLEAR
    if gap > 0:
        return Shape.NARROW
    return Shape.TIE if first_pct >= 75 or first_pct <= 25 else Shape.SPLIT


def _points(n: int) -> str:
    return f"{n} point{'' if n == 1 else 's'}"


# Two wordings per shape: the n-th matchup of a shape in an issue takes wording n (mod 2), so
# a week of landslides does not read like a form letter.
_WIN_HEADLINES = {
    Shape.LANDSLIDE: (
        "A landslide: {w} takes {W}% of the panel's ship votes, {l} {only}.",
        "{w} routs {l}, {W}% to {L}% on the panel.",
    ),
    Shape.CLEAR: (
        "{w} beats {l} clearly, {W}% to {L}% on the panel.",
        "The panel prefers {w} to {l}, {W}% to {L}%.",
    ),
    Shape.NARROW: (
        "A close call: {w} edges {l} by {g}, {W}% to {L}%.",
        "{w} just beats {l}: {W}% to {L}% on the panel, {g} apart.",
    ),
}


def panel_headline(matchup: Matchup, variant: int = 0) -> tuple[int | None, Shape, str]:
    a, b = matchup.tools
    shape = shape_of(a.panel_ship_pct, b.panel_ship_pct)
    if shape is Shape.SPLIT:
        pct = a.panel_ship_pct
        options = (
            f"Split panel: {a.name} and {b.name} both get {pct}% ship votes.",
            f"The panel can't separate {a.name} and {b.name}: {pct}% ship votes each.",
        )
        return None, shape, options[variant % 2]
    if shape is Shape.TIE:
        pct = a.panel_ship_pct
        if pct >= 75:
            line = f"A tie at the top: {a.name} and {b.name} both get {pct}% ship votes."
        elif pct == 0:
            line = f"A tie at the bottom: no reviewer would ship {a.name} or {b.name}."
        else:
            line = f"A tie at the bottom: {a.name} and {b.name} both get only {pct}% ship votes."
        return None, shape, line
    winner, loser = (a, b) if a.panel_ship_pct > b.panel_ship_pct else (b, a)
    template = _WIN_HEADLINES[shape][variant % 2]
    line = template.format(
        w=winner.name,
        l=loser.name,
        W=winner.panel_ship_pct,
        L=loser.panel_ship_pct,
        g=_points(winner.panel_ship_pct - loser.panel_ship_pct),
        only=f"only {loser.panel_ship_pct}%" if loser.panel_ship_pct else "none",
    )
    return winner.position, shape, line


def price_tier(entry: str) -> PriceTier:
    word = " ".join(entry.lower().replace("-", " ").split())
    if word in {"free", "open source", "oss", "free and open source", "$0"}:
        return PriceTier.FREE
    if "freemium" in word or "free tier" in word:
        return PriceTier.FREEMIUM
    return PriceTier.PAID


def _entry_word(entry: str) -> str:
    # "Free" reads as "free" mid-sentence; "API only" or "$20/mo" keep their own spelling.
    return entry.lower() if entry[1:] == entry[1:].lower() else entry


def pricing_line(matchup: Matchup, winner: int | None = None) -> tuple[bool, str]:
    """(a paid tool beats a free or freemium one, the sentence about entry prices)."""
    a, b = matchup.tools
    if a.entry.strip().lower() == b.entry.strip().lower():
        return False, f"Entry price: {_entry_word(a.entry)} for both."
    if winner is not None:
        w, lo = matchup.tools[winner], matchup.tools[1 - winner]
        w_tier, lo_tier = price_tier(w.entry), price_tier(lo.entry)
        if w_tier is PriceTier.PAID and lo_tier is not PriceTier.PAID:
            return True, (
                f"Worth paying for: the panel picks {w.name} ({_entry_word(w.entry)}) "
                f"over {lo.name}, which is {_entry_word(lo.entry)}."
            )
        if w_tier is PriceTier.FREE and lo_tier is not PriceTier.FREE:
            return False, (
                f"And the winner costs nothing: {w.name} is {_entry_word(w.entry)}, "
                f"{lo.name} {_entry_word(lo.entry)}."
            )
    return False, (
        f"Entry price: {_entry_word(a.entry)} for {a.name}, {_entry_word(b.entry)} for {b.name}."
    )


def page_community(matchup: Matchup) -> CommunityVote:
    a, b = matchup.tools
    return CommunityVote(a.community_pct, b.community_pct)


def community_line(
    matchup: Matchup, vote: CommunityVote, winner: int | None = None
) -> tuple[bool, str]:
    """(the community's pick is not the panel's, the sentence about the community vote)."""
    a, b = matchup.tools
    first, second = vote.pct_tool0, vote.pct_tool1
    if first is None and second is None:
        return False, "No votes yet, from the site or from readers: yours can be the first."
    readers = bool(vote.votes)
    who = "Newsletter readers" if readers else "The community"
    gives, backs, is_ = ("give", "back", "are") if readers else ("gives", "backs", "is")
    # "62% back Quillmate": a share of people takes the plural whoever is counting.
    tail = f" ({vote.votes} vote{'s' if vote.votes != 1 else ''})" if vote.votes else ""
    if first is None or second is None:
        tool, pct = (b, second) if first is None else (a, first)
        return False, f"{who} {gives} {tool.name} {pct}%{tail}."
    if first == second:
        return False, f"{who} {is_} split {first}% to {second}%{tail}."
    leader, lead, trail = (a, first, second) if first > second else (b, second, first)
    if winner is None:
        return False, f"{who} {backs} {leader.name}, {lead}% to {trail}%{tail}."
    if leader.position == winner:
        agree = "agree" if readers else "agrees"
        return False, f"{who} {agree}: {lead}% back {leader.name}{tail}."
    disagree = "disagree" if readers else "disagrees"
    return True, (
        f"{who} {disagree} with the panel: {lead}% back {leader.name}, "
        f"{trail}% {matchup.tools[winner].name}{tail}."
    )


def cut(text: str, limit: int = PULL_QUOTE_CHARS) -> str:
    """The whole text when it fits; else the whole sentences that fit in `limit` characters;
    else the first sentence, however long. Never a cut mid-sentence."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    fitting = [end for end in ends if end <= limit]
    if fitting:
        return text[: fitting[-1]].strip()
    return text[: ends[0]].strip() if ends else text


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
    matchup: Matchup,
    community: CommunityVote | None = None,
    used_quotes: set[str] | None = None,
    *,
    variant: int = 0,
) -> Verdict:
    winner, shape, headline = panel_headline(matchup, variant)
    vote = community if community is not None else page_community(matchup)
    paid_over_free, pricing = pricing_line(matchup, winner)
    crowd_disagrees, community_text = community_line(matchup, vote, winner)
    a, b = matchup.tools
    return Verdict(
        matchup_id=matchup.id,
        slug=matchup.slug,
        title=f"{a.name} vs {b.name}",
        tools=(a, b),
        winner=winner,
        panel_gap=panel_gap(matchup),
        shape=shape,
        headline=headline,
        pricing=pricing,
        community=community_text,
        quotes=pull_quotes(matchup, winner, used_quotes),
        paid_over_free=paid_over_free,
        crowd_disagrees=crowd_disagrees,
    )


def week_verdicts(
    matchups: Sequence[tuple[Matchup, CommunityVote | None]],
) -> list[Verdict]:
    """The verdicts of one issue, in its order: quotes not repeated across matchups, wordings
    varied per shape, and each tool's other matchups of the week noted."""
    used: set[str] = set()
    per_shape: dict[Shape, int] = defaultdict(int)
    found = []
    for matchup, community in matchups:
        a, b = matchup.tools
        shape = shape_of(a.panel_ship_pct, b.panel_ship_pct)
        found.append(verdict(matchup, community, used, variant=per_shape[shape]))
        per_shape[shape] += 1
    return [replace(v, context=_context(v, found)) for v in found]


def _outcome(v: Verdict, side: int) -> str:
    other = v.tools[1 - side].name
    if v.winner is None:
        return f"tied with {other}"
    return f"beat {other}" if v.winner == side else f"lost to {other}"


def _context(v: Verdict, week: Sequence[Verdict]) -> str:
    notes = []
    for tool in v.tools:
        others = [
            _outcome(o, o_side)
            for o in week
            if o is not v
            for o_side, o_tool in enumerate(o.tools)
            if _same_tool(o_tool.name, tool.name)
        ]
        if others:
            notes.append(f"{tool.name} also {_join(others)} this week.")
    return " ".join(notes)


def _same_tool(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


# --- the week as a whole -------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Record:
    """One tool's results over the week's matchups it appears in."""

    name: str
    wins: tuple[Verdict, ...]
    losses: tuple[Verdict, ...]
    ties: tuple[Verdict, ...]
    side: dict[int, int]  # matchup id -> the tool's side in it

    @property
    def played(self) -> int:
        return len(self.wins) + len(self.losses) + len(self.ties)


def records(verdicts: Sequence[Verdict]) -> list[Record]:
    """Tools in two or more of the week's matchups, most appearances first."""
    seen: dict[str, list[tuple[Verdict, int]]] = defaultdict(list)
    names: dict[str, str] = {}
    for v in verdicts:
        for side, tool in enumerate(v.tools):
            key = tool.name.casefold()
            names.setdefault(key, tool.name)
            seen[key].append((v, side))
    found = []
    for key, games in seen.items():
        if len(games) < 2:
            continue
        found.append(
            Record(
                name=names[key],
                wins=tuple(v for v, s in games if v.winner == s),
                losses=tuple(v for v, s in games if v.winner is not None and v.winner != s),
                ties=tuple(v for v, s in games if v.winner is None),
                side={v.matchup_id: s for v, s in games},
            )
        )
    return sorted(found, key=lambda r: (-r.played, -len(r.wins), r.name.casefold()))


def _tally(record: Record) -> str:
    """1 win, 1 loss, 1 tie"""
    parts = []
    if record.wins:
        parts.append(_plural(len(record.wins), "win"))
    if record.losses:
        parts.append(f"{len(record.losses)} loss{'' if len(record.losses) == 1 else 'es'}")
    if record.ties:
        parts.append(_plural(len(record.ties), "tie"))
    return ", ".join(parts)


def storyline(record: Record) -> str:
    n = record.played
    every = "both" if n == 2 else f"all {n}"
    if len(record.wins) == n:
        summary = f"wins {every}"
    elif len(record.losses) == n:
        summary = "loses both" if n == 2 else f"comes up short in all {n}"
    elif len(record.ties) == n:
        summary = f"ties {every}"
    else:
        summary = f"goes {len(record.wins)}–{len(record.losses)}" + (
            f" with {len(record.ties)} tied" if record.ties else ""
        )
    return (
        f"{record.name} faces {_plural(n, 'challenger')} this week and {summary}: "
        f"it {_scores(record)}."
    )


def _scores(record: Record) -> str:
    """ "beats A (75% to 50%) and loses to B (50% to 75%)" """

    def score(v: Verdict) -> str:
        me = v.tools[record.side[v.matchup_id]]
        other = v.tools[1 - record.side[v.matchup_id]]
        if v.winner is None:
            return f"{other.name} (both {me.panel_ship_pct}%)"
        return f"{other.name} ({me.panel_ship_pct}% to {other.panel_ship_pct}%)"

    parts = []
    if record.wins:
        parts.append(f"beats {_join([score(v) for v in record.wins])}")
    if record.losses:
        parts.append(f"loses to {_join([score(v) for v in record.losses])}")
    if record.ties:
        parts.append(f"ties with {_join([score(v) for v in record.ties])}")
    return _join(parts, final=", and " if len(parts) > 2 else " and ")


def record_detail(record: Record) -> str:
    """The scores behind a record, as the sentence after a lead that already gave its tally:
    "It beats A (75% to 50%) and loses to B (50% to 75%)." """
    return f"It {_scores(record)}."


def storylines(verdicts: Sequence[Verdict]) -> list[str]:
    """A line for each tool in several of the week's matchups (the email shows them in one
    block, however many there are)."""
    return [storyline(r) for r in records(verdicts)[:3]]


def storylines_beside_lead(verdicts: Sequence[Verdict]) -> list[str]:
    """The storyline block of an issue: when the lead is a tool's record, the opening already
    tells it (tally and scores), so the block tells only the others."""
    lines = storylines(verdicts)
    return lines[1:] if lines and lead(verdicts).verdict is None else lines


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


@dataclass(frozen=True)
class Lead:
    """The week's top story, told three ways: the subject, the preheader's first words and the
    email's opening sentence all say the same thing."""

    subject: str
    sentence: str
    verdict: Verdict | None  # the matchup it is about (None for a tool's record)
    covered: frozenset[int] = frozenset()  # ids of the matchups it already speaks for


def lead(verdicts: Sequence[Verdict]) -> Lead:
    """A tool in several matchups first, then a landslide, then a paid tool beating a free one,
    then the most decisive verdict; a week of ties leads with its first split."""
    if not verdicts:
        return Lead(
            "No new matchups this week",
            "No new matchups were published this week.",
            None,
        )
    tools = records(verdicts)
    if tools:
        top = tools[0]
        return Lead(
            f"{top.name} vs {_plural(top.played, 'challenger')}: {_tally(top)}",
            f"{top.name} faced {_plural(top.played, 'challenger')} this week: {_tally(top)}.",
            None,
            frozenset(top.side),
        )
    decisive = max(verdicts, key=lambda v: v.panel_gap)
    paid = next((v for v in verdicts if v.paid_over_free), None)
    chosen = decisive
    if decisive.shape is not Shape.LANDSLIDE and paid is not None:
        chosen = paid
    covered = frozenset({chosen.matchup_id})
    if chosen.winner is None:
        return Lead(
            f"{chosen.title}: the panel can't separate them",
            f"No clear call this week: {chosen.headline[0].lower()}{chosen.headline[1:]}",
            chosen,
            covered,
        )
    w, lo = chosen.tools[chosen.winner], chosen.tools[1 - chosen.winner]
    score = f"{w.panel_ship_pct}% to {lo.panel_ship_pct}%"
    if chosen.shape is Shape.LANDSLIDE:
        return Lead(
            f"{w.name} routs {lo.name}, {score}",
            f"The week's biggest verdict: {w.name} routs {lo.name}, {score} on the panel.",
            chosen,
            covered,
        )
    if chosen.paid_over_free:
        return Lead(
            f"Worth paying for: {w.name} beats {lo.name} {score}",
            f"Worth paying for: the panel picks the paid {w.name} over {lo.name}, {score}.",
            chosen,
            covered,
        )
    return Lead(
        f"{w.name} beats {lo.name} {score}",
        f"The clearest call this week: {w.name} beats {lo.name}, {score} on the panel.",
        chosen,
        covered,
    )


def _beyond(top: Lead, verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts the lead does not already speak for (a tool's record covers all its own)."""
    return [v for v in verdicts if v.matchup_id not in top.covered]


def subject_line(verdicts: Sequence[Verdict]) -> str:
    top = lead(verdicts)
    text = top.subject
    rest = _beyond(top, verdicts)
    if rest:
        more = f", plus {_plural(len(rest), 'more verdict')}"
        if len(text + more) <= SUBJECT_CHARS:
            text += more
    return header_safe(text, SUBJECT_CHARS)


def preheader_line(verdicts: Sequence[Verdict]) -> str:
    """The lead's sentence, then the other matchups by name, as many as fit whole (never a
    name cut in half), then how many more."""
    if not verdicts:
        return "The panel is between verdicts; see you next week."
    top = lead(verdicts)
    text = header_safe(top.sentence, PREHEADER_CHARS)
    rest = [header_safe(v.title, PREHEADER_CHARS) for v in _beyond(top, verdicts)]
    for shown in range(len(rest), 0, -1):
        left = len(rest) - shown
        tail = f", and {left} more" if left else ""
        candidate = f"{text} Also judged: {'; '.join(rest[:shown])}{tail}."
        if len(candidate) <= PREHEADER_CHARS:
            return candidate
    if rest:
        candidate = f"{text} Also judged: {_plural(len(rest), 'more matchup')}."
        if len(candidate) <= PREHEADER_CHARS:
            return candidate
    return text


def intro_text(verdicts: Sequence[Verdict]) -> str:
    top = lead(verdicts)
    if not verdicts:
        return f"{top.sentence} The panel is back next week."
    found = records(verdicts)
    if found and top.verdict is None:
        # The lead is the first record: its scores follow its tally here, not in the
        # storyline block again.
        top = replace(top, sentence=f"{top.sentence} {record_detail(found[0])}")
    count = f"The panel judged {_plural(len(verdicts), 'matchup')}"
    split = sum(1 for v in verdicts if v.winner is None)
    if split == len(verdicts) and len(verdicts) > 1:
        count += ", and every one of them ended level"
    elif split:
        count += f"; {split} ended level"
    return f"{top.sentence} {count}. Read the split, then cast your own vote: one tap per matchup."

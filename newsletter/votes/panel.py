"""Readers against the panel: how the people who voted compare with the reviewer panel.

Each issue opens with last week's result ("you sided with the panel on 4 of 6; the widest
gap: …"), and the vote page shows one reader their own record over time. Only people's votes
count: a vote flagged as a machine's (a link scanner) is never in these figures.
A matchup whose panel figures are level has no panel pick to side with: it is shown, never
counted as agreeing or disagreeing; so is one whose readers are level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Tally:
    """One matchup: the panel's ship figures beside readers' votes."""

    matchup_id: int
    slug: str
    names: tuple[str, str]
    panel: tuple[int, int]  # ship %
    votes: tuple[int, int]  # people's votes per tool

    @property
    def title(self) -> str:
        return f"{self.names[0]} vs {self.names[1]}"

    @property
    def total(self) -> int:
        return self.votes[0] + self.votes[1]

    @property
    def panel_pick(self) -> int | None:
        a, b = self.panel
        return None if a == b else (0 if a > b else 1)

    @property
    def readers_pick(self) -> int | None:
        a, b = self.votes
        return None if a == b else (0 if a > b else 1)

    def readers_pct(self, side: int) -> int:
        return round(100 * self.votes[side] / self.total) if self.total else 0

    @property
    def agrees(self) -> bool | None:
        """None when there is nothing to compare (a level panel or level readers)."""
        if self.panel_pick is None or self.readers_pick is None:
            return None
        return self.panel_pick == self.readers_pick

    @property
    def gap(self) -> int:
        """How much less readers backed the panel's pick than the panel did, in points of each
        side's share (negative: readers were surer than the panel); 0 for a level panel."""
        pick = self.panel_pick
        if pick is None:
            return 0
        panel_share = round(100 * self.panel[pick] / (self.panel[0] + self.panel[1]))
        return panel_share - self.readers_pct(pick)


@dataclass(frozen=True)
class ReadersVsPanel:
    week: str  # the issue the votes were cast on
    tallies: tuple[Tally, ...]  # the matchups with at least one person's vote

    @property
    def compared(self) -> tuple[Tally, ...]:
        return tuple(t for t in self.tallies if t.agrees is not None)

    @property
    def agreed(self) -> int:
        return sum(1 for t in self.compared if t.agrees)

    @property
    def widest(self) -> Tally | None:
        """The matchup where readers were furthest from the panel's pick (more votes first on
        a draw)."""
        if not self.compared:
            return None
        return max(self.compared, key=lambda t: (t.gap, t.total))

    @property
    def summary(self) -> str:
        return readers_summary(self)

    @property
    def headline(self) -> str | None:
        """The short form, for a list of issues."""
        n = len(self.compared)
        return f"Readers sided with the panel on {self.agreed} of {n}" if n else None

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(tally_line(t) for t in self.tallies)


def tally_line(t: Tally) -> str:
    """One matchup of the block: what the panel said, what readers said."""
    votes = f"{t.total} vote{'' if t.total == 1 else 's'}"
    if t.panel_pick is None:
        panel = f"the panel was level at {t.panel[0]}%"
    else:
        panel = (
            f"the panel picked {t.names[t.panel_pick]} "
            f"({t.panel[t.panel_pick]}% to {t.panel[1 - t.panel_pick]}%)"
        )
    if t.readers_pick is None:
        readers = f"you split 50–50 ({votes})"
    else:
        side = t.readers_pick
        readers = f"{t.readers_pct(side)}% of you picked {t.names[side]} ({votes})"
    return f"{t.title}: {panel}; {readers}."


def readers_summary(block: ReadersVsPanel) -> str:
    compared = block.compared
    if not compared:
        return (
            f"Last week ({block.week}) there was no panel pick for your votes to side with or "
            "against."
        )
    n = len(compared)
    if block.agreed == n:
        head = "you sided with the panel on " + ("both" if n == 2 else f"all {n}")
    elif block.agreed == 0:
        head = "you went against the panel on " + (
            "the one matchup" if n == 1 else ("both" if n == 2 else f"all {n}")
        )
    else:
        head = f"you sided with the panel on {block.agreed} of {n}"
    if n == 1 and block.agreed == 1:
        head = "you sided with the panel"
    widest = block.widest
    assert widest is not None and widest.panel_pick is not None
    pick = widest.names[widest.panel_pick]
    if widest.agrees:
        tail = (
            f"the widest gap: {widest.title}, where {widest.readers_pct(widest.panel_pick)}% of "
            f"you backed the panel's pick, {pick}"
        )
    else:
        other = widest.names[1 - widest.panel_pick]
        tail = (
            f"the widest gap: {widest.title}, where the panel picked {pick} "
            f"({widest.panel[widest.panel_pick]}% to {widest.panel[1 - widest.panel_pick]}%) "
            f"and {widest.readers_pct(1 - widest.panel_pick)}% of you would ship {other}"
        )
    return f"Last week {head}; {tail}."


# --- one reader over time ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderVote:
    week: str
    tool: int
    panel: tuple[int, int]

    @property
    def agrees(self) -> bool | None:
        a, b = self.panel
        return None if a == b else (self.tool == (0 if a > b else 1))


@dataclass(frozen=True)
class WeekRecord:
    week: str
    voted: int
    compared: int
    agreed: int


@dataclass(frozen=True)
class ReaderRecord:
    weeks: tuple[WeekRecord, ...]  # oldest first

    @property
    def compared(self) -> int:
        return sum(w.compared for w in self.weeks)

    @property
    def agreed(self) -> int:
        return sum(w.agreed for w in self.weeks)

    @property
    def voted(self) -> int:
        return sum(w.voted for w in self.weeks)

    @property
    def summary(self) -> str:
        if not self.compared:
            return "None of your votes so far was on a matchup with a panel pick."
        share = round(100 * self.agreed / self.compared)
        weeks = len(self.weeks)
        return (
            f"You have sided with the panel on {self.agreed} of {self.compared} "
            f"matchup{'' if self.compared == 1 else 's'} ({share}%) over "
            f"{weeks} issue{'' if weeks == 1 else 's'}."
        )


def reader_record(votes: Sequence[ReaderVote]) -> ReaderRecord:
    by_week: dict[str, list[ReaderVote]] = {}
    for vote in votes:
        by_week.setdefault(vote.week, []).append(vote)
    return ReaderRecord(
        tuple(
            WeekRecord(
                week=week,
                voted=len(found),
                compared=sum(1 for v in found if v.agrees is not None),
                agreed=sum(1 for v in found if v.agrees),
            )
            for week, found in sorted(by_week.items())
        )
    )

"""Small server-rendered charts (SVG and CSS bars): no script, readable without colour.

Every chart comes with its numbers as text (a title, an accessible description and labels), so
a screen reader or a printout carries the same facts as the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    percent: float  # of the largest value in the chart, 0–100 (CSS width)


def bars(values: list[tuple[str, int]]) -> list[Bar]:
    top = max((v for _, v in values), default=0)
    return [
        Bar(label, value, round(100 * value / top, 1) if top else 0.0) for label, value in values
    ]


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    height: float
    value: int
    hour: int
    label: str  # the hour it counts, as a person reads it ("Thu 03 Dec 14:00 UTC")


@dataclass(frozen=True)
class TimeChart:
    width: int
    height: int
    columns: list[Column]
    peak: int
    total: int
    hours: int
    column_width: float
    ticks: list[tuple[float, str]]
    first: str  # the first hour shown, and the last
    last: str


# Tick steps in hours: the first that leaves at most about eight labels under the axis.
_TICK_STEPS = (1, 2, 3, 6, 12, 24, 48, 168, 336, 720)


def opens_over_time(
    per_hour: list[int], first_hour: datetime | None, *, width: int = 640, height: int = 160
) -> TimeChart:
    """Columns of people's first opens per hour, from the first hour with one to the last (the
    axis fits the data: a day's opens fill the chart, a month's trickle fits in it)."""
    plot_height = height - 24  # room for the hour labels under the columns
    hours = len(per_hour) or 1
    start = first_hour or datetime(1970, 1, 1, tzinfo=UTC)
    step = width / hours
    peak = max(per_hour, default=0)
    columns = []
    for hour, value in enumerate(per_hour):
        bar = plot_height * value / peak if peak else 0.0
        at = start + timedelta(hours=hour)
        columns.append(
            Column(
                round(hour * step, 2),
                round(plot_height - bar, 2),
                round(bar, 2),
                value,
                hour,
                f"{at:%a %d %b %H:00} UTC",
            )
        )
    every = next((s for s in _TICK_STEPS if hours / s <= 8), _TICK_STEPS[-1])
    ticks = []
    for h in range(0, hours, every):
        at = start + timedelta(hours=h)
        label = f"{at:%H:00}" if every < 24 and (h and at.hour) else f"{at:%d %b}"
        ticks.append((round(h * step, 2), label))
    return TimeChart(
        width,
        height,
        columns,
        peak,
        sum(per_hour),
        hours,
        round(max(step - 1, 1), 2),
        ticks,
        f"{start:%a %d %b %H:00} UTC",
        f"{start + timedelta(hours=hours - 1):%a %d %b %H:00} UTC",
    )


@dataclass(frozen=True)
class TrendLine:
    name: str
    points: str  # SVG polyline points
    dots: list[tuple[float, float, str]]  # x, y, "week: 41.2%"


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    lines: list[TrendLine]
    labels: list[tuple[float, str]]
    top: float  # the rate at the top of the plot, 0-1


def trend(
    weeks: list[str], series: dict[str, list[float | None]], *, width: int = 640, height: int = 180
) -> TrendChart:
    """One line per rate across the issues (oldest left); a missing rate leaves a gap."""
    plot_height = height - 24
    values = [v for vs in series.values() for v in vs if v is not None]
    top = max(values, default=0.0) or 1.0
    top = min(1.0, round(top * 1.1 + 0.005, 2))
    pad = 36  # room for the first and last week's label, centred on their points
    step = (width - 2 * pad) / max(len(weeks) - 1, 1)
    lines = []
    for name, rates in series.items():
        dots = [
            (
                round(pad + i * step, 2),
                round(plot_height - plot_height * rate / top, 2),
                f"{weeks[i]}: {100 * rate:.1f}%",
            )
            for i, rate in enumerate(rates)
            if rate is not None
        ]
        lines.append(TrendLine(name, " ".join(f"{x},{y}" for x, y, _ in dots), dots))
    labels = [(round(pad + i * step, 2), week) for i, week in enumerate(weeks)]
    return TrendChart(width, height, lines, labels, top)

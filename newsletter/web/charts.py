"""Small server-rendered charts (SVG and CSS bars): no script, readable without colour.

Every chart comes with its numbers as text (a title, an accessible description and labels), so
a screen reader or a printout carries the same facts as the picture.
"""

from __future__ import annotations

from dataclasses import dataclass


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


def opens_over_time(per_hour: list[int], *, width: int = 640, height: int = 160) -> TimeChart:
    """Columns of unique opens per hour since the send started."""
    plot_height = height - 24  # room for the hour labels under the columns
    hours = len(per_hour) or 1
    step = width / hours
    peak = max(per_hour, default=0)
    columns = []
    for hour, value in enumerate(per_hour):
        bar = plot_height * value / peak if peak else 0.0
        columns.append(
            Column(round(hour * step, 2), round(plot_height - bar, 2), round(bar, 2), value, hour)
        )
    ticks = [(round(h * step, 2), f"{h}h") for h in range(0, hours, 12)]
    return TimeChart(
        width, height, columns, peak, sum(per_hour), hours, round(max(step - 1, 1), 2), ticks
    )

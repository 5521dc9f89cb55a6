"""ISO weeks ("2026-W07"), the unit an issue covers.

Weeks start on Monday 00:00 in the newsletter's own time zone (NEWSLETTER_TIMEZONE), so a matchup
published late on a Sunday evening in Paris belongs to that week, not to the next one.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from newsletter.errors import Refused

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class WeekError(Refused):
    pass


def parse_week(value: str) -> tuple[int, int]:
    match = _WEEK.match(value.strip())
    if not match:
        raise WeekError(f"not an ISO week like '2026-W07': {value!r}")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise WeekError(f"{year} has no week {week:02d}: {value!r}") from None
    return year, week


def format_week(year: int, week: int) -> str:
    return f"{year:04d}-W{week:02d}"


def week_of(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz).date().isocalendar()
    return format_week(local.year, local.week)


def week_bounds(week: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the week in UTC."""
    year, number = parse_week(week)
    monday = date.fromisocalendar(year, number, 1)
    start = datetime.combine(monday, time(0), tzinfo=tz)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)

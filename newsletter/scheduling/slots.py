"""The weekly slot: "Monday 09:00 Europe/Paris" turned into instants.

The slot is a local wall-clock time, so it moves in UTC across daylight-saving changes. A run is
named by the ISO week of the slot's local date ("weekly:2026-W47"): whatever the clock or the
number of schedulers, a week has one key and therefore at most one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from newsletter.errors import Refused
from newsletter.settings import Settings, wall_clock
from newsletter.settings import zone as parse_zone

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleError(Refused):
    """A schedule setting that cannot be understood (names the variable and the value)."""


@dataclass(frozen=True)
class WeeklySchedule:
    weekday: int  # 0 = Monday, as date.weekday()
    at: time
    zone: ZoneInfo

    @classmethod
    def from_settings(cls, settings: Settings) -> WeeklySchedule:
        day = settings.newsletter_schedule_day
        if day not in DAYS:
            raise ScheduleError(f"NEWSLETTER_SCHEDULE_DAY={day!r}: expected one of {DAYS}")
        raw = settings.newsletter_schedule_time
        try:
            at = wall_clock(raw)
        except ValueError as exc:
            raise ScheduleError(f"NEWSLETTER_SCHEDULE_TIME={raw!r}: {exc}") from None
        try:
            zone = parse_zone(settings.newsletter_timezone)
        except ValueError as exc:
            raise ScheduleError(
                f"NEWSLETTER_TIMEZONE={settings.newsletter_timezone!r}: {exc}"
            ) from None
        return cls(DAYS.index(day), at, zone)

    def slot_on(self, day: date) -> datetime:
        """The slot's instant (UTC) on a local date.

        An ambiguous wall time (the repeated hour in autumn) means its first occurrence; a
        wall time that does not exist (the skipped hour in spring) falls the same distance
        after the gap, as zoneinfo resolves it (02:30 becomes 03:30 summer time).
        """
        local = datetime.combine(day, self.at, tzinfo=self.zone).replace(fold=0)
        return local.astimezone(UTC)

    def last_slot(self, now: datetime) -> datetime:
        """The most recent slot at or before `now`."""
        local_day = now.astimezone(self.zone).date()
        day = local_day - timedelta(days=(local_day.weekday() - self.weekday) % 7)
        slot = self.slot_on(day)
        if slot > now:
            slot = self.slot_on(day - timedelta(days=7))
        return slot

    def next_slot(self, now: datetime) -> datetime:
        """The first slot strictly after `now`."""
        return self.slot_on(self.last_slot(now).astimezone(self.zone).date() + timedelta(days=7))

    def week_of(self, slot: datetime) -> str:
        year, week, _ = slot.astimezone(self.zone).isocalendar()
        return f"{year}-W{week:02d}"

    def describe(self) -> str:
        return f"{DAYS[self.weekday].capitalize()} {self.at:%H:%M} {self.zone.key}"

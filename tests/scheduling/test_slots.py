"""The weekly slot is a local wall-clock time: it moves in UTC across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from newsletter.scheduling.jobs import weekly_trigger
from newsletter.scheduling.slots import ScheduleError, WeeklySchedule
from newsletter.settings import Settings


def schedule(day: str = "mon", at: str = "09:00", tz: str = "Europe/Paris") -> WeeklySchedule:
    return WeeklySchedule.from_settings(
        Settings(newsletter_schedule_day=day, newsletter_schedule_time=at, newsletter_timezone=tz)  # type: ignore[arg-type]
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_monday_nine_in_paris_is_eight_utc_in_winter_and_seven_in_summer() -> None:
    weekly = schedule()
    # Summer time starts Sunday 29 March 2026 (last Sunday of March).
    assert weekly.last_slot(utc(2026, 3, 29, 12)) == utc(2026, 3, 23, 8)
    assert weekly.next_slot(utc(2026, 3, 29, 12)) == utc(2026, 3, 30, 7)
    assert weekly.last_slot(utc(2026, 3, 30, 6, 59)) == utc(2026, 3, 23, 8)
    assert weekly.last_slot(utc(2026, 3, 30, 7, 0)) == utc(2026, 3, 30, 7)
    # Winter time returns Sunday 25 October 2026 (last Sunday of October).
    assert weekly.last_slot(utc(2026, 10, 26, 7, 59)) == utc(2026, 10, 19, 7)
    assert weekly.last_slot(utc(2026, 10, 26, 8, 0)) == utc(2026, 10, 26, 8)
    assert weekly.week_of(utc(2026, 3, 30, 7)) == "2026-W14"


def test_a_slot_inside_the_repeated_autumn_hour_happens_once() -> None:
    weekly = schedule(day="sun", at="02:30")
    first = utc(2026, 10, 25, 0, 30)  # 02:30 summer time; 01:30 UTC is 02:30 again in winter
    assert weekly.last_slot(utc(2026, 10, 25, 1, 45)) == first
    assert weekly.next_slot(first) == utc(2026, 11, 1, 1, 30)


def test_a_slot_inside_the_skipped_spring_hour_still_happens_that_day() -> None:
    weekly = schedule(day="sun", at="02:30")
    slot = weekly.last_slot(utc(2026, 3, 29, 12))
    assert slot.date() == datetime(2026, 3, 29).date()
    assert weekly.last_slot(utc(2026, 3, 28, 12)) == utc(2026, 3, 22, 1, 30)


def test_apscheduler_cron_job_fires_at_the_same_local_time() -> None:
    weekly = schedule()
    trigger = weekly_trigger(weekly)
    moment = utc(2026, 3, 1)
    fired = []
    for _ in range(6):  # across the March change
        nxt = trigger.get_next_fire_time(None, moment)
        fired.append(nxt.astimezone(UTC))
        moment = nxt + timedelta(seconds=1)
    expected = []
    moment = utc(2026, 3, 1)
    for _ in range(6):
        expected.append(weekly.next_slot(moment))
        moment = expected[-1]
    assert fired == expected
    assert [f.hour for f in fired] == [8, 8, 8, 8, 7, 7]
    assert all(f.astimezone(weekly.zone).hour == 9 for f in fired)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("newsletter_schedule_time", "9h", "NEWSLETTER_SCHEDULE_TIME"),
        ("newsletter_timezone", "Mars/Olympus", "NEWSLETTER_TIMEZONE"),
    ],
)
def test_bad_schedule_settings_are_named(field: str, value: str, needle: str) -> None:
    # The settings refuse them as they are read (tests/foundation/test_bad_settings.py); the
    # schedule still names them if handed settings made without that check.
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})
    with pytest.raises(ScheduleError, match=needle):
        WeeklySchedule.from_settings(Settings.model_construct(**{field: value}))

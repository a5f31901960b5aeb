"""Timer schedules: 6-field NCRONTAB with seconds, 5-field cron and TimeSpan intervals."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devstack.host.settings import SettingsError
from devstack.host.timer import TimerSchedule

START = datetime(2026, 1, 5, 10, 0, 7, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/5 * * * * *", datetime(2026, 1, 5, 10, 0, 10, tzinfo=UTC)),
        ("0 */5 * * * *", datetime(2026, 1, 5, 10, 5, 0, tzinfo=UTC)),
        ("30 0 10 * * *", datetime(2026, 1, 5, 10, 0, 30, tzinfo=UTC)),
        ("0 0 9 * * 1-5", datetime(2026, 1, 6, 9, 0, 0, tzinfo=UTC)),
        ("*/15 * * * *", datetime(2026, 1, 5, 10, 15, 0, tzinfo=UTC)),
        ("00:00:30", START + timedelta(seconds=30)),
    ],
)
def test_the_next_occurrence_follows_the_schedule(expression: str, expected: datetime) -> None:
    assert TimerSchedule(expression).next_after(START) == expected


def test_the_next_occurrence_is_strictly_after_the_given_moment() -> None:
    on_the_tick = datetime(2026, 1, 5, 10, 0, 10, tzinfo=UTC)
    assert TimerSchedule("*/5 * * * * *").next_after(on_the_tick) == on_the_tick + timedelta(seconds=5)


def test_a_restricted_day_and_weekday_must_both_match_as_in_ncrontab() -> None:
    # Given "the 13th, if it is a Friday"
    schedule = TimerSchedule("0 0 0 13 * 5")
    # Then the next one is Friday 13 February 2026, not the next 13th or the next Friday
    assert schedule.next_after(START) == datetime(2026, 2, 13, tzinfo=UTC)


def test_a_schedule_in_a_time_zone_is_returned_in_utc() -> None:
    schedule = TimerSchedule("0 0 9 * * *", ZoneInfo("Europe/Paris"))
    assert schedule.next_after(START) == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("expression", ["", "* * * *", "* * * * * * * *", "99 * * * * *", "00:00:00", "soon"])
def test_an_invalid_schedule_is_refused(expression: str) -> None:
    with pytest.raises(SettingsError):
        TimerSchedule(expression)

"""Due times of schedules: time zones, daylight-saving gaps and repeats, missed runs, against croniter."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.domain.cron import due_since, instant, next_due, valid_cron

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
UTC = ZoneInfo("UTC")


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def test_a_nightly_time_in_a_zone_is_due_at_its_utc_instant_winter_and_summer() -> None:
    assert next_due("30 2 * * *", AMSTERDAM, utc(2026, 1, 10, 12), 1) == [utc(2026, 1, 11, 1, 30)]
    assert next_due("30 2 * * *", AMSTERDAM, utc(2026, 7, 10, 12), 1) == [utc(2026, 7, 11, 0, 30)]


def test_a_time_in_the_spring_forward_gap_fires_at_the_first_valid_time_after_it() -> None:
    # 2026-03-29: Amsterdam's clocks go from 02:00 CET to 03:00 CEST; 02:30 does not exist
    due = next_due("30 2 * * *", AMSTERDAM, utc(2026, 3, 28, 12), 2)
    assert due == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]  # 03:00 CEST, then 02:30 CEST
    assert due[0].astimezone(AMSTERDAM).strftime("%H:%M") == "03:00"


def test_several_gap_times_are_one_due_time() -> None:
    due = next_due("*/20 2 * * *", AMSTERDAM, utc(2026, 3, 28, 12), 2)
    assert due == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 0)]


def test_a_time_that_occurs_twice_in_the_autumn_fires_once_at_its_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 happens at 00:30 UTC and again at 01:30 UTC
    due = next_due("30 2 * * *", AMSTERDAM, utc(2026, 10, 24, 12), 2)
    assert due == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_every_half_hour_across_the_repeated_hour_never_fires_a_wall_time_twice() -> None:
    due = next_due("*/30 * * * *", AMSTERDAM, utc(2026, 10, 24, 23, 45), 6)
    walls = [d.astimezone(AMSTERDAM).replace(tzinfo=None) for d in due]
    assert len(set(walls)) == len(walls)
    assert due == sorted(due)


def test_missed_times_give_the_latest_and_a_count() -> None:
    due = due_since("0 * * * *", UTC, handled=utc(2026, 5, 1, 0), now=utc(2026, 5, 1, 5, 30))
    assert due is not None
    assert due.latest == utc(2026, 5, 1, 5)
    assert due.missed == 4  # 01:00..04:00


def test_nothing_is_due_before_the_next_time_and_exactly_at_it_it_is() -> None:
    assert due_since("0 * * * *", UTC, handled=utc(2026, 5, 1, 5), now=utc(2026, 5, 1, 5, 59)) is None
    due = due_since("0 * * * *", UTC, handled=utc(2026, 5, 1, 5), now=utc(2026, 5, 1, 6))
    assert due is not None
    assert due.latest == utc(2026, 5, 1, 6)
    assert due.missed == 0


def test_a_week_of_downtime_with_a_minutely_cron_stays_bounded() -> None:
    due = due_since("* * * * *", UTC, handled=utc(2026, 5, 1), now=utc(2026, 5, 8))
    assert due is not None
    assert due.latest == utc(2026, 5, 8)
    assert 0 < due.missed < 2_000


@pytest.mark.parametrize(
    ("expression", "problem"),
    [("* * * *", "4 fields"), ("0 0 * * * *", "6 fields"), ("61 * * * *", "not a valid"), ("@hourly", "1 fields")],
)
def test_bad_expressions_say_why(expression: str, problem: str) -> None:
    assert problem in (valid_cron(expression) or "")


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1)))
def test_every_wall_time_maps_to_an_instant_no_earlier_than_its_gap_start(wall: dt.datetime) -> None:
    moment = instant(wall, AMSTERDAM)
    local = moment.astimezone(AMSTERDAM).replace(tzinfo=None)
    assert local >= wall  # unchanged, or moved forward out of a gap
    assert local - wall <= dt.timedelta(hours=1)


@given(st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2040, 1, 1)))
def test_next_due_agrees_with_due_since(after: dt.datetime) -> None:
    start = after.replace(tzinfo=dt.UTC)
    [first] = next_due("15 2 * * 0", AMSTERDAM, start, 1)
    assert due_since("15 2 * * 0", AMSTERDAM, handled=start, now=first - dt.timedelta(seconds=1)) is None
    due = due_since("15 2 * * 0", AMSTERDAM, handled=start, now=first)
    assert due is not None
    assert due.latest == first
    assert due.missed == 0

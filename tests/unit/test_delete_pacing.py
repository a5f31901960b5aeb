"""Create pacing: a pool admits a create only while the deletes its groups will need fit ACI's delete windows.

Table tests of the rule, and a property over any arrival sequence and any run lengths: the deletes that the
admitted creates need always fit the windows paced to (the hour by default, both with ``pace_deletes="both"``)
at the moment each group ends.
"""

import datetime as dt
import heapq
from bisect import bisect_right

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.domain.placement import Demand, PoolState, RateWindow, Reservation
from dispatcher.settings import Pool

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
LONG_AGO = NOW - dt.timedelta(hours=2)
ONE = Demand(1, 1)


def pool(**limits: object) -> Pool:
    return Pool(name="a", subscription_id="s", resource_group="rg-a", location="westeurope", **limits)  # type: ignore[arg-type]


def deletes_minutes_ago(*minutes: float) -> RateWindow:
    window = RateWindow()
    for m in sorted(minutes, reverse=True):
        window = window.add(NOW - dt.timedelta(minutes=m))
    return window


NO_DELETES = RateWindow()


def holding(limits: Pool, n: int, deletes: RateWindow = NO_DELETES) -> PoolState:
    """A pool holding ``n`` groups created long ago (no create window counts them), with ``deletes`` done."""
    state = PoolState(limits)
    for i in range(n):
        state = state.with_reservation(Reservation(f"g{i}", f"j{i}", 1, 1.0, LONG_AGO, 600), LONG_AGO)
    return PoolState(limits, groups=state.groups, cores=state.cores, deletes=deletes)


@pytest.mark.parametrize(
    ("state", "refused_because"),
    [
        (holding(pool(), 0), None),
        (holding(pool(creates_per_5min=3, pace_deletes="both"), 1, deletes_minutes_ago(1)), None),  # 1 + 1 + 1
        (holding(pool(creates_per_5min=3, pace_deletes="both"), 2, deletes_minutes_ago(1)), "last 5 minutes"),
        (holding(pool(creates_per_5min=3, pace_deletes="both"), 2, deletes_minutes_ago(6)), None),  # it left
        (holding(pool(creates_per_5min=3), 2, deletes_minutes_ago(1)), None),  # the default paces to the hour only
        (holding(pool(creates_per_hour=4), 2, deletes_minutes_ago(10)), None),
        (holding(pool(creates_per_hour=4), 2, deletes_minutes_ago(10, 50)), "last hour"),
        (holding(pool(creates_per_hour=4, pace_deletes="both"), 2, deletes_minutes_ago(10, 50)), "last hour"),
        (holding(pool(creates_per_hour=4), 2, deletes_minutes_ago(10, 61)), None),
        (holding(pool(creates_per_hour=4, pace_deletes="off"), 2, deletes_minutes_ago(10, 50)), None),
    ],
)
def test_a_create_is_refused_exactly_when_the_groups_held_could_not_all_be_deleted_at_once(
    state: PoolState, refused_because: str | None
) -> None:
    refusal = state.refusal(ONE, NOW)
    if refused_because is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert "delete quota" in refusal
        assert refused_because in refusal


def _exact_in_window(times: list[float], at: float, width: float) -> int:
    """ACI's count: events in (at - width, at]."""
    return bisect_right(times, at) - bisect_right(times, at - width)


def _simulate(limits: Pool, jobs: list[tuple[float, float]], tick: float = 10.0) -> tuple[list[float], list[bool]]:
    """Run ``jobs`` (arrival, run length in seconds) through one pool's admission, FIFO, admitting every ``tick``,
    and delete each group the moment it ends. Returns the delete times and, per delete, whether the pool's own
    accounting allowed it at once."""
    state = PoolState(limits)
    arrivals = sorted(jobs)
    ends: list[tuple[float, int]] = []
    held: dict[int, Reservation] = {}
    waiting: list[float] = []
    deleted_at: list[float] = []
    allowed: list[bool] = []
    cursor = serial = 0

    def end_until(moment: float) -> None:
        nonlocal state
        while ends and ends[0][0] <= moment:
            end, n = heapq.heappop(ends)
            at = NOW + dt.timedelta(seconds=end)
            allowed.append(state.delete_refusal(at) is None)
            deleted_at.append(end)
            state = state.without_reservation(held.pop(n), at, deleted=True)

    moment = 0.0
    while cursor < len(arrivals) or waiting:
        assert moment < 500_000, "every job is admitted in the end"
        end_until(moment)
        now = NOW + dt.timedelta(seconds=moment)
        while cursor < len(arrivals) and arrivals[cursor][0] <= moment:
            waiting.append(arrivals[cursor][1])
            cursor += 1
        while waiting and state.refusal(ONE, now) is None:
            reservation = Reservation(f"g{serial}", f"j{serial}", 1, 1.0, now, 86_400)
            state = state.with_reservation(reservation, now)
            held[serial] = reservation
            heapq.heappush(ends, (moment + waiting.pop(0), serial))
            serial += 1
        moment += tick
    end_until(float("inf"))
    return deleted_at, allowed


def _fits_windows(deleted_at: list[float], limits: Pool, windows: tuple[str, ...] = ("5min", "hour")) -> bool:
    times = sorted(deleted_at)
    widths = {"5min": (300, limits.creates_per_5min), "hour": (3600, limits.creates_per_hour)}
    return all(_exact_in_window(times, t, widths[w][0]) <= widths[w][1] for t in times for w in windows)


LIMITS = pool(max_groups=6, max_cores=6, creates_per_5min=4, creates_per_hour=9)
ARRIVALS = st.lists(
    st.tuples(st.floats(0, 7200, allow_nan=False), st.floats(1, 5400, allow_nan=False)), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(ARRIVALS)
def test_over_any_arrivals_and_run_lengths_every_delete_fits_both_windows_when_paced_to_both(
    jobs: list[tuple[float, float]],
) -> None:
    limits = LIMITS.model_copy(update={"pace_deletes": "both"})
    deleted_at, allowed = _simulate(limits, jobs)
    assert all(allowed)
    assert _fits_windows(deleted_at, limits)


@settings(max_examples=150, deadline=None)
@given(ARRIVALS)
def test_over_any_arrivals_and_run_lengths_every_delete_fits_the_hourly_window_by_default(
    jobs: list[tuple[float, float]],
) -> None:
    deleted_at, _ = _simulate(LIMITS, jobs)
    assert _fits_windows(deleted_at, LIMITS, ("hour",))


def test_without_pacing_jobs_of_different_lengths_ending_together_pass_the_delete_windows() -> None:
    # Four long jobs, then (once the 5-minute create window has moved on) four short ones: all eight end
    # within a minute of each other, two more than the 5-minute delete window's four.
    jobs = [(0.0, 600.0)] * 4 + [(300.0, 300.0)] * 4
    unpaced = pool(max_groups=8, max_cores=8, creates_per_5min=4, creates_per_hour=9, pace_deletes="off")
    deleted_at, allowed = _simulate(unpaced, jobs)
    assert not _fits_windows(deleted_at, unpaced, ("5min",))
    assert not all(allowed)
    paced = unpaced.model_copy(update={"pace_deletes": "both"})
    deleted_at, allowed = _simulate(paced, jobs)
    assert all(allowed)
    assert _fits_windows(deleted_at, paced)
    # Over the hour: nine creates an hour, the first four long and the rest short, end within the same hour
    # as the next hour's first creates' short runs: more than nine deletes in one hour, unless paced to it.
    hourly = [(0.0, 3000.0)] * 4 + [(2400.0, 700.0)] * 5 + [(3700.0, 60.0)] * 4
    unpaced_hour = pool(max_groups=20, max_cores=20, creates_per_5min=20, creates_per_hour=9, pace_deletes="off")
    deleted_at, _ = _simulate(unpaced_hour, hourly)
    assert not _fits_windows(deleted_at, unpaced_hour, ("hour",))
    paced_hour = unpaced_hour.model_copy(update={"pace_deletes": "hour"})
    deleted_at, _ = _simulate(paced_hour, hourly)
    assert _fits_windows(deleted_at, paced_hour, ("hour",))


@pytest.mark.parametrize(
    ("state", "room"),
    [
        (holding(pool(max_groups=10, creates_per_5min=8, creates_per_hour=20, pace_deletes="both"), 3), 5),
        (holding(pool(max_groups=10, creates_per_5min=8, creates_per_hour=20), 3), 7),
        (
            holding(
                pool(max_groups=10, creates_per_5min=8, creates_per_hour=20, pace_deletes="both"),
                3,
                deletes_minutes_ago(1, 2),
            ),
            3,
        ),
        (holding(pool(max_groups=10, creates_per_5min=8, creates_per_hour=9), 3, deletes_minutes_ago(10, 20, 30)), 3),
        (holding(pool(max_groups=10, creates_per_5min=8, creates_per_hour=9, pace_deletes="off"), 3), 7),
        (holding(pool(max_groups=2), 3), 0),
    ],
)
def test_the_room_an_array_job_plans_into_counts_the_delete_windows_too(state: PoolState, room: int) -> None:
    assert state.groups_room(NOW) == room
    if room:
        assert state.refusal(ONE, NOW) is None
    else:
        assert state.refusal(ONE, NOW) is not None

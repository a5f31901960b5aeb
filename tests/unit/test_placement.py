"""Placement and admission decisions, table-tested over pool states."""

import datetime as dt

import pytest

from dispatcher.core.scheduling import can_ever_fit, place
from dispatcher.domain.placement import Demand, PoolState, RateWindow, Reservation
from dispatcher.settings import Pool

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def pool(name: str, **limits: object) -> Pool:
    return Pool(name=name, subscription_id="s", resource_group=f"rg-{name}", location="westeurope", **limits)  # type: ignore[arg-type]


LONG_AGO = NOW - dt.timedelta(hours=2)


def holding(limits: Pool, n: int, cores: float = 1.0, spread: str | None = None) -> PoolState:
    """A pool holding ``n`` reservations taken long enough ago that no create window counts them."""
    state = PoolState(limits)
    for i in range(n):
        state = state.with_reservation(Reservation(f"g{i}", f"j{i}", 1, cores, LONG_AGO, 600, spread), LONG_AGO)
    return state


def minutes_ago(*minutes: float) -> RateWindow:
    window = RateWindow()
    for m in sorted(minutes, reverse=True):
        window = window.add(NOW - dt.timedelta(minutes=m))
    return window


@pytest.mark.parametrize(
    ("state", "demand", "refused_because"),
    [
        (PoolState(pool("a")), Demand(1, 1), None),
        (holding(pool("a", max_groups=2), 2), Demand(1, 1), "container groups"),
        (holding(pool("a", max_cores=4), 3), Demand(2, 1), "cores"),
        (holding(pool("a", max_cores=4), 3), Demand(1, 1), None),
        (PoolState(pool("a", creates_per_5min=2), creates=minutes_ago(1, 2)), Demand(1, 1), "5 minutes"),
        (PoolState(pool("a", creates_per_5min=2), creates=minutes_ago(6, 7)), Demand(1, 1), None),
        (PoolState(pool("a", creates_per_hour=2), creates=minutes_ago(10, 50)), Demand(1, 1), "last hour"),
        (PoolState(pool("a", creates_per_hour=2), creates=minutes_ago(10, 61)), Demand(1, 1), None),
        (PoolState(pool("a", spot=False)), Demand(1, 1, spot=True), "Spot"),
        (PoolState(pool("a")), Demand(1, 1, region="eastus"), "region"),
        (PoolState(pool("a")), Demand(1, 1, region="WestEurope"), None),
        (PoolState(pool("a")), Demand(1, 1, pool="b"), "pool b"),
        (PoolState(pool("a"), saturated_until=NOW + dt.timedelta(seconds=5)), Demand(1, 1), "cooling down"),
        (PoolState(pool("a"), saturated_until=NOW - dt.timedelta(seconds=5)), Demand(1, 1), None),
    ],
)
def test_a_pool_refuses_exactly_when_a_limit_would_be_exceeded(
    state: PoolState, demand: Demand, refused_because: str | None
) -> None:
    refusal = state.refusal(demand, NOW)
    if refused_because is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refused_because in refusal


def test_placement_prefers_the_pool_with_most_free_capacity() -> None:
    states = [holding(pool("a", max_groups=10), 8), holding(pool("b", max_groups=10), 2)]
    chosen = place(Demand(1, 1), states, NOW)
    assert chosen is not None
    assert chosen.pool.name == "b"


def test_placement_weights_scale_free_capacity() -> None:
    states = [holding(pool("a", weight=10), 50), holding(pool("b"), 10)]
    chosen = place(Demand(1, 1), states, NOW)
    assert chosen is not None
    assert chosen.pool.name == "a"


def test_a_spread_group_avoids_pools_already_running_its_members() -> None:
    states = [holding(pool("a"), 1, spread="batch"), holding(pool("b"), 5)]
    chosen = place(Demand(1, 1, spread_group="batch"), states, NOW)
    assert chosen is not None
    assert chosen.pool.name == "b"


def test_no_pool_fits_gives_none() -> None:
    assert place(Demand(1, 1), [PoolState(pool("a", max_groups=0))], NOW) is None


def test_can_ever_fit_distinguishes_waiting_from_impossible() -> None:
    pools = [pool("a", max_cores=2, spot=False)]
    assert can_ever_fit(Demand(2, 1), pools)
    assert not can_ever_fit(Demand(3, 1), pools)
    assert not can_ever_fit(Demand(1, 1, spot=True), pools)
    assert not can_ever_fit(Demand(1, 1), [])


def test_reserving_counts_the_create_and_forgets_creates_older_than_an_hour() -> None:
    state = PoolState(pool("a"), creates=minutes_ago(61, 5))
    after = state.with_reservation(Reservation("g", "j", 1, 2, NOW, 600, "batch"), NOW)
    assert (after.groups, after.cores, after.spread_members("batch")) == (1, 2, 1)
    assert (after.creates.last_5min(NOW), after.creates.last_hour(NOW)) == (1, 2)
    assert len(after.creates.recent) == 1


def test_releasing_undoes_the_counts_and_counts_the_delete() -> None:
    reservation = Reservation("g", "j", 1, 2, NOW, 600, "batch")
    held = PoolState(pool("a")).with_reservation(reservation, NOW)
    released = held.without_reservation(reservation, NOW, deleted=True)
    assert (released.groups, released.cores, released.spread_members("batch")) == (0, 0, 0)
    assert (released.deletes.last_5min(NOW), released.deletes.last_hour(NOW)) == (1, 1)
    assert held.without_reservation(reservation, NOW, deleted=False).deletes.last_hour(NOW) == 0


def test_the_delete_quota_is_acis_create_quota() -> None:
    state = PoolState(pool("a", creates_per_5min=2), deletes=minutes_ago(1, 2))
    refusal = state.delete_refusal(NOW)
    assert refusal is not None
    assert "deletes in the last 5 minutes" in refusal
    assert state.delete_refusal(NOW + dt.timedelta(minutes=4)) is None


def test_the_hourly_window_is_never_lower_than_acis_and_stays_small() -> None:
    window = RateWindow()
    start = NOW - dt.timedelta(hours=1)
    for second in range(0, 3600, 2):  # 1,800 creates in the hour, one every 2 s
        window = window.add(start + dt.timedelta(seconds=second))
    assert 1799 <= window.last_hour(NOW) <= 1799 + 5  # exact (after 0 s falls out), or one 10-s bucket more
    assert len(window.buckets) <= 361
    assert window.last_5min(NOW) == 149  # exact: 3302 s ... 3598 s


def test_a_rate_window_counts_its_events_per_minute_over_the_hour() -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=90, seconds=30)
    window = RateWindow()
    for at in (now - dt.timedelta(minutes=70), now - dt.timedelta(seconds=40), now, now):
        window = window.add(at)
    minutes = window.per_minute(now)
    assert len(minutes) == 60
    assert minutes[-1] == (int(now.timestamp()) // 60 * 60, 2)
    assert sum(count for _, count in minutes) == 3  # the one 70 minutes ago is out of the hour

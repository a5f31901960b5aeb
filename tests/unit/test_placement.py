"""Placement and admission decisions, table-tested over pool states."""

import datetime as dt

import pytest

from dispatcher.placement import Demand, PoolState, Reservation, can_ever_fit, place
from dispatcher.settings import Pool

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def pool(name: str, **limits: object) -> Pool:
    return Pool(name=name, subscription_id="s", resource_group=f"rg-{name}", location="westeurope", **limits)  # type: ignore[arg-type]


def held(n: int, cores: float = 1.0, spread: str | None = None) -> tuple[Reservation, ...]:
    return tuple(Reservation(f"g{i}", f"j{i}", 1, cores, NOW, spread) for i in range(n))


def minutes_ago(*minutes: float) -> tuple[dt.datetime, ...]:
    return tuple(NOW - dt.timedelta(minutes=m) for m in minutes)


@pytest.mark.parametrize(
    ("state", "demand", "refused_because"),
    [
        (PoolState(pool("a")), Demand(1, 1), None),
        (PoolState(pool("a", max_groups=2), held(2)), Demand(1, 1), "container groups"),
        (PoolState(pool("a", max_cores=4), held(3)), Demand(2, 1), "cores"),
        (PoolState(pool("a", max_cores=4), held(3)), Demand(1, 1), None),
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
    states = [PoolState(pool("a", max_groups=10), held(8)), PoolState(pool("b", max_groups=10), held(2))]
    chosen = place(Demand(1, 1), states, NOW)
    assert chosen is not None
    assert chosen.pool.name == "b"


def test_placement_weights_scale_free_capacity() -> None:
    states = [PoolState(pool("a", weight=10), held(50)), PoolState(pool("b"), held(10))]
    chosen = place(Demand(1, 1), states, NOW)
    assert chosen is not None
    assert chosen.pool.name == "a"


def test_a_spread_group_avoids_pools_already_running_its_members() -> None:
    states = [PoolState(pool("a"), held(1, spread="batch")), PoolState(pool("b"), held(5))]
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
    after = state.with_reservation(Reservation("g", "j", 1, 2, NOW), NOW)
    assert (after.groups, after.cores, len(after.creates)) == (1, 2, 2)

"""The quota a pool shares with the rest of its region: admission counts what ACI's usage shows outside the pool
(other workloads, the dispatcher's other pools), read once a minute per region, so that another workload never
makes a create fail on the quota."""

from __future__ import annotations

import datetime as dt
import json

from dispatcher.domain.errors import CloudError
from dispatcher.domain.jobs import Status
from dispatcher.domain.placement import Demand, Elsewhere, PoolState, RegionUsage
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, FakeContainerGroups, World, make_world

BIG = POOL.model_copy(update={"max_groups": 10, "max_cores": 10})


def _groups(world: World) -> FakeContainerGroups:
    groups = world.services.groups
    assert isinstance(groups, FakeContainerGroups)
    return groups


def _submit(world: World, job_id: str) -> None:
    spec = {"id": job_id, "image": "busybox", "cpu": 1, "memoryGB": 1}
    accept_message(world.services, json.dumps(spec).encode(), job_id, "application/json")


def test_a_workload_outside_the_pool_takes_its_share_of_the_regions_quota() -> None:
    world = make_world(BIG)
    groups = _groups(world)
    groups.region = RegionUsage(groups=8, group_limit=10, cores=8.0, core_limit=100.0)  # someone else's 8 groups
    run_tick(world.services)  # reads the region's usage

    for n in range(4):
        _submit(world, f"job-{n}")
    run_tick(world.services)

    statuses = [world.store.status(f"job-{n}") for n in range(4)]
    assert statuses.count(Status.QUEUED) == 2  # 10 in the region, 8 of them elsewhere: two launched
    assert len(groups.created) == 2


def test_the_regions_usage_is_read_once_a_minute_not_every_run() -> None:
    world = make_world(BIG)
    groups = _groups(world)
    groups.region = RegionUsage(groups=0, group_limit=100, cores=0.0, core_limit=100.0)

    for _ in range(3):
        run_tick(world.services)
        world.clock.advance(5)
    assert groups.usage_reads == 1
    world.clock.advance(60)
    run_tick(world.services)
    assert groups.usage_reads == 2


def test_a_failed_usage_read_leaves_admission_to_the_pools_own_limits() -> None:
    world = make_world(BIG)
    groups = _groups(world)
    groups.faults.add("usage", CloudError("throttled", transient=True))

    report = run_tick(world.services)
    _submit(world, "job-0")

    assert report.failures == 1  # counted and contained
    assert world.store.status("job-0") is not Status.QUEUED


def test_the_refusal_counts_groups_and_cores_outside_the_pool() -> None:
    state = PoolState(BIG, groups=1, cores=1.0)
    usage = RegionUsage(groups=9, group_limit=10, cores=9.0, core_limit=12.0)  # the pool's one group included
    shared = PoolState(BIG, groups=1, cores=1.0, elsewhere=Elsewhere.of(usage, state))
    at = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    assert shared.elsewhere == Elsewhere(groups=8, cores=8.0, group_limit=10, core_limit=12.0)
    assert shared.refusal(Demand(cores=1.0, memory_gb=1.0), at) is None  # 8 + 1 + 1 = 10 groups
    full = PoolState(BIG, groups=2, cores=2.0, elsewhere=shared.elsewhere)
    assert "region's quota of 10 container groups" in (full.refusal(Demand(cores=1.0, memory_gb=1.0), at) or "")
    cores = PoolState(BIG, groups=1, cores=3.5, elsewhere=shared.elsewhere)
    assert "region's quota of 12 cores" in (cores.refusal(Demand(cores=1.0, memory_gb=1.0), at) or "")

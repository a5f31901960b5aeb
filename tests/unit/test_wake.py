"""Waking the reconciler while work is active: each run that leaves work asks for the next one an interval
later, an idle run asks for none (the timer covers it), intake asks for one after a launch, and a wake-up that
cannot be scheduled never stops a run or an intake."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from dispatcher.domain.errors import CloudError
from dispatcher.service.launch import Outcome
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from dispatcher.service.wake import AFTER_LAUNCH_SECONDS, active
from dispatcher.settings import DispatcherSettings
from tests.fakes import POOL, FakeWaker, World, make_world


def _waker(world: World) -> FakeWaker:
    waker = world.services.waker
    assert isinstance(waker, FakeWaker)
    return waker


def _submit(world: World, job_id: str, seconds: int = 60) -> Outcome | None:
    spec = {"id": job_id, "image": "busybox", "env": {"DEVSTACK_SIM_DURATION": str(seconds)}}
    result = accept_message(world.services, json.dumps(spec).encode(), job_id, "application/json")
    return result.launch.outcome if result.launch else None


def test_an_idle_run_asks_for_no_next_run() -> None:
    world = make_world()

    report = run_tick(world.services)

    assert report.failures == 0
    assert _waker(world).times == []


def test_a_launch_at_intake_asks_for_the_next_run_to_see_it_running() -> None:
    world = make_world()
    now = world.clock.now()

    assert _submit(world, "first") is Outcome.LAUNCHED

    assert _waker(world).times == [now + dt.timedelta(seconds=AFTER_LAUNCH_SECONDS)]


def test_a_run_that_leaves_groups_held_asks_for_the_next_one() -> None:
    world = make_world()
    _submit(world, "first")
    world.clock.advance(5)

    run_tick(world.services)

    assert _waker(world).times[-1] == world.clock.now() + dt.timedelta(
        seconds=world.services.settings.reconcile_interval_seconds
    )


def test_with_no_room_intake_asks_for_nothing_the_running_groups_runs_do() -> None:
    world = make_world()
    for n in range(2):
        _submit(world, f"fill-{n}")
    asked = len(_waker(world).times)

    assert _submit(world, "waits") is Outcome.NO_CAPACITY

    assert len(_waker(world).times) == asked


def test_a_wake_up_that_cannot_be_scheduled_stops_neither_intake_nor_a_run() -> None:
    world = make_world()
    waker = _waker(world)
    for _ in range(2):
        waker.faults.add("wake_at", CloudError("service bus down", transient=True))

    assert _submit(world, "first") is Outcome.LAUNCHED
    report = run_tick(world.services)

    assert report.failures == 0
    assert waker.times == []
    assert world.ledger.find(POOL, "first-a1") is not None


def test_what_counts_as_active() -> None:
    world = make_world()
    idle = world.services.ledger.state(POOL)
    assert not active([idle], 0, 0)
    assert active([idle], 1, 0)  # jobs queued
    assert active([idle], None, 0)  # the queue was not counted: assume work
    assert active([idle], 0, 1)  # a launch was just made


@pytest.mark.parametrize(
    ("interval", "pools", "cap", "expected"),
    [
        (5, ["s1"], 200, 100),  # 0.8 x 25/s x 5 s
        (5, ["s1", "s1"], 200, 50),  # two pools in one subscription share it
        (5, ["s1", "s2"], 200, 100),  # each subscription has its own bucket
        (30, ["s1"], 500, 200),  # never more than 0.8 of the bucket of 250
        (30, ["s1"], 150, 150),  # the per-pool cap
        (1, ["s1"] * 30, 200, 1),  # at least one read
    ],
)
def test_a_runs_arm_reads_are_a_share_of_what_the_subscriptions_bucket_refills_in_one_interval(
    interval: float, pools: list[str], cap: int, expected: int
) -> None:
    settings = DispatcherSettings.model_validate(
        {
            "reconcile_interval_seconds": interval,
            "arm_reads_per_tick": cap,
            "pools": [
                {"name": f"p{n}", "location": "westeurope", "subscription_id": sub, "resource_group": f"rg{n}"}
                for n, sub in enumerate(pools)
            ],
        }
    )

    assert settings.reads_per_run(settings.pools[0]) == expected


def test_the_runs_between_upkeeps_reconcile_and_launch_but_leave_the_upkeep_for_every_30_seconds() -> None:
    world = make_world(upkeep_seconds=30)
    first = run_tick(world.services)
    world.clock.advance(5)
    between = run_tick(world.services)
    world.clock.advance(25)
    later = run_tick(world.services)

    assert (first.upkeep, between.upkeep, later.upkeep) == (True, False, True)
    reads = world.store.reads
    assert reads["pending"] >= 3  # the outbox is drained every run
    assert reads["expired"] == 2  # purging, with the upkeep only

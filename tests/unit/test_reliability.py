"""The reliability findings, each reproduced on the fakes: a brief storage outage at intake, a timed-out job
misreported after a crash between the stop and the record."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dispatcher.domain.errors import CloudError
from dispatcher.domain.jobs import Status
from dispatcher.domain.observed import ContainerView, GroupView
from dispatcher.ports import Pool
from dispatcher.service.retry import delays
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, FakeContainerGroups, World, make_world, outage


def send(world: World, job_id: str, **spec: object) -> object:
    body = json.dumps({"id": job_id, **(spec or {"image": "busybox", "command": ["true"]})}).encode()
    return accept_message(world.services, body, job_id, "application/json")


def test_a_table_outage_shorter_than_the_intake_budget_costs_no_delivery() -> None:
    # Given Table storage unreachable for the next two minutes
    world = make_world()
    until = world.clock.now().timestamp() + 120
    world.store.faults.down_while(lambda: world.clock.now().timestamp() < until, outage("Table storage"))
    # When one delivery of a submission arrives
    send(world, "a")
    # Then that one delivery records it, having waited out the outage with backoff
    assert world.store.status("a") is Status.RUNNING
    assert 120 <= sum(world.clock.slept) <= 120 + 15
    assert world.clock.slept[:3] == [0.5, 1.0, 2.0]


def test_an_outage_longer_than_the_budget_gives_the_message_back_for_its_next_delivery() -> None:
    # Given Table storage unreachable for longer than one delivery's budget
    world = make_world()
    budget = world.services.settings.intake_retry_seconds
    until = world.clock.now().timestamp() + budget * 1.5
    world.store.faults.down_while(lambda: world.clock.now().timestamp() < until, outage("Table storage"))
    # Then the first delivery raises after spending its budget (Service Bus delivers the message again)
    with pytest.raises(CloudError):
        send(world, "a")
    assert sum(world.clock.slept) == pytest.approx(budget)
    # And the second delivery records it
    send(world, "a")
    assert world.store.status("a") is Status.RUNNING


def test_a_permanent_error_is_not_retried() -> None:
    world = make_world()
    world.store.faults.add("insert", CloudError("EntityTooLarge", status=413, transient=False))
    with pytest.raises(CloudError):
        send(world, "a")
    assert world.clock.slept == []


def test_the_backoff_doubles_to_fifteen_seconds_and_spends_exactly_the_budget() -> None:
    waits = delays(300)
    assert waits[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0]
    assert max(waits) == 15.0
    assert sum(waits) == pytest.approx(300)
    assert delays(0) == []


class StopThenDie(FakeContainerGroups):
    """A stop that ACI applies (the containers end with 137, the group Stopped), after which the process dies
    before the record's write: the next ``replace`` fails."""

    def __init__(self, world: World) -> None:
        super().__init__(world.services.settings)
        self.world = world

    def stop(self, pool: Pool, name: str) -> None:
        super().stop(pool, name)
        now = self.world.clock.now()
        killed = (ContainerView("main", "Terminated", 137, start_time=now, finish_time=now),)
        self.views[(pool.name, name)] = GroupView(name, "Succeeded", "Stopped", {}, killed)
        self.world.store.faults.add("replace", outage("Table storage"))


def test_a_timed_out_job_whose_outcome_write_failed_after_the_stop_is_recorded_timed_out_not_failed() -> None:
    # Given a running job with a one-minute timeout and no retries, and a stop after which the next write fails
    world = make_world()
    groups = StopThenDie(world)
    world.services = dataclasses.replace(world.services, groups=groups)
    world.groups = groups
    send(world, "a", image="busybox", timeoutSeconds=60)
    assert world.store.status("a") is Status.RUNNING
    # When the timeout passes: one run stops the group and cannot record the outcome
    world.clock.advance(61)
    run_tick(world.services)
    assert groups.stopped == [(POOL.name, "a-a1")]
    # Then the next run, which sees a Stopped group whose container exited 137, records what was decided
    run_tick(world.services)
    record = world.record("a")
    assert record.status is Status.TIMED_OUT
    assert "timeout" in (record.reason or "")
    assert groups.created == {}


def restarted(world: World, group: str) -> None:
    """ACI's answer after an eviction: the group restarted by itself, its container's restart count up."""
    now = world.clock.now()
    again = (ContainerView("main", "Running", start_time=now, restart_count=1),)
    world.groups.views[(POOL.name, group)] = GroupView(group, "Succeeded", "Running", {}, again)


def test_an_evicted_spot_attempt_is_retried_at_once_and_not_charged_against_the_retries() -> None:
    # Given a Spot job with no retries, running
    world = make_world()
    send(world, "a", image="busybox", priority="Spot")
    # When ACI evicts (and restarts) its group
    restarted(world, "a-a1")
    run_tick(world.services)
    # Then the attempt is lost, its group deleted, and a second attempt launched in the same run
    record = world.record("a")
    assert (record.attempts[0].lost, record.attempts[0].outcome) == (True, Status.FAILED)
    assert "evicted" in (record.attempts[0].reason or "")
    assert (POOL.name, "a-a1") in world.groups.deleted
    assert [a.group for a in record.attempts] == ["a-a1", "a-a2"]
    # And when the second attempt fails, the job's own (zero) retries are what count
    world.groups.finish(POOL, "a-a2", 1, at=world.clock.now())
    run_tick(world.services)
    assert world.record("a").status is Status.FAILED


def test_a_regular_job_whose_container_restarted_is_not_an_eviction() -> None:
    world = make_world()
    send(world, "a")
    restarted(world, "a-a1")
    run_tick(world.services)
    assert world.record("a").status is Status.RUNNING
    assert len(world.record("a").attempts) == 1


def test_a_spot_job_evicted_ten_times_fails() -> None:
    world = make_world()
    send(world, "a", image="busybox", priority="Spot")
    for n in range(1, 11):
        restarted(world, f"a-a{n}")
        run_tick(world.services)
    record = world.record("a")
    assert record.status is Status.FAILED
    assert len(record.attempts) == 10
    assert all(a.lost for a in record.attempts)

"""Array jobs over fakes: packing into groups, per-task results, retries in later groups, the job's end."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from dispatcher.domain.jobs import Status
from dispatcher.domain.tasks import TaskStatus
from dispatcher.service.services import Cursors
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from dispatcher.settings import Pool
from tests.fakes import World, make_world

BIG = Pool(
    name="p1", subscription_id="sub", resource_group="rg-jobs", location="westeurope", max_groups=10, max_cores=8
)


def submit(world: World, job_id: str, tasks: dict[str, Any], **extra: Any) -> None:
    spec = {"id": job_id, "image": "busybox", "command": ["true"], "cpu": 0.5, "memoryGB": 1, "tasks": tasks, **extra}
    accept_message(world.services, json.dumps(spec).encode(), job_id, "application/json")


def groups_of(world: World, job_id: str) -> list[str]:
    return sorted(name for (_, name) in world.groups.created if name.startswith(f"{job_id}-g"))


def finish_all(world: World, codes: dict[int, int] | None = None) -> None:
    """End every created group, each task's container with its code (0 unless ``codes`` says otherwise)."""
    for (pool_name, name), group in list(world.groups.created.items()):
        if (pool_name, name) in world.groups.views:
            continue
        exit_codes = [(codes or {}).get(int(c.name.split("-")[1]), 0) for c in group.containers]
        world.groups.finish(BIG, name, *exit_codes, at=world.clock.now())


def test_tasks_are_packed_and_each_sees_its_index() -> None:
    world = make_world(BIG)
    submit(world, "arr", {"count": 20})
    run_tick(world.services)
    record = world.record("arr")
    assert record.status is Status.RUNNING
    names = groups_of(world, "arr")
    assert names == ["arr-g1", "arr-g2"]
    first = world.groups.created[("p1", "arr-g1")]
    assert len(first.containers) == 8  # 4 vCPU per group at 0.5 each
    env = {e.name: e.value for e in first.containers[3].environment_variables}
    assert env["TASK_INDEX"] == "3"
    assert env["TASK_COUNT"] == "20"


def test_failed_tasks_are_retried_in_a_later_group_and_the_job_fails_listing_them() -> None:
    world = make_world(BIG)
    submit(world, "arr", {"count": 10}, retries={"count": 1, "backoffSeconds": 0})
    for _ in range(8):
        run_tick(world.services)
        finish_all(world, {3: 2, 7: 1})
        world.clock.advance(30)
    record = world.record("arr")
    assert record.status is Status.FAILED, record.reason
    assert record.array is not None
    assert record.array.failed_indexes == [3, 7]
    assert "tasks 3, 7 failed" in (record.reason or "")
    rows = {t.index: t for t in world.store.tasks("arr", 0, 100)}
    assert rows[3].status is TaskStatus.FAILED
    assert rows[3].attempts == 2
    assert len(rows[3].groups) == 2
    assert rows[0].status is TaskStatus.SUCCEEDED
    assert "task.failed" in world.events.types()
    assert not world.groups.created


def test_all_tasks_succeeding_ends_the_job_succeeded() -> None:
    world = make_world(BIG)
    submit(world, "ok", {"count": 30})
    for _ in range(10):
        run_tick(world.services)
        finish_all(world)
        world.clock.advance(30)
    record = world.record("ok")
    assert record.status is Status.SUCCEEDED, (record.reason, record.array)
    assert record.array is not None
    assert record.array.succeeded == 30


def test_a_rerun_of_only_the_failed_tasks_runs_them_with_their_own_index() -> None:
    from dispatcher.domain.errors import InvalidJob
    from dispatcher.domain.rerun import parse_overrides
    from dispatcher.service.rerun import rerun

    world = make_world(BIG)
    submit(world, "orig", {"count": 40})
    with pytest.raises(InvalidJob) as caught:  # not ended yet
        rerun(world.services, "orig", parse_overrides({"onlyFailedTasks": True}), "k0")
    assert [e.loc for e in caught.value.errors] == ["onlyFailedTasks"]
    for _ in range(8):
        run_tick(world.services)
        finish_all(world, {3: 1, 27: 2, 38: 1})
        world.clock.advance(30)
    assert world.record("orig").status is Status.FAILED
    new = rerun(world.services, "orig", parse_overrides({"onlyFailedTasks": True}), "k1").job_id
    assert world.record(new).array is not None
    assert world.record(new).array.count == 3  # type: ignore[union-attr]
    for _ in range(3):
        run_tick(world.services)
        started = [g for g in world.groups.created if g[1].startswith(f"{new}-g")]
        for key in started:
            indexes = [
                {e.name: e.value for e in c.environment_variables}["TASK_INDEX"]
                for c in world.groups.created[key].containers
            ]
            assert indexes == ["3", "27", "38"]
        finish_all(world)
        world.clock.advance(30)
    record = world.record(new)
    assert record.status is Status.SUCCEEDED
    assert record.rerun_of == "orig"
    assert [t.index for t in world.store.tasks(new, 0, 100)] == [3, 27, 38]


def test_between_upkeeps_a_run_reads_the_array_index_only_while_an_array_job_may_be_running() -> None:
    world = make_world(BIG, upkeep_seconds=30)
    run_tick(world.services)  # the first run of a process does the upkeep: no array job
    world.store.reads.clear()
    world.clock.advance(5)
    run_tick(world.services)
    assert world.store.reads["arrays"] == 0  # nothing running: the empty read is not repeated every run
    submit(world, "arr", {"count": 4})  # recorded by this process: its runs advance it at once
    world.clock.advance(5)
    run_tick(world.services)
    assert world.store.reads["arrays"] == 1
    assert world.record("arr").status is Status.RUNNING


def test_an_array_job_another_process_recorded_is_advanced_from_the_next_upkeep() -> None:
    world = make_world(BIG, upkeep_seconds=30)
    run_tick(world.services)
    elsewhere = dataclasses.replace(world.services, cursors=Cursors())
    accept_message(
        elsewhere,
        json.dumps({"id": "arr", "image": "busybox", "command": ["true"], "cpu": 0.5, "tasks": {"count": 4}}).encode(),
        "arr",
        "application/json",
    )
    finish_all(world)  # its first group, packed and launched by its intake, ends
    world.clock.advance(5)
    run_tick(world.services)
    assert world.record("arr").status is not Status.SUCCEEDED  # this process does not know of it yet
    world.clock.advance(30)
    for _ in range(3):
        run_tick(world.services)
        world.clock.advance(5)
    assert world.record("arr").status is Status.SUCCEEDED

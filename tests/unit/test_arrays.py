"""Array jobs' pure decisions, table-tested: how many tasks a group holds, which tasks go next, what each container's
end means for its task; a property that every task ends exactly once; and every bad input rejected naming its field."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.core.arrays import Room, Verdict, group_capacity, group_record, plan_groups, run_results
from dispatcher.domain.document import validate_job
from dispatcher.domain.errors import JobError
from dispatcher.domain.jobs import Attempt, ContainerResult, Ending, JobRecord, Status
from dispatcher.domain.spec import JobSpec
from dispatcher.domain.tasks import ArrayState, RetryDue, TaskRun, TaskStatus
from dispatcher.service.submit import accept_message, check
from dispatcher.service.tick import run_tick
from dispatcher.settings import Pool, Prices
from tests.fakes import World, make_world

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
POOL = Pool(name="p1", subscription_id="s", resource_group="rg", location="westeurope")
BIG = Pool(name="p1", subscription_id="s", resource_group="rg", location="westeurope", max_groups=10, max_cores=8)


def array_spec(cpu: float = 0.25, memory: float = 0.5, **tasks: Any) -> JobSpec:
    return validate_job(
        {"id": "arr", "image": "busybox", "cpu": cpu, "memoryGB": memory, "tasks": {"count": 100, **tasks}}
    )


@pytest.mark.parametrize(
    ("cpu", "memory", "packing", "pool", "expected"),
    [
        (0.25, 0.5, "auto", POOL, 16),  # 4 vCPU / 0.25
        (0.05, 0.1, "auto", POOL, 60),  # the 60-container limit
        (1.0, 8.0, "auto", POOL, 2),  # 16 GB / 8
        (0.25, 0.5, "none", POOL, 1),
        (0.25, 0.5, {"tasksPerGroup": 10}, POOL, 10),
        (0.5, 1, "auto", POOL.model_copy(update={"group_cores": 2.0}), 4),  # a pool with smaller groups
        (0.5, 1, {"tasksPerGroup": 8}, POOL.model_copy(update={"group_cores": 2.0}), 0),  # fits no group there
    ],
)
def test_group_capacity(cpu: float, memory: float, packing: Any, pool: Pool, expected: int) -> None:
    assert group_capacity(array_spec(cpu, memory, packing=packing), pool) == expected


def _state(**changes: Any) -> ArrayState:
    return ArrayState(count=100).model_copy(update=changes)


@pytest.mark.parametrize(
    ("state", "tasks", "room", "queued", "expected"),
    [
        (_state(), {}, Room(2, 100), 0, [list(range(16)), list(range(16, 32)), list(range(32, 48))]),  # 2 + lookahead
        (_state(), {"parallelism": 20}, Room(5, 100), 0, [list(range(16)), list(range(16, 20))]),
        (_state(), {}, Room(1, 1.0), 0, [[0, 1, 2, 3], list(range(4, 20))]),  # sized to the free cores, then a full one
        (_state(), {}, Room(0, 0), 1, []),  # a group already waits in line: nothing more
        (_state(next_index=98), {}, Room(3, 100), 0, [[98, 99]]),
        (
            _state(next_index=50, retry=[RetryDue(index=7, due=NOW, attempts=1, runs=1)]),
            {},
            Room(1, 100),
            0,
            [[7, *range(50, 65)], list(range(65, 81))],
        ),
        (
            _state(retry=[RetryDue(index=7, due=NOW + dt.timedelta(seconds=1), attempts=1, runs=1)]),
            {},
            Room(1, 100),
            0,
            [
                list(range(16)),
                list(range(16, 32)),
            ],
        ),  # a retry in its backoff waits
        (_state(stopping="cancelled"), {}, Room(5, 100), 0, []),
    ],
)
def test_plan_groups(
    state: ArrayState, tasks: dict[str, Any], room: Room, queued: int, expected: list[list[int]]
) -> None:
    spec = array_spec(**tasks)
    planned = plan_groups(state, spec, NOW, per_group=16, room=room, queued=queued, lookahead=1, max_groups=20)
    assert [[r.index for r in runs] for runs in planned] == expected


def _ended_group(
    codes: list[int | None], status: Status, *, lost: bool = False, starts: list[float] | None = None
) -> JobRecord:
    parent = JobRecord(
        id="arr",
        spec=array_spec(),
        spec_hash="h",
        status=Status.RUNNING,
        submitted_at=NOW,
        updated_at=NOW,
        array=ArrayState(count=100),
    )
    group = group_record(parent, 1, [TaskRun(index=i) for i in range(len(codes))], NOW)
    end = NOW + dt.timedelta(seconds=600)
    containers = [
        ContainerResult(
            name=f"task-{i}",
            exit_code=code,
            start_time=NOW + dt.timedelta(seconds=(starts or [0] * len(codes))[i]),
            finish_time=NOW + dt.timedelta(seconds=30) if code is not None and status is not Status.TIMED_OUT else end,
        )
        for i, code in enumerate(codes)
    ]
    attempt = Attempt(
        number=1,
        group=group.id,
        pool="p1",
        location="westeurope",
        cores=1.0,
        memory_gb=2.0,
        reserved_at=NOW,
        launched_at=NOW,
        finished_at=end,
        outcome=status,
        lost=lost,
        ending=Ending(outcome=status, reason="r", at=end) if status is Status.TIMED_OUT or lost else None,
        containers=containers,
        cost=0.04,
    )
    return group.model_copy(update={"status": status, "attempts": [attempt]})


@pytest.mark.parametrize(
    ("codes", "status", "lost", "starts", "expected"),
    [
        ([0, 0, 3, 0], Status.FAILED, False, None, ["succeeded", "succeeded", "failed", "succeeded"]),
        ([0, 0], Status.SUCCEEDED, False, None, ["succeeded", "succeeded"]),
        # at its deadline: the task that had its whole timeout timed out, the one that started late is interrupted
        ([0, None, None], Status.TIMED_OUT, False, [0, 0, 400], ["succeeded", "timed-out", "interrupted"]),
        ([0, None], Status.FAILED, True, None, ["succeeded", "interrupted"]),  # evicted
        ([0, 137, None], Status.CANCELLED, False, None, ["succeeded", "cancelled", "cancelled"]),
    ],
)
def test_run_results(
    codes: list[int | None], status: Status, lost: bool, starts: list[float] | None, expected: list[str]
) -> None:
    results = run_results(_ended_group(codes, status, lost=lost, starts=starts), 600, Prices())
    assert [r.verdict.value for r in results] == expected
    assert sum(r.cost for r in results) == pytest.approx(0.04, abs=1e-5)  # the group's cost, split by share


def test_a_group_that_was_never_created_fails_its_tasks_charged() -> None:
    group = _ended_group([None, None], Status.FAILED).model_copy(update={"attempts": [], "reason": "no pool"})
    assert {r.verdict for r in run_results(group, 600, Prices())} == {Verdict.FAILED}


# --- flows over fakes ------------------------------------------------------------------------------------------


def submit(world: World, job_id: str, tasks: dict[str, Any], **extra: Any) -> None:
    spec = {"id": job_id, "image": "busybox", "cpu": 0.5, "memoryGB": 1, "tasks": tasks, **extra}
    accept_message(world.services, json.dumps(spec).encode(), job_id, "application/json")


def live_groups(world: World) -> list[tuple[str, str]]:
    return [key for key in world.groups.created if key not in world.groups.views]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 40),
    retries=st.integers(0, 2),
    codes=st.lists(st.sampled_from([0, 0, 0, 1, 137, None]), min_size=1, max_size=60),
)
def test_every_task_ends_exactly_once_succeeded_or_failed_for_good(
    count: int, retries: int, codes: list[int | None]
) -> None:
    """Whatever exit codes and timeouts (``None``: the container is still running at its group's deadline)."""
    world = make_world(BIG)
    submit(world, "prop", {"count": count}, retries={"count": retries, "backoffSeconds": 0}, timeoutSeconds=60)
    draw = itertools.cycle(codes)
    for _ in range(200):
        run_tick(world.services)
        if world.record("prop").status.terminal:
            break
        for pool_name, name in live_groups(world):
            group = world.groups.created[(pool_name, name)]
            exits = [next(draw) for _ in group.containers]
            if None not in exits:
                world.groups.finish(BIG, name, *[code or 0 for code in exits], at=world.clock.now())
        world.clock.advance(61)
    record = world.record("prop")
    assert record.status in (Status.SUCCEEDED, Status.FAILED)
    assert record.array is not None
    rows = world.store.tasks("prop", 0, 1000)
    assert [t.index for t in rows] == list(range(count))
    assert all(t.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.TIMED_OUT) for t in rows)
    failed = sorted(t.index for t in rows if t.status is not TaskStatus.SUCCEEDED)
    assert record.array.failed_indexes == failed
    assert record.array.succeeded + record.array.failed == count
    failures = [e for e in world.events.published if e.kind == "task.failed"]
    assert sorted(e.data["task"] for e in failures) == failed
    assert (record.status is Status.SUCCEEDED) == (not failed)
    assert not live_groups(world)


def test_more_failures_than_max_failed_tasks_stop_the_rest() -> None:
    world = make_world(BIG)
    submit(world, "stop", {"count": 40, "maxFailedTasks": 2, "packing": {"tasksPerGroup": 4}})
    run_tick(world.services)
    first = next(name for _, name in live_groups(world) if name == "stop-g1")
    world.groups.finish(BIG, first, 1, 1, 1, 0, at=world.clock.now())
    for _ in range(5):
        run_tick(world.services)
        world.clock.advance(30)
    record = world.record("stop")
    assert record.status is Status.FAILED
    assert record.array is not None
    assert record.array.failed == 3
    assert (record.reason or "").startswith("3 tasks failed, more than maxFailedTasks (2)")
    assert record.array.succeeded + record.array.failed + record.array.cancelled == 40
    assert not live_groups(world)


def test_a_single_job_submitted_behind_a_big_array_job_runs_before_its_later_groups() -> None:
    """The fairness policy: an array job keeps one group waiting beyond what the pool can take now, queued when it
    is packed; a job submitted meanwhile is launched first when capacity frees."""
    world = make_world(BIG)
    submit(world, "big", {"count": 500})
    run_tick(world.services)
    assert len(live_groups(world)) == 2  # 8 cores: two groups of 8 tasks, a third waits in line
    world.clock.advance(1)
    accept_message(
        world.services,
        json.dumps({"id": "single", "image": "busybox", "cpu": 1, "memoryGB": 1}).encode(),
        "single",
        "application/json",
    )
    for _ in range(3):
        for _, name in live_groups(world):
            world.groups.finish(
                BIG, name, *[0] * len(world.groups.created[("p1", name)].containers), at=world.clock.now()
            )
        world.clock.advance(30)
        run_tick(world.services)
    launched = [name for _, name in world.groups.requests]
    assert launched.index("single-a1") < launched.index("big-g5")


def test_at_most_one_progress_event_per_run() -> None:
    world = make_world(BIG)
    submit(world, "prog", {"count": 16, "packing": {"tasksPerGroup": 4}})
    run_tick(world.services)
    for _, name in live_groups(world):
        world.groups.finish(BIG, name, 0, 0, 0, 0, at=world.clock.now())
    before = len([e for e in world.events.published if e.kind == "tasks.progress"])
    run_tick(world.services)
    after = len([e for e in world.events.published if e.kind == "tasks.progress"])
    assert after - before == 1
    assert not [e for e in world.events.published if e.kind == "succeeded" and e.job_id.startswith("prog-g")]


BAD = [
    ({"tasks": {"count": 0}}, "tasks.count"),
    ({"tasks": {"count": 20_000}}, "tasks.count"),
    ({"tasks": {"count": 2, "items": ["a", "b"]}}, "tasks"),
    ({"tasks": {"items": ["x" * 1000] * 200}}, "tasks.items"),
    ({"tasks": {"items": []}}, "tasks.items"),
    ({"tasks": {"count": 5, "parallelism": 0}}, "tasks.parallelism"),
    ({"tasks": {"count": 5, "packing": {"tasksPerGroup": 61}}}, "tasks.packing.tasksPerGroup"),
    ({"tasks": {"count": 5, "packing": {"tasksPerGroup": 20}}, "cpu": 0.5}, "tasks.packing.tasksPerGroup"),
    ({"tasks": {"count": 5}, "cpu": 5}, "cpu"),
    ({"tasks": {"count": 5}, "restartPolicy": "OnFailure"}, "restartPolicy"),
    ({"tasks": {"count": 5}, "id": "a" * 56}, "id"),
    ({"tasks": {"count": 5, "maxFailedTasks": -1}}, "tasks.maxFailedTasks"),
    ({"tasks": {"count": 5, "packing": "dense"}}, "tasks.packing"),
]


@pytest.mark.parametrize(("change", "loc"), BAD, ids=[loc for _, loc in BAD])
def test_a_bad_array_spec_is_rejected_naming_the_field(change: dict[str, Any], loc: str) -> None:
    world = make_world()
    data = {"image": "busybox", **change}
    with pytest.raises(JobError) as caught:
        check(data, "fallback", world.services)
    assert any(e.loc == loc or e.loc.startswith(f"{loc}.") for e in caught.value.errors), caught.value.errors


def test_two_containers_are_refused_for_an_array_job() -> None:
    data = {
        "id": "two",
        "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}],
        "tasks": {"count": 3},
    }
    with pytest.raises(JobError) as caught:
        validate_job(data)
    assert [e.loc for e in caught.value.errors] == ["containers"]

"""Array jobs through the local Functions runner, with the ACI emulator really running each task's process: the
containers of one group run side by side, each with its own TASK_INDEX, TASK_ITEM and output folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dispatcher.domain.jobs import Status
from dispatcher.domain.tasks import TaskStatus
from dispatcher.entrypoints.client import DispatcherClient
from tests.fixtures.stack import StackClient


@pytest.fixture(scope="module")
def api(shared_stack: StackClient) -> Iterator[DispatcherClient]:
    with shared_stack.api() as client:
        yield client


def test_tasks_run_side_by_side_each_with_its_index_and_a_failing_one_is_retried_then_named(
    shared_stack: StackClient, api: DispatcherClient
) -> None:
    spec = {
        "id": "arr-index",
        "image": "busybox",
        "command": ["sh", "-c", "echo task=$TASK_INDEX of $TASK_COUNT; sleep 1; test $TASK_INDEX -ne 4"],
        "cpu": 0.5,
        "memoryGB": 0.5,
        "tasks": {"count": 6, "packing": {"tasksPerGroup": 3}},
        "retries": {"count": 1, "backoffSeconds": 0},
    }
    shared_stack.send(spec, "m-arr-index")
    record = shared_stack.wait_status("arr-index", Status.FAILED, tick=True, timeout=90)
    assert record.array is not None
    assert record.array.failed_indexes == [4]
    assert record.array.succeeded == 5
    first = shared_stack.record("arr-index-g1")
    assert first is not None
    assert first.current is not None
    assert [c.name for c in first.current.containers] == ["task-0", "task-1", "task-2"]
    starts = [c.start_time for c in first.current.containers]
    assert all(s is not None for s in starts)
    assert max(starts) - min(starts) < (first.current.containers[0].finish_time - starts[0])  # type: ignore[operator]
    for index in range(6):
        assert f"task={index} of 6" in api.task_logs("arr-index", index)
    failed = api.tasks("arr-index", status="Failed")
    assert [(t.index, t.runs, t.exit_code) for t in failed.items] == [(4, 2, 1)]
    assert "task=4 of 6" in api.task_logs("arr-index", 4, run=1)
    shown = api.job("arr-index")
    assert shown.tasks is not None
    assert (shown.tasks.succeeded, shown.tasks.failed, shown.tasks.progress) == (5, 1, 1.0)
    assert shown.cost > 0
    assert [g for g in shared_stack.groups() if g.startswith("arr-index")] == []


def test_items_are_given_to_their_tasks_and_outputs_are_kept_per_task(
    shared_stack: StackClient, api: DispatcherClient
) -> None:
    spec = {
        "id": "arr-items",
        "image": "busybox",
        "command": ["sh", "-c", 'echo "$TASK_ITEM" > "$TASK_OUTPUT_DIR/item.txt"'],
        "cpu": 0.5,
        "memoryGB": 0.5,
        "mounts": [{"volume": "out", "path": "/out"}],
        "volumes": {"out": {"kind": "workspace"}},
        "tasks": {"items": ["alpha", {"frame": 2}, "gamma"]},
    }
    shared_stack.send(spec, "m-arr-items")
    shared_stack.wait_status("arr-items", Status.SUCCEEDED, tick=True, timeout=90)
    assert shared_stack.record("arr-items-g2") is None  # three small tasks: one group
    listing = api.outputs("arr-items", path="tasks/1")
    assert [e.path for e in listing.entries] == ["tasks/1/item.txt"]
    tasks = api.tasks("arr-items").items
    assert [t.item for t in tasks] == ["alpha", '{"frame":2}', "gamma"]
    assert all(t.status is TaskStatus.SUCCEEDED for t in tasks)


def test_cancelling_an_array_job_stops_every_group_and_leaves_nothing(
    shared_stack: StackClient, api: DispatcherClient
) -> None:
    spec = {
        "id": "arr-cancel",
        "image": "busybox",
        "command": ["sleep", "600"],
        "cpu": 1,
        "memoryGB": 1,
        "tasks": {"count": 12},
    }
    shared_stack.send(spec, "m-arr-cancel")
    shared_stack.wait_status("arr-cancel", Status.RUNNING, tick=True)
    shared_stack.wait_launched("arr-cancel-g1")
    api.cancel("arr-cancel")
    record = shared_stack.wait_status("arr-cancel", Status.CANCELLED, tick=True, timeout=60)
    assert record.array is not None
    assert record.array.cancelled == 12
    assert [g for g in shared_stack.groups() if g.startswith("arr-cancel")] == []


def test_a_rerun_of_only_the_failed_tasks_runs_them_with_their_own_index(
    shared_stack: StackClient, api: DispatcherClient
) -> None:
    spec = {
        "id": "arr-rerun",
        "image": "busybox",
        "command": ["sh", "-c", "echo run $TASK_INDEX; test $TASK_INDEX -ne 2 -a $TASK_INDEX -ne 5"],
        "cpu": 0.5,
        "memoryGB": 0.5,
        "tasks": {"count": 7},
    }
    shared_stack.send(spec, "m-arr-rerun")
    shared_stack.wait_status("arr-rerun", Status.FAILED, tick=True, timeout=90)
    command = ["sh", "-c", "echo again $TASK_INDEX of $TASK_COUNT"]
    new = api.rerun("arr-rerun", {"onlyFailedTasks": True, "command": command}, "key-arr-rerun")
    done = shared_stack.wait_status(new.id, Status.SUCCEEDED, tick=True, timeout=90)
    assert done.array is not None
    assert done.array.count == 2
    assert [t.index for t in api.tasks(new.id).items] == [2, 5]
    assert "again 5 of 7" in api.task_logs(new.id, 5)
    assert api.job("arr-rerun").reruns == [new.id]


def test_a_job_waits_for_an_array_job_and_a_schedule_starts_array_jobs(
    shared_stack: StackClient, api: DispatcherClient
) -> None:
    array = {"id": "arr-dep", "image": "busybox", "command": ["true"], "cpu": 0.5, "memoryGB": 0.5}
    shared_stack.send({"id": "after-arr", "image": "busybox", "command": ["true"], "dependsOn": ["arr-dep"]}, "m-aa")
    shared_stack.send({**array, "tasks": {"count": 5}}, "m-arr-dep")
    shared_stack.wait_status("arr-dep", Status.SUCCEEDED, tick=True, timeout=90)
    shared_stack.wait_status("after-arr", Status.SUCCEEDED, tick=True, timeout=60)
    template = {"image": "busybox", "command": ["true"], "cpu": 0.5, "memoryGB": 0.5, "tasks": {"count": 4}}
    api.apply_schedule("shards", {"schedule": {"name": "shards", "cron": "0 3 * * *"}, "job": template})
    started = api.trigger_schedule("shards", "key-shards-1")
    done = shared_stack.wait_status(started.id, Status.SUCCEEDED, tick=True, timeout=90)
    assert done.array is not None
    assert done.array.succeeded == 4
    shared_stack.reconcile()  # the schedule moves its ended jobs into its history on its next run
    assert api.schedule("shards").succeeded[0].job_id == started.id

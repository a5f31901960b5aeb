"""Array jobs' decisions: how many tasks a group holds, which tasks go into the next groups, what each container's end
means for its task, and when the job is over. Pure: no I/O.

:mod:`dispatcher.service.arrays` reads the array job's record and its ended groups, calls these functions and writes
what they return. Every result is derived from the records alone (times from the group's record, never the clock of
the run), so a write repeated after a crash is the same write.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from dispatcher.domain.jobs import Attempt, ContainerResult, JobRecord, Status
from dispatcher.domain.placement import GROUP_MIN_CORES
from dispatcher.domain.spec import MAX_CONTAINERS, JobSpec, Retries
from dispatcher.domain.tasks import (
    MAX_GROUP_SEQUENCE,
    MAX_INTERRUPTIONS,
    ArrayState,
    FixedPacking,
    RetryDue,
    TaskRecord,
    TaskRun,
    Tasks,
    TaskStatus,
    array_group_name,
    task_container,
)
from dispatcher.settings import Pool, Prices

EPSILON = 1e-9


def array_tasks(spec: JobSpec) -> Tasks:
    if spec.tasks is None:
        raise ValueError("not an array job")
    return spec.tasks


def group_capacity(spec: JobSpec, pool: Pool) -> int:
    """How many of the job's tasks one group can hold in ``pool``: at most 60 containers (less the init containers),
    within the pool's per-group vCPU and GB, and as the spec's packing asks. 0 when a task fits no group there."""
    main = spec.containers[0]
    fit = min(
        MAX_CONTAINERS - len(spec.init_containers),
        math.floor((pool.group_cores + EPSILON) / main.cpu),
        math.floor((pool.group_memory_gb + EPSILON) / main.memory_gb),
    )
    packing = array_tasks(spec).packing
    if packing == "none":
        return min(fit, 1)
    if isinstance(packing, FixedPacking):
        return packing.tasks_per_group if packing.tasks_per_group <= fit else 0
    return max(fit, 0)


@dataclass(frozen=True)
class Room:
    """What the best pool can take now: container groups (by its group count and create windows) and cores."""

    groups: int
    cores: float


def plan_groups(
    state: ArrayState,
    spec: JobSpec,
    now: dt.datetime,
    *,
    per_group: int,
    room: Room,
    queued: int,
    lookahead: int,
    max_groups: int,
) -> list[list[TaskRun]]:
    """The tasks of each group to pack now, in order: retries that are due (earliest first), then never-run tasks.

    A group takes at most ``per_group`` tasks, and the groups together stay within the job's parallelism. As many
    groups are packed as the pool has room for (groups, create windows and cores, each group counted at what ACI
    bills, at least 1 vCPU) once this job's ``queued`` groups are served, plus up to ``lookahead`` groups that wait in
    the queue: those are queued at the time they are packed, so a job submitted meanwhile is launched between this
    job's groups, in submission order (the fairness policy). A group launched now is sized to the free cores when
    those are fewer than a full group needs, so no create waits for cores.
    """
    tasks = array_tasks(spec)
    if state.stopping is not None or per_group < 1:
        return []
    cpu = spec.containers[0].cpu
    limit = tasks.parallelism if tasks.parallelism is not None else state.count
    slots = max(limit - state.running, 0)
    groups, cores, waiting = room.groups, room.cores, 0
    full = max(per_group * cpu, GROUP_MIN_CORES)
    for _ in range(queued):  # this job's groups already in line take the room first
        if groups > 0 and cores + EPSILON >= full:
            groups, cores = groups - 1, cores - full
        else:
            waiting += 1
    ahead = max(lookahead - waiting, 0)
    due = sorted((r for r in state.retry if r.due <= now), key=lambda r: (r.due, r.index))
    fresh = state.next_index
    planned: list[list[TaskRun]] = []
    while len(planned) < max_groups and slots > 0 and state.next_group + len(planned) <= MAX_GROUP_SEQUENCE:
        size = min(per_group, slots)
        if groups > 0 and cores + EPSILON >= GROUP_MIN_CORES:
            size = min(size, math.floor((cores + EPSILON) / cpu))
            groups, cores = groups - 1, cores - max(size * cpu, GROUP_MIN_CORES)
        elif ahead > 0:
            ahead -= 1
        else:
            break
        runs: list[TaskRun] = []
        while len(runs) < size and due:
            r = due.pop(0)
            runs.append(
                TaskRun(index=r.index, attempts=r.attempts, runs=r.runs, interruptions=r.interruptions, groups=r.groups)
            )
        while len(runs) < size and fresh < state.count:
            runs.append(TaskRun(index=tasks.index_at(fresh)))
            fresh += 1
        if not runs:
            break
        planned.append(runs)
        slots -= len(runs)
    return planned


def task_environment(spec: JobSpec, index: int) -> dict[str, str]:
    """What task ``index`` sees besides its spec's env: its index, the count, its item, its output folder."""
    tasks = array_tasks(spec)
    env = {"TASK_INDEX": str(index), "TASK_COUNT": str(tasks.total)}
    item = tasks.item(index)
    if item is not None:
        env["TASK_ITEM"] = item
    workspace = spec.workspace_volume
    mount = next((m for m in spec.containers[0].mounts if m.volume == workspace), None)
    if mount is not None:
        env["TASK_OUTPUT_DIR"] = f"{mount.path.rstrip('/')}/{task_output_folder(index)}"
    return env


def task_output_folder(index: int) -> str:
    """Task ``index``'s folder in the job's workspace share."""
    return f"tasks/{index}"


def group_spec(spec: JobSpec, runs: Sequence[TaskRun]) -> JobSpec:
    """The spec of one group: the job's container once per task, each named ``task-{index}`` with its task's env.

    The group is never retried as a whole (failed tasks are, in a later group) and waits on nothing."""
    main = spec.containers[0]
    containers = [
        main.model_copy(
            update={"name": task_container(r.index), "env": {**main.env, **task_environment(spec, r.index)}}
        )
        for r in runs
    ]
    return spec.model_copy(
        update={"containers": containers, "tasks": None, "id": None, "depends_on": [], "retries": Retries()}
    )


def group_record(parent: JobRecord, sequence: int, runs: Sequence[TaskRun], now: dt.datetime) -> JobRecord:
    """The record of the job's ``sequence``-th group, Queued now: the scheduler launches it as any job."""
    spec = group_spec(parent.job_spec, runs)
    return JobRecord(
        id=array_group_name(parent.id, sequence),
        spec=spec,
        spec_hash=spec.spec_hash(),
        status=Status.QUEUED,
        priority=parent.priority,
        submitted_at=now,
        updated_at=now,
        labels=dict(parent.labels),
        currency=parent.currency,
        group_of=parent.id,
        task_runs=list(runs),
        trace=parent.trace,
        owner=parent.owner,
        team=parent.team,
    )


def running_rows(parent: JobRecord, group: str, runs: Sequence[TaskRun]) -> list[TaskRecord]:
    """The rows of tasks just packed into ``group``: Running there."""
    tasks = array_tasks(parent.job_spec)
    return [
        TaskRecord(
            job_id=parent.id,
            index=r.index,
            status=TaskStatus.RUNNING,
            attempts=r.attempts,
            runs=r.runs + 1,
            interruptions=r.interruptions,
            group=group,
            groups=[*r.groups, group],
            item=tasks.item(r.index),
        )
        for r in runs
    ]


def packed(state: ArrayState, group: str, runs: Sequence[TaskRun]) -> ArrayState:
    """The state after ``runs`` were packed into the next group, named ``group``."""
    chosen = {r.index for r in runs}
    retried = {r.index for r in state.retry} & chosen
    return state.model_copy(
        update={
            "retry": [r for r in state.retry if r.index not in chosen],
            "next_index": state.next_index + len(chosen - retried),
            "open_groups": [*state.open_groups, group],
            "next_group": state.next_group + 1,
            "running": state.running + len(runs),
        }
    )


# --- results ---------------------------------------------------------------------------------------------------


class Verdict(StrEnum):
    """What one run of a task came to."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # charged against the task's retries
    TIMED_OUT = "timed-out"  # charged; retried only if retries.onTimeout
    INTERRUPTED = "interrupted"  # through no fault of its own: run again, not charged
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RunResult:
    index: int
    verdict: Verdict
    reason: str
    exit_code: int | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    cost: float = 0.0


def _stopped_at(group: JobRecord, attempt: Attempt) -> dt.datetime:
    """When the dispatcher decided to stop the group: its recorded ending, else when the group's end was recorded."""
    if attempt.ending is not None:
        return attempt.ending.at
    return attempt.finished_at or group.updated_at


def run_results(group: JobRecord, timeout_seconds: int, prices: Prices) -> list[RunResult]:
    """What each task of an ended group came to, from its own container's exit code and times.

    - A container that exited 0 succeeded; one that exited non-zero on its own (before any stop) failed.
    - A group stopped at its deadline: a task still running that had run its whole timeout timed out; one that
      started late (or never) was interrupted by its neighbours' deadline and is not charged.
    - An evicted (lost) group interrupts its unfinished tasks; a cancelled one cancels them.
    - A group that failed as a whole without exit codes (an image that cannot be pulled, a mount refused) fails
      each task, charged, with the group's reason.

    Each task's cost is the group's cost split by its container's share of the group's price per second.
    """
    attempt = group.current
    spec = group.job_spec
    weights = {c.name: c.cpu * prices.vcpu_second + c.memory_gb * prices.gb_second for c in spec.containers}
    total_weight = sum(weights.values()) or 1.0
    group_cost = (attempt.cost or 0.0) if attempt is not None else 0.0
    results: list[RunResult] = []
    by_name = {c.name: c for c in attempt.containers} if attempt is not None else {}
    for run in group.task_runs:
        name = task_container(run.index)
        share = round(group_cost * weights.get(name, 0.0) / total_weight, 6)
        container = by_name.get(name)
        verdict, reason = _verdict(group, attempt, container, timeout_seconds)
        results.append(
            RunResult(
                index=run.index,
                verdict=verdict,
                reason=reason,
                exit_code=container.exit_code if container else None,
                started_at=container.start_time if container else None,
                finished_at=container.finish_time if container else None,
                cost=share,
            )
        )
    return results


def _verdict(
    group: JobRecord, attempt: Attempt | None, container: ContainerResult | None, timeout_seconds: int
) -> tuple[Verdict, str]:
    status = group.status
    if attempt is None or attempt.launched_at is None:
        if status is Status.CANCELLED:
            return Verdict.CANCELLED, "cancelled before its group was created"
        return Verdict.FAILED, group.reason or "its group could not be created"
    code = container.exit_code if container else None
    if code == 0:
        return Verdict.SUCCEEDED, "exited 0"
    if status is Status.CANCELLED:  # the stop's time is not recorded: any end but 0 counts as the cancel's
        return Verdict.CANCELLED, "cancelled on request"
    stopped_at = _stopped_at(group, attempt)
    natural = (
        code is not None
        and container is not None
        and container.finish_time is not None
        and (status in (Status.SUCCEEDED, Status.FAILED) or container.finish_time < stopped_at)
    )
    if natural and not attempt.lost:
        return Verdict.FAILED, f"exited {code}"
    if attempt.lost:
        return Verdict.INTERRUPTED, attempt.reason or "its group was evicted"
    if status is Status.TIMED_OUT:
        started = container.start_time if container else None
        if started is not None and started + dt.timedelta(seconds=timeout_seconds) <= stopped_at + dt.timedelta(
            seconds=1
        ):
            return Verdict.TIMED_OUT, f"ran past its timeout of {timeout_seconds} s"
        return Verdict.INTERRUPTED, "its group reached its deadline before this task had its full time"
    if code is not None:
        return Verdict.FAILED, f"exited {code}"
    return Verdict.FAILED, group.reason or attempt.reason or "its container did not run"


@dataclass(frozen=True)
class Absorbed:
    """An ended group taken into its job: the job's new state, the tasks' new rows, the tasks failed for good."""

    state: ArrayState
    rows: list[TaskRecord]
    failed_for_good: list[TaskRecord]
    cost: float


def absorb(
    state: ArrayState,
    parent: JobRecord,
    group: JobRecord,
    results: Sequence[RunResult],
) -> Absorbed:
    """Take an ended group's results into the job: succeeded tasks end; failed ones go back for a retry after their
    backoff while they have retries, else end failed for good; interrupted ones go back at once, uncharged."""
    spec = parent.job_spec
    retries = spec.retries
    ended_at = (group.current.finished_at if group.current else None) or group.updated_at
    stopping = state.stopping is not None or parent.cancel_requested
    runs = {r.index: r for r in group.task_runs}
    rows: list[TaskRecord] = []
    failed: list[TaskRecord] = []
    retry = list(state.retry)
    succeeded, failed_count, cancelled = state.succeeded, state.failed, state.cancelled
    failed_indexes = list(state.failed_indexes)
    for result in results:
        run = runs[result.index]
        attempts, interruptions = run.attempts, run.interruptions
        status: TaskStatus
        not_before: dt.datetime | None = None
        if result.verdict is Verdict.SUCCEEDED:
            status = TaskStatus.SUCCEEDED
        elif result.verdict is Verdict.CANCELLED or (stopping and result.verdict is Verdict.INTERRUPTED):
            status = TaskStatus.CANCELLED
        elif result.verdict is Verdict.INTERRUPTED:
            interruptions += 1
            status = TaskStatus.PENDING if interruptions <= MAX_INTERRUPTIONS else TaskStatus.FAILED
        else:
            attempts += 1
            again = result.verdict is Verdict.FAILED or retries.on_timeout
            final = TaskStatus.FAILED if result.verdict is Verdict.FAILED else TaskStatus.TIMED_OUT
            status = TaskStatus.PENDING if again and attempts <= retries.count and not stopping else final
            if status is TaskStatus.PENDING:
                not_before = ended_at + dt.timedelta(seconds=retries.delay(attempts))
        if status is TaskStatus.PENDING:
            due = not_before or ended_at
            retry.append(
                RetryDue(
                    index=result.index,
                    due=due,
                    attempts=attempts,
                    runs=run.runs + 1,
                    interruptions=interruptions,
                    groups=[*run.groups, group.id],
                )
            )
        elif status is TaskStatus.SUCCEEDED:
            succeeded += 1
        elif status is TaskStatus.CANCELLED:
            cancelled += 1
        else:
            failed_count += 1
            failed_indexes.append(result.index)
        row = TaskRecord(
            job_id=parent.id,
            index=result.index,
            status=status,
            attempts=attempts,
            runs=run.runs + 1,
            interruptions=interruptions,
            group=group.id,
            groups=[*run.groups, group.id],
            exit_code=result.exit_code,
            started_at=result.started_at,
            finished_at=result.finished_at,
            not_before=not_before if status is TaskStatus.PENDING else None,
            reason=result.reason if status is not TaskStatus.PENDING else f"{result.reason}; to run again",
            cost=result.cost,
            item=array_tasks(spec).item(result.index),
        )
        rows.append(row)
        if status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT):
            failed.append(row)
    cost = sum(r.cost for r in results)
    new_state = state.model_copy(
        update={
            "retry": retry,
            "open_groups": [g for g in state.open_groups if g != group.id],
            "running": max(state.running - len(results), 0),
            "succeeded": succeeded,
            "failed": failed_count,
            "cancelled": cancelled,
            "failed_indexes": sorted(set(failed_indexes)),
        }
    )
    return Absorbed(new_state, rows, failed, cost)


def stop_reason(state: ArrayState, tasks: Tasks, cancel_requested: bool) -> str | None:
    """Why the job stops its remaining tasks now, or ``None`` to go on."""
    if cancel_requested:
        return "cancelled on request"
    if tasks.max_failed_tasks is not None and state.failed > tasks.max_failed_tasks:
        return f"{state.failed} tasks failed, more than maxFailedTasks ({tasks.max_failed_tasks})"
    return None


def stopped(state: ArrayState, reason: str) -> ArrayState:
    """The state once the job stops: every task not running and not ended is cancelled."""
    never_run = state.count - state.next_index
    return state.model_copy(
        update={
            "stopping": reason,
            "retry": [],
            "next_index": state.count,
            "cancelled": state.cancelled + never_run + len(state.retry),
        }
    )


def indexes_text(indexes: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(str(i) for i in indexes[:limit])
    return shown + (f" and {len(indexes) - limit} more" if len(indexes) > limit else "")


def outcome(state: ArrayState, cancel_requested: bool) -> tuple[Status, str] | None:
    """The job's end once no group is open and every task has ended, else ``None``."""
    if not state.finished:
        return None
    if cancel_requested:
        return Status.CANCELLED, f"cancelled on request; {state.succeeded} of {state.count} tasks had succeeded"
    if state.failed == 0 and state.cancelled == 0:
        return Status.SUCCEEDED, f"all {state.count} tasks succeeded"
    prefix = f"{state.stopping}; " if state.stopping else ""
    failed = f"tasks {indexes_text(state.failed_indexes)} failed" if state.failed_indexes else "no task failed"
    return Status.FAILED, f"{prefix}{failed} ({state.succeeded} of {state.count} succeeded)"

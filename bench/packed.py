"""Scenario E: many small tasks as ONE array job (packed into groups) beside the naive one group per task.

The dispatcher gets a single array job through ``accept_message`` and ``run_tick`` packs its tasks into groups
(``{job id}-g{n}``); the tasks it has finished are read from the job's record (``array.succeeded + array.failed``)
after each run. The naive baseline creates one group per task (:mod:`bench.naive`). Both run against the same ACI
quota over a fixed horizon; the bounds are ACI's create windows and cores, in tasks per hour.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from bench.bound import ideal_schedule
from bench.environment import OURS_SUBSCRIPTION
from bench.measures import Sample, SystemRun, diff_counters
from bench.ours import DispatcherDriver
from bench.workload import ArrayJob, Job
from devstack.stack import JOBS_QUEUE
from dispatcher.domain.jobs import JobRecord
from dispatcher.settings import Pool

GROUP_CORES = 4.0
GROUP_MEMORY_GB = 16.0
GROUP_CONTAINERS = 60
"""ACI's limits on one container group (Linux, most regions): what ``packing: auto`` may fill a group up to."""
GROUP_MIN_CORES = 1.0
"""ACI bills and counts a group as at least 1 vCPU: a naive group of a 0.25 vCPU task holds a whole core."""
TARGET_RATIO = 10.0


def tasks_per_group(cpu: float, memory_gb: float) -> int:
    """How many tasks of this size one group holds under ACI's per-group limits."""
    return max(1, min(GROUP_CONTAINERS, math.floor(GROUP_CORES / cpu + 1e-9), math.floor(GROUP_MEMORY_GB / memory_gb)))


def bounds(job: ArrayJob, pools: Sequence[Pool], horizon: float) -> dict[str, Any]:
    """The long-run ceilings (creates per hour x tasks per group; cores / task cores x 3600 / duration) and an
    ideal dispatcher's tasks by the horizon, for packed groups and for one group per task."""
    per_group = tasks_per_group(job.cpu, job.memory_gb)
    creates_per_hour = sum(p.creates_per_hour for p in pools)
    cores = sum(p.max_cores for p in pools)
    groups = [
        Job(f"g{n}", 0.0, job.duration, job.cpu * min(per_group, job.count - first), job.memory_gb)
        for n, first in enumerate(range(0, job.count, per_group))
    ]
    sizes = {g.id: min(per_group, job.count - n * per_group) for n, g in enumerate(groups)}
    packed = ideal_schedule(groups, pools)
    singles = [Job(f"t{n}", 0.0, job.duration, max(job.cpu, GROUP_MIN_CORES), job.memory_gb) for n in range(job.count)]
    single = ideal_schedule(singles, pools)

    def ideal(ends: dict[str, float], size: dict[str, int] | None) -> dict[str, Any]:
        done = [(end, size[i] if size else 1) for i, end in ends.items() if end <= horizon]
        completed = sum(n for _, n in done)
        span = max(e for e, _ in done) if completed == job.count else horizon
        curve: list[list[float]] = []
        total = 0
        for end, n in sorted(done):
            total += n
            if curve and curve[-1][0] == end:
                curve[-1][1] = total
            else:
                curve.append([end, total])
        return {
            "completed_by_horizon": completed,
            "per_hour": round(completed / (span / 3600.0), 1),
            "curve": curve,
        }

    return {
        "tasks_per_group": per_group,
        "create_ceiling_per_hour": {"dispatcher": creates_per_hour * per_group, "naive": creates_per_hour},
        "core_bound_per_hour": round(cores / job.cpu * 3600.0 / job.duration, 1),
        "naive_core_bound_per_hour": round(cores / max(job.cpu, GROUP_MIN_CORES) * 3600.0 / job.duration, 1),
        "ideal": {"dispatcher": ideal(packed.ends, sizes), "naive": ideal(single.ends, None)},
    }


def finish_time(run: SystemRun, count: int) -> float | None:
    """When the last task was seen ended (the first sample with every task ended), ``None`` if not by the end."""
    return next((s.t for s in run.timeline if s.completed is not None and s.completed >= count), None)


def task_metrics(run: SystemRun, count: int, ideal_per_hour: float) -> dict[str, Any]:
    """The run's figures, with its throughput in tasks per hour: completed / (last completion, or the horizon)."""
    done_at = finish_time(run, count)
    if done_at is not None:
        run.makespan_s = done_at
    metrics = run.metrics(ideal_per_hour, 0.0)
    created = run.arm_calls("create", "201")
    running = (run.timeline[-1].running or 0) if run.timeline else 0
    held = run.completed + running
    metrics.update(
        tasks=count,
        time_to_all_s=done_at,
        tasks_per_hour=metrics["throughput_per_hour"],
        groups_created=created,
        tasks_per_group_measured=round(held / created, 2) if created else None,
    )
    return metrics


def compare(data: dict[str, Any]) -> None:
    """Ours against naive, once both ran (they may have run in separate processes): the ratio of tasks/h."""
    results = data.get("results", {})
    ours, naive = results.get("dispatcher"), results.get("naive")
    if ours is None or naive is None:
        return
    ratio = ours["tasks_per_hour"] / naive["tasks_per_hour"] if naive["tasks_per_hour"] else None
    data["ratio_tasks_per_hour"] = round(ratio, 2) if ratio is not None else None
    data["ratio_target"] = TARGET_RATIO
    ours["ratio_vs_naive"] = data["ratio_tasks_per_hour"]


class ArrayJobDriver(DispatcherDriver):
    """The dispatcher on one array job: submitted once, ``run_tick`` every interval until it ends or the horizon."""

    def run_array(self, job: ArrayJob, *, horizon: float) -> SystemRun:
        run = SystemRun(system="dispatcher", jobs=job.count, horizon_s=horizon)
        counters0 = self.env.stack.aci.counters()
        wall0 = time.perf_counter()
        start = self.env.clock.now()
        with (
            self._bus.get_queue_sender(JOBS_QUEUE) as sender,
            self._bus.get_queue_receiver(JOBS_QUEUE, prefetch_count=100) as receiver,
        ):
            self._deliver([job], start, run, sender, receiver)
        timer, t = self.tick_interval, 0.0
        record = None
        while t <= horizon:
            t = self._step(start, t, timer)
            if not self._run_due(start, t, timer):
                continue
            while timer <= t:
                timer += self.tick_interval
            self._tick(run, t)
            found = self.services.records.get(job.id)
            record = found.value if found is not None else None
            run.timeline.append(self._task_sample(start, job, record))
            if record is not None and record.status.terminal and self.env.groups_in(OURS_SUBSCRIPTION) == 0:
                break
        run.wall_s = time.perf_counter() - wall0
        run.arm = diff_counters(self.env.stack.aci.counters(), counters0)
        run.attempts = run.arm_calls("create", "201")
        if record is None or record.array is None:
            run.notes.append(f"array job {job.id} has no record with an array state")
        else:
            state = record.array
            run.statuses = {k: v for k, v in (("Succeeded", state.succeeded), ("Failed", state.failed)) if v}
            if state.cancelled:
                run.notes.append(f"{state.cancelled} tasks cancelled")
            if record.last_error:
                run.notes.insert(0, f"last error on the job's record: {record.last_error}")
            run.notes.insert(0, f"job {record.status.value} at the end: {state.counts()}")
        run.makespan_s = float(horizon)
        run.groups_left = self.env.groups_in(OURS_SUBSCRIPTION)
        return run

    def _task_sample(self, start: float, job: ArrayJob, record: JobRecord | None) -> Sample:
        """Groups held and creates in ACI's windows, and the tasks ended, running and pending from the record."""
        state = record.array if record is not None else None
        return Sample(
            t=self.env.clock.now() - start,
            groups=sum(self.env.groups_in(OURS_SUBSCRIPTION, p.location) for p in self.env.pools),
            queue=state.pending if state is not None else job.count,
            completed=state.succeeded + state.failed if state is not None else 0,
            running=state.running if state is not None else 0,
            **self.env.windows(OURS_SUBSCRIPTION, self.env.pools),
        )

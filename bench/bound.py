"""The quota bound on throughput: a closed formula per pool, and an exact schedule of an ideal dispatcher.

The formula (jobs per hour, per pool, summed over pools) is

    min(creates_per_hour, 12 x creates_per_5min, max_groups / E[d], max_cores / E[c·d])

with ``d`` a job's busy time in hours and ``c`` its vCPU. It is the long-run rate; over a run of a few
hours ACI's windows let a first burst through (100 creates in 5 minutes, 300 in the first hour), so the
benchmark divides by the throughput of an ideal dispatcher on the same jobs instead: one that knows
every job's end the moment it happens, launches in arrival order with backfilling, and never exceeds a
quota. Its makespan is the shortest any quota-respecting dispatcher can achieve in this way.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.workload import Job, mean
from dispatcher.settings import Pool

FIVE_MINUTES = 300.0
ONE_HOUR = 3600.0
SLACK = 1e-6  # float slack, so that a create leaves its window exactly when the window has passed


def formula_bound(jobs: Sequence[Job], pools: Sequence[Pool]) -> float:
    """Jobs per hour the pools' quotas allow in the long run, for this mix of jobs."""
    if not jobs:
        return 0.0
    mean_hours = mean([j.busy_seconds for j in jobs]) / 3600.0
    mean_core_hours = mean([j.cpu * j.busy_seconds for j in jobs]) / 3600.0
    total = 0.0
    for pool in pools:
        total += min(
            float(pool.creates_per_hour),
            12.0 * pool.creates_per_5min,
            pool.max_groups / mean_hours if mean_hours > 0 else math.inf,
            pool.max_cores / mean_core_hours if mean_core_hours > 0 else math.inf,
        )
    return total


def formula_text() -> str:
    return "Σ over pools of min(creates/hour, 12 x creates/5 min, max groups ÷ E[d], max cores ÷ E[cores x d])"


@dataclass
class _PoolSim:
    pool: Pool
    running: list[tuple[float, float]] = field(default_factory=list)  # (end, cores) heap
    creates: deque[float] = field(default_factory=deque)

    def release_until(self, now: float) -> None:
        while self.running and self.running[0][0] <= now + SLACK:
            heapq.heappop(self.running)
        while self.creates and self.creates[0] <= now - ONE_HOUR + SLACK:
            self.creates.popleft()

    def cores(self) -> float:
        return sum(c for _, c in self.running)

    def rate_room(self, now: float) -> bool:
        in_5 = sum(1 for t in self.creates if t > now - FIVE_MINUTES + SLACK)
        return in_5 < self.pool.creates_per_5min and len(self.creates) < self.pool.creates_per_hour

    def fits(self, job: Job, now: float) -> bool:
        return self.fits_cores(job.cpu, now)

    def fits_cores(self, cores: float, now: float) -> bool:
        return (
            len(self.running) < self.pool.max_groups
            and self.cores() + cores <= self.pool.max_cores + 1e-9
            and self.rate_room(now)
        )

    def next_change(self, now: float) -> float:
        """The next moment a running group ends or a create leaves a window."""
        moments = [self.running[0][0]] if self.running else []
        moments += [t + FIVE_MINUTES for t in self.creates if t + FIVE_MINUTES > now + SLACK][:1]
        if self.creates:
            moments.append(self.creates[0] + ONE_HOUR)
        return min(moments, default=math.inf)


@dataclass(frozen=True)
class IdealSchedule:
    """When each job of the ideal dispatcher ended, in emulated seconds after the start."""

    ends: dict[str, float]

    @property
    def makespan(self) -> float:
        return max(self.ends.values(), default=0.0)

    def completed_by(self, moment: float) -> int:
        return sum(1 for end in self.ends.values() if end <= moment)


def ideal_schedule(jobs: Sequence[Job], pools: Sequence[Pool]) -> IdealSchedule:
    """Schedule ``jobs`` as an ideal dispatcher would, within every pool's quotas."""
    sims = [_PoolSim(p) for p in pools]
    pending = sorted(jobs, key=lambda j: j.arrival)
    queue: list[Job] = []
    ends: dict[str, float] = {}
    now = 0.0
    cursor = 0
    while cursor < len(pending) or queue:
        while cursor < len(pending) and pending[cursor].arrival <= now:
            queue.append(pending[cursor])
            cursor += 1
        for sim in sims:
            sim.release_until(now)
        waiting: list[Job] = []
        smallest = min((j.cpu for j in queue), default=0.0)
        for index, job in enumerate(queue):
            if not any(s.fits_cores(smallest, now) for s in sims):
                waiting.extend(queue[index:])  # every pool is full or rate-limited for any job
                break
            fitting = [s for s in sims if s.fits(job, now)]
            if not fitting:
                waiting.append(job)
                continue
            sim = min(fitting, key=lambda s: (len(s.running) / max(s.pool.max_groups, 1), s.pool.name))
            end = now + job.busy_seconds
            heapq.heappush(sim.running, (end, job.cpu))
            sim.creates.append(now)
            ends[job.id] = end
        queue = waiting
        upcoming = [s.next_change(now) for s in sims]
        if cursor < len(pending):
            upcoming.append(pending[cursor].arrival)
        following = min((m for m in upcoming if m > now + SLACK), default=math.inf)
        if math.isinf(following):
            if queue:
                raise ValueError(f"{len(queue)} jobs can never fit any pool")
            break
        now = following
    return IdealSchedule(ends)

"""What one system's run measured: counts, latencies, CPU, ARM calls and a timeline, ready for JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

ARM_WRITES = ("create", "delete", "stop", "start", "restart")
QUOTA_STATUS = "409"
THROTTLED_STATUS = "429"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation, ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50, p95 and max of ``values``."""
    return {
        "count": len(values),
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "max": max(values) if values else None,
    }


@dataclass
class Sample:
    """One point of the timeline, in emulated seconds after the start."""

    t: float
    groups: int
    queue: int
    creates_5min: int
    creates_hour: int
    completed: int | None = None
    """Jobs (in E, tasks) ended by then, when the driver counts them as it goes."""
    running: int | None = None
    """Tasks running then (E's dispatcher: from the array job's record)."""
    deletes_5min: int = 0
    deletes_hour: int = 0


@dataclass
class TickCost:
    """What one reconciler run cost."""

    t: float
    wall_ms: float
    cpu_ms: float
    reads: int
    active: int
    launched: int


@dataclass
class SystemRun:
    """The measurements of one system (the dispatcher or the naive baseline) on one workload."""

    system: str
    jobs: int
    statuses: dict[str, int] = field(default_factory=dict)
    makespan_s: float = 0.0
    wall_s: float = 0.0
    arm: dict[str, dict[str, int]] = field(default_factory=dict)
    attempts: int = 0
    timeouts: int = 0
    start_latency_s: list[float] = field(default_factory=list)
    running_seen_s: list[float] = field(default_factory=list)
    queue_wait_s: list[float] = field(default_factory=list)
    exit_to_deleted_s: list[float] = field(default_factory=list)
    intake_cpu_ms: list[float] = field(default_factory=list)
    recorded_cpu_ms: list[float] = field(default_factory=list)
    """Intake CPU of the messages whose job intake recorded without launching it (no room): the intake proper."""
    ticks: list[TickCost] = field(default_factory=list)
    timeline: list[Sample] = field(default_factory=list)
    groups_left: int = 0
    horizon_s: float | None = None
    notes: list[str] = field(default_factory=list)
    launched_s: dict[str, float] = field(default_factory=dict)
    """When each job's first group was created, emulated seconds after the start."""

    @property
    def completed(self) -> int:
        return sum(self.statuses.values())

    def arm_calls(self, operation: str, status: str | None = None) -> int:
        by_status = self.arm.get(operation, {})
        return by_status.get(status, 0) if status is not None else sum(by_status.values())

    def rejections(self) -> dict[str, int]:
        """``ContainerGroupQuotaReached`` answers (409 on create, 409 on delete: ACI limits deletes too) and
        throttled (429) answers of any kind."""
        return {
            "quota_409": self.arm_calls("create", QUOTA_STATUS),
            "delete_quota_409": self.arm_calls("delete", QUOTA_STATUS),
            "throttled_429": sum(statuses.get(THROTTLED_STATUS, 0) for statuses in self.arm.values()),
        }

    def metrics(self, ideal_throughput_per_hour: float, formula_per_hour: float) -> dict[str, Any]:
        """The figures the report shows."""
        hours = self.makespan_s / 3600.0
        throughput = self.completed / hours if hours > 0 else 0.0
        per_job = {op: round(self.arm_calls(op) / self.jobs, 3) for op in sorted(self.arm)} if self.jobs else {}
        writes = sum(self.arm_calls(op) for op in ARM_WRITES if op in self.arm)
        tick_cpu = sum(t.cpu_ms for t in self.ticks)
        return {
            "jobs": self.jobs,
            "completed": self.completed,
            "statuses": self.statuses,
            "makespan_s": round(self.makespan_s, 1),
            "horizon_s": self.horizon_s,
            "wall_s": round(self.wall_s, 1),
            "throughput_per_hour": round(throughput, 1),
            "efficiency_vs_ideal": round(throughput / ideal_throughput_per_hour, 3)
            if ideal_throughput_per_hour
            else None,
            "efficiency_vs_formula": round(throughput / formula_per_hour, 3) if formula_per_hour else None,
            "rejections": self.rejections(),
            "arm_calls_per_job": per_job,
            "arm_writes_per_attempt": round(writes / self.attempts, 3) if self.attempts else None,
            "attempts": self.attempts,
            "timeouts": self.timeouts,
            "latency_s": {
                "enqueue_to_container_start_when_free": summary(self.start_latency_s),
                "enqueue_to_running_seen_when_free": summary(self.running_seen_s),
                "enqueue_to_launch_all": summary(self.queue_wait_s),
                "exit_to_deleted": summary(self.exit_to_deleted_s),
            },
            "cpu_ms_per_job": {
                "intake": _mean(self.intake_cpu_ms),
                "intake_without_launch": _mean(self.recorded_cpu_ms),
                "reconciler": round(tick_cpu / self.jobs, 2) if self.jobs else None,
            },
            "ticks": {
                "count": len(self.ticks),
                "wall_ms": summary([t.wall_ms for t in self.ticks]),
                "reads": summary([float(t.reads) for t in self.ticks]),
            },
            "groups_left": self.groups_left,
            "notes": self.notes,
        }

    def raw(self) -> dict[str, Any]:
        """Timeline and per-tick costs, for the JSON file and the plot."""
        return {
            "timeline": [asdict(s) for s in self.timeline],
            "ticks": [asdict(t) for t in self.ticks],
        }


def diff_counters(
    after: Mapping[str, Mapping[str, int]], before: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """``after - before`` of two emulator counter snapshots, dropping zeros."""
    result: dict[str, dict[str, int]] = {}
    for operation, statuses in after.items():
        for status, count in statuses.items():
            delta = count - before.get(operation, {}).get(status, 0)
            if delta:
                result.setdefault(operation, {})[status] = delta
    return result


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None

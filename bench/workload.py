"""Benchmark workloads: jobs of mixed duration and size, with arrival times, as job specs the dispatcher accepts."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

# (emulated seconds, weight): mostly short jobs, a tail of longer ones.
DURATIONS = ((60.0, 0.30), (120.0, 0.30), (300.0, 0.25), (600.0, 0.15))
# (vCPU, GB, weight)
SIZES = ((1.0, 1.5, 0.6), (2.0, 3.5, 0.3), (4.0, 7.0, 0.1))
FAILURE_SHARE = 0.03
TIMEOUT_SHARE = 0.02
TIMEOUT_SECONDS = 1800
TIMED_OUT_TIMEOUT = 90
TIMED_OUT_DURATION = 100_000.0
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
COMMAND = ["/bin/sh", "-c", "run-batch"]


@dataclass(frozen=True)
class Job:
    """One benchmark job: when it arrives (emulated seconds after the start), how long it runs, its size."""

    id: str
    arrival: float
    duration: float
    cpu: float
    memory_gb: float
    exit_code: int = 0
    timeout_seconds: int = TIMEOUT_SECONDS

    @property
    def times_out(self) -> bool:
        return self.duration > self.timeout_seconds

    @property
    def busy_seconds(self) -> float:
        """How long the job holds its group: its run, or its timeout when it runs past it."""
        return min(self.duration, float(self.timeout_seconds))

    def spec(self) -> dict[str, Any]:
        """The job spec; the ACI emulator's simulation reads the duration and exit code from the environment."""
        env = {"DEVSTACK_SIM_DURATION": f"{self.duration:g}", "DEVSTACK_SIM_EXIT_CODE": str(self.exit_code)}
        return {
            "id": self.id,
            "labels": {"bench": "true"},
            "containers": [
                {
                    "name": "main",
                    "image": IMAGE,
                    "command": COMMAND,
                    "cpu": self.cpu,
                    "memoryGB": self.memory_gb,
                    "env": env,
                }
            ],
            "timeoutSeconds": self.timeout_seconds,
        }

    def body(self) -> bytes:
        return json.dumps(self.spec()).encode()


@dataclass(frozen=True)
class ArrayJob:
    """One array job of ``count`` equal tasks, submitted at once, packed by the dispatcher (``packing: auto``)."""

    id: str
    count: int
    duration: float
    cpu: float
    memory_gb: float
    timeout_seconds: int = 900
    arrival: float = 0.0

    def spec(self) -> dict[str, Any]:
        """The array job's spec: every task's container runs ``duration`` emulated seconds and exits 0."""
        return {
            "id": self.id,
            "labels": {"bench": "true"},
            "image": IMAGE,
            "command": COMMAND,
            "cpu": self.cpu,
            "memoryGB": self.memory_gb,
            "env": {"DEVSTACK_SIM_DURATION": f"{self.duration:g}", "DEVSTACK_SIM_EXIT_CODE": "0"},
            "tasks": {"count": self.count, "packing": "auto"},
            "timeoutSeconds": self.timeout_seconds,
        }

    def body(self) -> bytes:
        return json.dumps(self.spec()).encode()

    def as_jobs(self) -> list[Job]:
        """The same tasks as ``count`` single jobs, all arriving at once: what the naive baseline runs."""
        return [
            Job(
                f"{self.id}-{n}",
                self.arrival,
                self.duration,
                self.cpu,
                self.memory_gb,
                timeout_seconds=self.timeout_seconds,
            )
            for n in range(self.count)
        ]


def _pick(rng: random.Random, options: tuple[tuple[float, ...], ...]) -> tuple[float, ...]:
    return rng.choices(options, weights=[o[-1] for o in options])[0]


def mixed_jobs(prefix: str, count: int, *, arrival_span: float, seed: int) -> list[Job]:
    """``count`` jobs of mixed duration and size arriving uniformly over ``arrival_span`` emulated seconds.

    A few fail (exit 1) and a few run past their timeout, so the failure and timeout paths are exercised.
    Arrivals are sorted; ids are ``{prefix}-{n}``.
    """
    rng = random.Random(seed)
    arrivals = sorted(rng.uniform(0.0, arrival_span) if arrival_span > 0 else 0.0 for _ in range(count))
    jobs = []
    for n, arrival in enumerate(arrivals):
        duration = _pick(rng, DURATIONS)[0]
        cpu, memory, _ = _pick(rng, SIZES)
        roll = rng.random()
        if roll < TIMEOUT_SHARE:
            jobs.append(
                Job(f"{prefix}-{n}", arrival, TIMED_OUT_DURATION, cpu, memory, timeout_seconds=TIMED_OUT_TIMEOUT)
            )
        elif roll < TIMEOUT_SHARE + FAILURE_SHARE:
            jobs.append(Job(f"{prefix}-{n}", arrival, duration, cpu, memory, exit_code=1))
        else:
            jobs.append(Job(f"{prefix}-{n}", arrival, duration, cpu, memory))
    return jobs


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0

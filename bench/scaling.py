"""Scenario C: what one reconciler run costs with 100, 1,000 or 10,000 active groups, and with history.

Active jobs are seeded straight into their steady state (a Running record, its reservation, its group),
because launching thousands through admission would measure admission and ACI's create quota, not the
reconciler. Records go through the ``JobStore`` port, reservations into the documented ``pool:{name}`` /
``res:{group}`` rows (and the counts into its ``state`` row), groups through the emulator's own create
operation with the body the dispatcher's mapping builds.
"""

from __future__ import annotations

import gc
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from azure.data.tables import TableClient
from azure.mgmt.containerinstance import ContainerInstanceManagementClient

from bench.environment import OURS_SUBSCRIPTION, Environment
from bench.measures import diff_counters
from bench.ours import profiles
from bench.workload import Job
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.adapters.azure.mapping import build_container_group
from dispatcher.adapters.azure.tables import layout
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.placement import Demand, PoolState, Reservation
from dispatcher.domain.spec import JobSpec
from dispatcher.service.launch import group_request, new_attempt
from dispatcher.service.submit import check, new_record
from dispatcher.service.tick import run_tick
from dispatcher.settings import Pool

LONG_RUN = 20 * 3600.0
REPEATS = 3
"""Runs between upkeeps measured per row, the median kept: one run is one sample on a shared machine."""
WORKERS = 4
NAIVE_SAMPLE = 1000
"""The naive poll ``get``s at most this many of the groups, spread evenly, and its wall time is scaled to all
of them: each ``get`` is independent of the others, and 10,000 of them would cost a minute of the run."""


@dataclass(frozen=True)
class ScalingRow:
    """One measurement with ``active`` groups and ``history`` finished jobs in the store: a reconciler run between
    upkeeps (``tick_*``), and one that also does the upkeep (``upkeep_*``)."""

    active: int
    history: int
    tick_wall_ms: float
    tick_cpu_ms: float
    upkeep_wall_ms: float
    upkeep_cpu_ms: float
    reads: int
    arm: dict[str, int]
    naive_poll_wall_ms: float
    naive_poll_cpu_ms: float
    naive_reads: int
    naive_sampled: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "history": self.history,
            "tick_wall_ms": round(self.tick_wall_ms, 1),
            "tick_cpu_ms": round(self.tick_cpu_ms, 1),
            "upkeep_wall_ms": round(self.upkeep_wall_ms, 1),
            "upkeep_cpu_ms": round(self.upkeep_cpu_ms, 1),
            "reads_per_tick": self.reads,
            "arm_calls_per_tick": self.arm,
            "naive_poll_wall_ms": round(self.naive_poll_wall_ms, 1),
            "naive_poll_cpu_ms": round(self.naive_poll_cpu_ms, 1),
            "naive_reads_per_poll": self.naive_reads,
            "naive_poll_sampled_gets": self.naive_sampled,
        }


class ScalingBench:
    """Seeds active jobs into one pool and measures reconciler runs as their number grows."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.services = env.services
        self.pool: Pool = env.pools[0]
        self._table = TableClient.from_connection_string(
            env.stack.storage_connection_string, env.services.settings.jobs_table
        )
        self._aci = ContainerInstanceManagementClient(
            DevstackCredential(), OURS_SUBSCRIPTION, base_url=env.aci_url, connection_verify=env.ca_bundle
        )
        self.active: list[str] = []
        self.cores = 0.0
        self.history = 0

    def close(self) -> None:
        self._table.close()
        self._aci.close()

    def _record(self, job: Job, spec: JobSpec, *, finished: bool) -> JobRecord:
        services = self.services
        now = services.clock.now()
        record = new_record(spec, services)
        attempt = new_attempt(record, self.pool, Demand.of(spec), now).model_copy(
            update={"launched_at": now, "started_at": now}
        )
        running = record.with_attempt(attempt).transition(Status.LAUNCHING, now).transition(Status.RUNNING, now)
        if not finished:
            return running
        done = attempt.model_copy(update={"finished_at": now, "outcome": Status.SUCCEEDED})
        return running.with_attempt(done).transition(Status.SUCCEEDED, now, reason="every container exited 0")

    def _seed_one(self, job: Job) -> str:
        spec = check(job.spec(), job.id, self.services)
        record = self._record(job, spec, finished=False)
        self.services.records.insert(record)
        attempt = record.attempts[0]
        group = build_container_group(group_request(self.services, record, attempt, self.pool), self.services.settings)
        self.env.stack.aci.service.create_or_update(
            OURS_SUBSCRIPTION, self.pool.resource_group, attempt.group, group.serialize(), self.env.aci_url
        )
        return attempt.group

    def grow_to(self, count: int) -> None:
        """Seed active jobs until ``count`` are running."""
        jobs = [Job(f"c-{n}", 0.0, LONG_RUN, 1.0, 1.5, timeout_seconds=86400) for n in range(len(self.active), count)]
        with ThreadPoolExecutor(WORKERS) as pool:
            groups = list(pool.map(self._seed_one, jobs))
        now = self.services.clock.now()
        for first in range(0, len(jobs), 100):
            self._table.submit_transaction(
                [
                    (
                        "upsert",
                        layout.reservation_entity(
                            self.pool,
                            Reservation(group, job.id, 1, float(job.cpu), now, job.timeout_seconds, started=True),
                        ),
                    )
                    for job, group in zip(jobs[first : first + 100], groups[first : first + 100], strict=True)
                ]
            )
        self.active.extend(groups)
        self.cores += sum(job.cpu for job in jobs)
        state = PoolState(self.pool, groups=len(self.active), cores=float(self.cores))
        self._table.upsert_entity(layout.state_entity(state))

    def _seed_finished(self, job: Job) -> None:
        self.services.records.insert(self._record(job, check(job.spec(), job.id, self.services), finished=True))

    def add_history(self, count: int) -> None:
        """Store ``count`` finished jobs: history the reconciler must not read."""
        jobs = [Job(f"h-{self.history + n}", 0.0, 60.0, 1.0, 1.5) for n in range(count)]
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(self._seed_finished, jobs))
        self.history += count

    def _run(self, advance: float) -> tuple[float, float, int, dict[str, int], bool]:
        """One reconciler run ``advance`` emulated seconds on: its wall and CPU (ms), reads, ARM calls and
        whether it did the upkeep."""
        self.env.clock.advance_to(self.env.clock.now() + advance)
        gc.collect()  # the seeding's garbage is not the run's to collect
        before = self.env.stack.aci.counters()
        wall, cpu = time.perf_counter(), time.thread_time()
        with profiles.measure("tick"):
            report = run_tick(self.services)
        tick_wall, tick_cpu = (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000
        arm = {op: sum(s.values()) for op, s in diff_counters(self.env.stack.aci.counters(), before).items()}
        return tick_wall, tick_cpu, report.reads, arm, report.upkeep

    def measure(self) -> ScalingRow:
        """An upkeep run, then ``REPEATS`` runs an interval apart (what most runs are; the one of median CPU is
        kept), then one naive poll of the same groups (past ``NAIVE_SAMPLE``, estimated)."""
        settings = self.services.settings
        upkeep_wall, upkeep_cpu, _, _, upkeep = self._run(settings.upkeep_seconds)
        runs = [self._run(settings.reconcile_interval_seconds) for _ in range(REPEATS)]
        if not upkeep or any(run[4] for run in runs):
            raise RuntimeError("scenario C expected an upkeep run, then runs without it")
        tick_wall, tick_cpu, reads, arm, _ = sorted(runs, key=lambda run: run[1])[REPEATS // 2]
        sample = self.active[:: -(-len(self.active) // NAIVE_SAMPLE)]
        wall, cpu = time.perf_counter(), time.thread_time()
        for name in sample:
            self._aci.container_groups.get(self.pool.resource_group, name)
        scale = len(self.active) / max(len(sample), 1)
        naive_wall = (time.perf_counter() - wall) * 1000 * scale
        naive_cpu = (time.thread_time() - cpu) * 1000 * scale
        return ScalingRow(
            active=len(self.active),
            history=self.history,
            tick_wall_ms=tick_wall,
            tick_cpu_ms=tick_cpu,
            upkeep_wall_ms=upkeep_wall,
            upkeep_cpu_ms=upkeep_cpu,
            reads=reads,
            arm=arm,
            naive_poll_wall_ms=naive_wall,
            naive_poll_cpu_ms=naive_cpu,
            naive_reads=len(self.active),
            naive_sampled=len(sample),
        )


def run_scaling(env: Environment, sizes: list[int], history: int) -> list[ScalingRow]:
    """Measure at each size; at the first size, measure again after adding ``history`` finished jobs."""
    bench = ScalingBench(env)
    rows: list[ScalingRow] = []
    try:
        for index, size in enumerate(sizes):
            bench.grow_to(size)
            rows.append(bench.measure())
            if index == 0 and history:
                bench.add_history(history)
                rows.append(bench.measure())
    finally:
        bench.close()
    return rows

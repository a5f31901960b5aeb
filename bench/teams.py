"""Scenario F: fair share. One team bursts thousands of jobs at once; another team's single job arrives just after.

Ours submits each job as its team through the HTTP path (``submit_http``: recorded, then a reference message that
intake takes), with both teams configured; the scheduler chooses between the teams' queues by dominant share. The
baseline creates a group per job in arrival order, retrying at the quota, as a FIFO queue would. The figure that
matters is how long the single job waits once capacity frees: the issue's bound is one reconciler run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from azure.servicebus import ServiceBusReceiver, ServiceBusSender

from bench.environment import NAIVE_SUBSCRIPTION, OURS_SUBSCRIPTION, Environment, PoolPlan
from bench.measures import SystemRun, summary
from bench.naive import NaiveDispatcher
from bench.ours import DispatcherDriver
from bench.workload import Job
from dispatcher.domain.identity import Actor
from dispatcher.service.submit import accept_message, submit_http

BURST, SOLO = "burst", "solo"
TEAMS: dict[str, dict[str, list[str]]] = {BURST: {"groups": []}, SOLO: {"groups": []}}
DURATION = 600.0
SOLO_ARRIVAL = 150.0
OWNER = Actor(id="bench", name="bench", via="token")


def team_of(job: Job) -> str:
    return SOLO if job.id.startswith(SOLO) else BURST


def workload(burst: int) -> list[Job]:
    """``burst`` jobs of one team at once, each 1 vCPU for 10 minutes, then one job of another team."""
    jobs = [Job(f"{BURST}-{n:05}", 0.0, DURATION, 1.0, 1.5) for n in range(burst)]
    return [*jobs, Job(f"{SOLO}-1", SOLO_ARRIVAL, DURATION, 1.0, 1.5)]


class TeamsDriver(DispatcherDriver):
    """The dispatcher, each job submitted over the HTTP path as its team."""

    def run(self, jobs: Sequence[Job], *, horizon: float | None = None, max_seconds: float) -> SystemRun:
        """The base run, then when each job's first group was created, running or not (the base run times only the
        jobs that ended)."""
        start = self.env.clock.now()
        run = super().run(jobs, horizon=horizon, max_seconds=max_seconds)
        for job_id, record in self._records().items():
            first = record.attempts[0] if record.attempts else None
            if first is not None and first.launched_at is not None:
                run.launched_s[job_id] = first.launched_at.timestamp() - start
        return run

    def _deliver(
        self,
        jobs: Sequence[Job],  # type: ignore[override]
        start: float,
        run: SystemRun,
        sender: ServiceBusSender,
        receiver: ServiceBusReceiver,
    ) -> None:
        for job in jobs:
            self.env.clock.advance_to(start + job.arrival)
            cpu0 = time.thread_time()
            submit_http(self.services, job.body(), job.id, OWNER, team_of(job))
            run.intake_cpu_ms.append((time.thread_time() - cpu0) * 1000)
        received = 0
        while received < len(jobs):  # each submission's reference message, taken by intake as the trigger would
            messages = receiver.receive_messages(max_message_count=100, max_wait_time=5)
            if not messages:
                raise RuntimeError(f"only {received} of {len(jobs)} reference messages arrived")
            for message in messages:
                accept_message(self.services, b"".join(message.body), message.message_id, message.content_type)
                receiver.complete_message(message)
                received += 1


def _freed_after(deletions: dict[str, float], moment: float) -> float | None:
    """The first time after ``moment`` (epoch seconds) a group was deleted: capacity freed."""
    later = [t for t in deletions.values() if t > moment]
    return min(later) if later else None


def _team_metrics(run: SystemRun, jobs: Sequence[Job], deletions: dict[str, float], start: float) -> dict[str, Any]:
    waits: dict[str, list[float]] = {BURST: [], SOLO: []}
    for job in jobs:
        launched = run.launched_s.get(job.id)
        if launched is not None:
            waits[team_of(job)].append(max(0.0, launched - job.arrival))
    solo = run.launched_s.get(f"{SOLO}-1")
    freed = _freed_after(deletions, start + SOLO_ARRIVAL)
    return {
        "waits_s": {team: summary(values) for team, values in waits.items()},
        "launched": {team: len(values) for team, values in waits.items()},
        "solo_wait_s": round(solo - SOLO_ARRIVAL, 1) if solo is not None else None,
        "capacity_freed_s": round(freed - start, 1) if freed is not None else None,
        "solo_after_capacity_freed_s": (
            round(max(0.0, solo - (freed - start)), 1) if solo is not None and freed is not None else None
        ),
        "groups_left": run.groups_left,
        "notes": run.notes[:5],
    }


def run_fair_share(
    state_dir: Path, plan: PoolPlan, burst: int, *, horizon: float, tick: float, systems: Sequence[str]
) -> dict[str, Any]:
    """Scenario F's data: both systems on the same workload over ``horizon`` emulated seconds."""
    jobs = workload(burst)
    settings = {"DISPATCHER_TEAMS": json.dumps(TEAMS)}
    results: dict[str, Any] = {}
    with Environment(state_dir, [plan], seed=16, settings=settings) as env:
        for system in systems:
            start = env.clock.now()
            if system == "dispatcher":
                ours = TeamsDriver(env, interval=tick)
                try:
                    run = ours.run(jobs, horizon=horizon, max_seconds=horizon)
                finally:
                    ours.close()
                deletions = env.deletions(OURS_SUBSCRIPTION)
            else:
                naive = NaiveDispatcher(env, interval=tick)
                try:
                    run = naive.run(jobs, horizon=horizon, max_seconds=horizon)
                finally:
                    naive.close()
                deletions = env.deletions(NAIVE_SUBSCRIPTION)
            results[run.system] = _team_metrics(run, jobs, deletions, start)
        pools = [p.model_dump(by_alias=True) for p in env.pools]
    return {
        "jobs": len(jobs),
        "burst": burst,
        "solo_arrival_s": SOLO_ARRIVAL,
        "job_duration_s": DURATION,
        "tick_seconds": tick,
        "horizon_s": horizon,
        "pools": pools,
        "results": results,
    }

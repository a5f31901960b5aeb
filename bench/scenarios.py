"""The scenarios (A one pool, B three pools, C reconciler scaling, D a burst, E an array job of small tasks) and the
sizes of each profile."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bound import formula_bound, formula_text, ideal_schedule
from bench.environment import REGIONS, Environment, PoolPlan
from bench.naive import NaiveDispatcher
from bench.ours import DispatcherDriver, profiles
from bench.packed import ArrayJobDriver, bounds, compare, task_metrics
from bench.scaling import run_scaling
from bench.teams import run_fair_share
from bench.workload import ArrayJob, mixed_jobs

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0


@dataclass(frozen=True)
class Profile:
    """How big each scenario is: jobs and the span over which they arrive (emulated seconds)."""

    name: str
    a_jobs: int
    a_span: float
    b_jobs: int
    b_span: float
    c_sizes: tuple[int, ...]
    c_history: int
    d_jobs: int
    d_horizon: float
    e_tasks: int
    e_horizon: float
    f_burst: int
    f_horizon: float


PROFILES = {
    "smoke": Profile(
        "smoke",
        a_jobs=20,
        a_span=120.0,
        b_jobs=24,
        b_span=60.0,
        c_sizes=(10, 30),
        c_history=20,
        d_jobs=40,
        d_horizon=900.0,
        e_tasks=400,
        e_horizon=600.0,
        f_burst=150,
        f_horizon=900.0,
    ),
    "quick": Profile(
        "quick",
        a_jobs=320,
        a_span=600.0,
        b_jobs=309,
        b_span=120.0,
        c_sizes=(100, 1000),
        c_history=1000,
        d_jobs=200,
        d_horizon=600.0,
        e_tasks=2500,
        e_horizon=3600.0,
        f_burst=1000,
        f_horizon=900.0,
    ),
    "full": Profile(
        "full",
        a_jobs=1000,
        a_span=1800.0,
        b_jobs=1000,
        b_span=600.0,
        c_sizes=(100, 1000, 10000),
        c_history=1000,
        d_jobs=5000,
        d_horizon=600.0,
        e_tasks=5000,
        e_horizon=7200.0,
        f_burst=5000,
        f_horizon=900.0,
    ),
}
"""``full``, what ``make bench`` runs, has the brief's sizes: 1,000 jobs in A and B, 10,000 active groups in C,
a burst of 5,000 in D. ``quick`` is about a third of the work, for a look in a few minutes. Arrivals outpace
the quota in every profile, so that the quota, not the arrivals, limits throughput: A needs more than an hour
of ACI's hourly create window (the quick A, 320 jobs in 10 minutes, a second hour), B overfills each pool's
5-minute window, D puts every message on the queue at once and is measured over a fixed horizon. E submits its
tasks at once too (5,000 in full, over 2 emulated hours; quick 2,500 over 1 hour; smoke 400 over 10 minutes, more
than the naive baseline's 100 creates per 5 minutes can finish in that time, so that ours must finish more). F bursts
5,000 jobs of one team (quick 1,000, smoke 150) and one job of another team 150 s later, over 15 emulated minutes:
long enough for the burst's first jobs to end and free capacity."""

SCENARIOS = ("A", "B", "C", "D", "E", "F")
TITLES = {
    "A": "mixed jobs into one pool with ACI's default limits",
    "B": "mixed jobs across three pools (three regions, each with its own default quota)",
    "C": "reconciler cost against the number of active groups",
    "D": "a burst of messages at once",
    "E": "small tasks into one pool with ACI's default quota: one packed array job beside one group per task",
    "F": "fair share: one team's burst at once, then another team's single job, into one pool",
}
E_DURATION = 30.0
E_CPU = 0.25
E_MEMORY_GB = 0.5


SYSTEMS = ("dispatcher", "naive")
"""The two systems a throughput scenario (A, B, D, E) runs: each can run alone, in its own process and devstack."""


@dataclass
class ScenarioResult:
    """Everything one scenario produced, as written to ``<scenario>.json``."""

    scenario: str
    title: str
    profile: str
    data: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def _throughput_run(
    scenario: str,
    state_dir: Path,
    plans: list[PoolPlan],
    jobs_count: int,
    *,
    span: float,
    horizon: float | None,
    seed: int,
    systems: Sequence[str],
) -> ScenarioResult:
    with Environment(state_dir, plans, seed=seed) as env:
        jobs = mixed_jobs(scenario.lower(), jobs_count, arrival_span=span, seed=seed)
        formula = formula_bound(jobs, env.pools)
        ideal = ideal_schedule(jobs, env.pools)
        if horizon is None:
            ideal_per_hour = len(jobs) / (ideal.makespan / 3600.0)
        else:
            ideal_per_hour = ideal.completed_by(horizon) / (horizon / 3600.0)
        safety = max(ideal.makespan * 4, 4 * 3600.0)
        results: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        drivers: dict[str, type[DispatcherDriver] | type[NaiveDispatcher]] = {
            "dispatcher": DispatcherDriver,
            "naive": NaiveDispatcher,
        }
        for system in systems:
            driver = drivers[system](env, interval=TICK_SECONDS)
            try:
                run = driver.run(jobs, horizon=horizon, max_seconds=safety)
            finally:
                driver.close()
            results[run.system] = run.metrics(ideal_per_hour, formula)
            raw[run.system] = run.raw()
        pools = [p.model_dump(by_alias=True) for p in env.pools]
    return ScenarioResult(
        scenario,
        TITLES[scenario],
        "",
        data={
            "jobs": len(jobs),
            "pools": pools,
            "tick_seconds": TICK_SECONDS,
            "arrival_span_s": span,
            "horizon_s": horizon,
            "bound": {
                "formula": formula_text(),
                "formula_per_hour": round(formula, 1),
                "ideal_makespan_s": round(ideal.makespan, 1),
                "ideal_per_hour": round(ideal_per_hour, 1),
                "ideal_completed_by_horizon": ideal.completed_by(horizon) if horizon is not None else None,
            },
            "limits": {
                "groups": sum(p.max_groups for p in env.pools),
                "cores": sum(p.max_cores for p in env.pools),
                "creates_per_5min": sum(p.creates_per_5min for p in env.pools),
                "creates_per_hour": sum(p.creates_per_hour for p in env.pools),
            },
            "results": results,
        },
        raw=raw,
    )


def _array_run(
    state_dir: Path, plan: PoolPlan, tasks: int, *, horizon: float, seed: int, systems: Sequence[str]
) -> ScenarioResult:
    """Scenario E: ``tasks`` equal tasks submitted at once, as one array job (ours) and as one group each (naive)."""
    job = ArrayJob("shards", tasks, E_DURATION, E_CPU, E_MEMORY_GB)
    with Environment(state_dir, [plan], seed=seed) as env:
        bound = bounds(job, env.pools, horizon)
        results: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        for system in systems:
            if system == "dispatcher":
                ours = ArrayJobDriver(env, interval=TICK_SECONDS)
                try:
                    run = ours.run_array(job, horizon=horizon)
                finally:
                    ours.close()
            else:
                naive = NaiveDispatcher(env, interval=TICK_SECONDS)
                try:
                    run = naive.run(job.as_jobs(), horizon=horizon, max_seconds=horizon)
                finally:
                    naive.close()
            results[run.system] = task_metrics(run, tasks, bound["ideal"][run.system]["per_hour"])
            raw[run.system] = run.raw()
        pools = [p.model_dump(by_alias=True) for p in env.pools]
    data: dict[str, Any] = {
        "jobs": tasks,
        "tasks": tasks,
        "task": {"duration_s": E_DURATION, "cpu": E_CPU, "memory_gb": E_MEMORY_GB, "timeout_s": job.timeout_seconds},
        "spec": job.spec(),
        "pools": pools,
        "tick_seconds": TICK_SECONDS,
        "horizon_s": horizon,
        "bound": bound,
        "limits": {
            "groups": plan.max_groups,
            "cores": plan.max_cores,
            "creates_per_5min": plan.creates_per_5min,
            "creates_per_hour": plan.creates_per_hour,
        },
        "results": results,
    }
    compare(data)
    return ScenarioResult("E", TITLES["E"], "", data=data, raw=raw)


def run_scenario(scenario: str, profile: Profile, state_dir: Path, systems: Sequence[str] = SYSTEMS) -> ScenarioResult:
    """Run one scenario (of A, B, D and E, only ``systems``) from scratch in its own devstack under ``state_dir``."""
    started = time.perf_counter()
    if scenario == "A":
        plans = [PoolPlan("a", REGIONS[0])]
        result = _throughput_run(
            "A", state_dir, plans, profile.a_jobs, span=profile.a_span, horizon=None, seed=11, systems=systems
        )
    elif scenario == "B":
        plans = [PoolPlan(f"b{n}", region) for n, region in enumerate(REGIONS)]
        result = _throughput_run(
            "B", state_dir, plans, profile.b_jobs, span=profile.b_span, horizon=None, seed=12, systems=systems
        )
    elif scenario == "C":
        biggest = max(profile.c_sizes) + 10
        plan = PoolPlan("c", REGIONS[0], biggest, 10**7, 10**7, 10**7)
        with Environment(state_dir, [plan], unthrottled=True, seed=13) as env:
            rows = run_scaling(env, list(profile.c_sizes), profile.c_history)
            settings = env.services.settings
            budget = settings.reads_per_run(settings.pools[0])
        result = ScenarioResult(
            "C",
            TITLES["C"],
            "",
            data={
                "rows": [r.as_dict() for r in rows],
                "interval_seconds": settings.reconcile_interval_seconds,
                "upkeep_seconds": settings.upkeep_seconds,
                "arm_reads_per_tick": budget,
            },
        )
    elif scenario == "D":
        plans = [PoolPlan("d", REGIONS[0])]
        result = _throughput_run(
            "D", state_dir, plans, profile.d_jobs, span=0.0, horizon=profile.d_horizon, seed=14, systems=systems
        )
    elif scenario == "E":
        plan = PoolPlan("e", REGIONS[0])
        result = _array_run(state_dir, plan, profile.e_tasks, horizon=profile.e_horizon, seed=15, systems=systems)
    elif scenario == "F":
        plan = PoolPlan("f", REGIONS[0])
        data = run_fair_share(
            state_dir, plan, profile.f_burst, horizon=profile.f_horizon, tick=TICK_SECONDS, systems=systems
        )
        result = ScenarioResult("F", TITLES["F"], "", data=data)
    else:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    result.profile = profile.name
    result.data["wall_s"] = round(time.perf_counter() - started, 1)
    profiles.write(scenario)
    return result


def merge(parts: Sequence[ScenarioResult]) -> ScenarioResult:
    """One scenario's result from the parts that ran its systems separately (the same workload and bound)."""
    first = parts[0]
    merged = ScenarioResult(first.scenario, first.title, first.profile, data=dict(first.data), raw=dict(first.raw))
    merged.data["results"] = {}
    for part in parts:
        merged.data["results"].update(part.data.get("results", {}))
        merged.raw.update(part.raw)
    merged.data["wall_s"] = round(sum(part.data["wall_s"] for part in parts), 1)
    if merged.scenario == "E":
        compare(merged.data)
    return merged

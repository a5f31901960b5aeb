"""Crash right after every side effect of every flow, recover through redelivery and later runs, check the
invariants.

Each flow runs once to enumerate its writes (the crash points: every applied write of every port, in order);
then once per write, crashing right after it. ``CRASH_POINTS`` prints them with ``pytest -s -k enumerate``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest

from dispatcher.domain.jobs import Status
from dispatcher.domain.naming import TAG_CREATED, TAG_INSTANCE
from dispatcher.service.services import Services
from tests.reliability.harness import POOL, SERVICE, WRITES, CrashAfter, JobPlan, Plan, Sim, SimGroup, fakes

Flow = Callable[[Sim], None]


def one(plan: JobPlan) -> Flow:
    return lambda sim: sim.submit(plan)


def scheduler_launch(sim: Sim) -> None:
    """A pool of one group: the second job waits in the queue and the scheduler launches it."""
    sim.submit(JobPlan("first", seconds=40))
    sim.submit(JobPlan("second", seconds=40))


def cancel_queued(sim: Sim) -> None:
    """The pool's one group is busy: the second job is cancelled while it waits in the queue."""
    sim.submit(JobPlan("blocker", seconds=60))
    sim.submit(JobPlan("a", seconds=30, cancel_after=1))


def dependency_chain(sim: Sim) -> None:
    """c waits on b, which waits on a; b fails, so c fails without running."""
    sim.submit(JobPlan("c", seconds=30, depends_on=("b",), outcome=Status.FAILED))
    sim.submit(JobPlan("a", seconds=30))
    sim.submit(JobPlan("b", seconds=30, exit_code=2, depends_on=("a",)))


def schedule_fire(sim: Sim) -> None:
    """A schedule due once in the flow's time (12:05 on 22 November, UTC) starts exactly one job."""
    template = JobPlan("template", seconds=30).spec()
    del template["id"]
    document = {"schedule": {"name": "yearly", "cron": "5 12 22 11 *"}, "job": template}
    sim.schedule(document, [JobPlan("yearly-202611221205", seconds=30)])


def orphan(sim: Sim) -> None:
    """A group of this dispatcher that no record owns, made long ago."""
    old = (sim.clock.now() - dt.timedelta(days=1)).isoformat()
    tags = {TAG_INSTANCE: sim.raw.settings.instance, TAG_CREATED: old}
    sim.raw.groups.groups[(POOL.name, "stray-a1")] = SimGroup(  # type: ignore[attr-defined]
        "stray", POOL.name, 1.0, tags, ("main",), sim.clock.now(), 10_000, 0
    )


FLOWS: dict[str, Flow] = {
    "intake": one(JobPlan("a", seconds=30)),
    "intake-inline-secret": one(JobPlan("a", seconds=30, inline_secret=True)),
    "http-submit": one(JobPlan("a", seconds=30, via="http")),
    "scheduler-launch": scheduler_launch,
    "finish-failed": one(JobPlan("a", seconds=30, exit_code=2)),
    "timeout": one(JobPlan("a", seconds=10_000, timeout=90)),
    "retry": one(JobPlan("a", seconds=30, exit_code=1, retries=1)),
    "cancel-running": one(JobPlan("a", seconds=10_000, cancel_after=45)),
    "cancel-queued": cancel_queued,
    "spot-eviction": one(JobPlan("a", seconds=90, spot=True, evict_after=40)),
    "orphan-delete": orphan,
    "dependency-chain": dependency_chain,
    "schedule-fire": schedule_fire,
    "array-job": one(JobPlan("arr", seconds=30, cpu=0.5, tasks=6, failing_tasks=(4,))),
}


def run(flow: Flow, plan: Plan) -> Sim:
    services, clock, aci = fakes([POOL.model_copy(update={"max_groups": 1})], orphan_grace_seconds=120)
    sim = Sim(services, clock, plan=plan, evict=aci.evict)
    flow(sim)
    sim.settle(max_steps=400)
    return sim


def writes_of(name: str) -> list[str]:
    return [call.name for call in run(FLOWS[name], Plan()).injector.writes]


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_without_a_crash_the_flow_keeps_every_invariant(name: str) -> None:
    sim = run(FLOWS[name], Plan())
    assert sim.tally.problems() == []
    assert sim.injector.writes, "the flow made no write"


@pytest.mark.parametrize("lost_answer", [False, True], ids=["crash", "applied-answered-error"])
@pytest.mark.parametrize("name", sorted(FLOWS))
def test_a_crash_after_any_write_of_the_flow_ends_the_same_way(name: str, lost_answer: bool) -> None:
    points = writes_of(name)
    failures: list[str] = []
    for n in range(1, len(points) + 1):
        plan = CrashAfter(n, lost_answer=lost_answer)
        sim = run(FLOWS[name], plan)
        assert plan.crashed is not None
        problems = sim.tally.problems()
        if problems:
            failures.append(f"crash after write {n} ({plan.crashed.name}): {problems}")
    assert failures == [], "\n".join(failures)


def test_purge_after_retention_leaves_nothing_of_the_job_whatever_write_it_crashes_after() -> None:
    def flow(sim: Sim) -> None:
        sim.submit(JobPlan("a", seconds=30, inline_secret=True))

    def purged(plan: Plan) -> tuple[Sim, int]:
        services, clock, _aci = fakes([POOL], retention_days=1)
        sim = Sim(services, clock, plan=plan)
        flow(sim)
        sim.settle(max_steps=100)
        assert sim.tally.problems() == []
        before = len(sim.injector.writes)
        clock.advance(2 * 86400)
        for _ in range(5):
            sim.step()
        return sim, before

    sim, before = purged(Plan())
    total = len(sim.injector.writes)
    assert total > before
    for n in range(before + 1, total + 1):
        sim, _ = purged(CrashAfter(n))
        raw = sim.raw
        assert raw.records.get("a") is None, f"crash after write {n}"
        inline = [name for name in raw.job_secrets.versions if name.startswith("inline-")]  # type: ignore[attr-defined]
        assert inline == [], f"crash after write {n}"
        assert raw.logs.blobs == {}, f"crash after write {n}"  # type: ignore[attr-defined]


def test_enumerate_the_crash_points_of_every_flow() -> None:
    for name in sorted(FLOWS):
        points = writes_of(name)
        print(f"{name}: {len(points)} crash points: {', '.join(points)}")  # shown with pytest -s
    assert all(writes_of(name) for name in FLOWS)


def test_every_port_is_behind_the_injector() -> None:
    # tokens: the HTTP API's sign-in, which no flow here calls (requests arrive authenticated)
    # cursors, log_reads, regions, recent_states: the process's own memory between runs, not ports
    ports = {f.name for f in dataclasses.fields(Services)} - {
        "settings",
        "clock",
        "cursors",
        "log_reads",
        "regions",
        "recent_states",
        "tokens",
    }
    assert ports == set(SERVICE) == set(WRITES)


def test_the_expected_outcomes_are_those_of_the_plans() -> None:
    assert JobPlan("x", seconds=10_000, timeout=90).expected is Status.TIMED_OUT
    assert JobPlan("x", exit_code=3).expected is Status.FAILED

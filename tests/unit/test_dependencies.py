"""Job dependencies over fakes: waiting, release through the index, failure naming the dependency, grace, cycles."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.core.dependencies import Verdict, cycle_through, decide
from dispatcher.domain.document import validate_job
from dispatcher.domain.errors import InvalidJob
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.spec import Dependency
from dispatcher.service.cancel import cancel
from dispatcher.service.launch import record_launched
from dispatcher.service.submit import accept_message, check
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world, outage


def submit(world: World, job_id: str, depends_on: list[Any] | None = None) -> None:
    spec: dict[str, Any] = {"id": job_id, "image": "busybox", "command": ["true"]}
    if depends_on is not None:
        spec["dependsOn"] = depends_on
    accept_message(world.services, json.dumps(spec).encode(), job_id, "application/json")


def finish(world: World, job_id: str, code: int) -> None:
    world.groups.finish(POOL, f"{job_id}-a1", code, at=world.clock.now())
    run_tick(world.services)


def status(world: World, job_id: str) -> Status:
    return world.record(job_id).status


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        ({"a": Status.RUNNING}, Verdict.WAIT),
        ({"a": None}, Verdict.WAIT),
        ({"a": Status.SUCCEEDED}, Verdict.READY),
        ({"a": Status.FAILED}, Verdict.FAIL),
        ({"a": Status.CANCELLED}, Verdict.FAIL),
    ],
)
def test_a_succeeded_condition(statuses: dict[str, Status | None], verdict: Verdict) -> None:
    assert decide([Dependency(job="a")], statuses).verdict is verdict


def test_a_completed_condition_is_met_by_any_end_and_a_failure_wins_over_waiting() -> None:
    completed = [Dependency(job="a", condition="Completed")]
    assert decide(completed, {"a": Status.FAILED}).verdict is Verdict.READY
    both = [Dependency(job="a"), Dependency(job="b")]
    decision = decide(both, {"a": Status.RUNNING, "b": Status.TIMED_OUT})
    assert decision.verdict is Verdict.FAIL
    assert "dependency b ended TimedOut" in decision.reason


def test_cycles_are_found_as_paths() -> None:
    assert cycle_through("a", {"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert cycle_through("a", {"a": ["b"], "b": ["c"], "c": []}) is None


def test_a_job_waits_until_its_dependency_succeeds_then_runs() -> None:
    world = make_world()
    submit(world, "a")
    submit(world, "b", ["a"])
    assert status(world, "b") is Status.WAITING
    assert world.record("a").has_dependants
    assert [name for _, name in world.groups.created] == ["a-a1"]
    run_tick(world.services)
    assert status(world, "b") is Status.WAITING
    finish(world, "a", 0)
    assert status(world, "b") in (Status.LAUNCHING, Status.RUNNING)
    assert world.record("a").dependants_released
    assert "waiting" in world.events.types()


def test_a_chain_where_the_middle_fails_fails_the_rest_naming_it() -> None:
    world = make_world()
    submit(world, "a")
    submit(world, "b", ["a"])
    submit(world, "c", ["b"])
    finish(world, "a", 0)
    finish(world, "b", 3)
    run_tick(world.services)
    assert status(world, "b") is Status.FAILED
    assert status(world, "c") is Status.FAILED
    assert world.record("c").reason == "dependency b ended Failed; this job needs it to succeed"
    assert world.record("c").attempts == []


def test_jobs_submitted_out_of_order_wait_for_the_late_one() -> None:
    world = make_world()
    submit(world, "b", ["a"])
    assert status(world, "b") is Status.WAITING
    world.clock.advance(120)
    run_tick(world.services)  # the sweep checks again: still missing, within the grace
    assert status(world, "b") is Status.WAITING
    submit(world, "a")
    world.clock.advance(120)
    run_tick(world.services)
    assert world.record("a").has_dependants
    finish(world, "a", 0)
    assert status(world, "b") in (Status.LAUNCHING, Status.RUNNING)


def test_an_unknown_dependency_fails_the_job_after_the_grace_naming_it() -> None:
    world = make_world(dependency_grace_seconds=600)
    submit(world, "b", ["nope", {"job": "never", "condition": "Completed"}])
    for _ in range(12):
        world.clock.advance(61)
        run_tick(world.services)
    assert status(world, "b") is Status.FAILED
    assert "nope, never were not submitted" in (world.record("b").reason or "")


def test_a_cycle_found_when_its_last_job_arrives_fails_every_job_in_it() -> None:
    world = make_world()
    submit(world, "a", ["c"])
    submit(world, "b", ["a"])
    submit(world, "c", ["b"])
    for job in ("a", "b", "c"):
        assert status(world, job) is Status.FAILED
        assert world.record(job).reason == "dependency cycle: c -> b -> a -> c"


def test_a_dependency_on_itself_is_rejected_naming_the_field() -> None:
    world = make_world()
    with pytest.raises(InvalidJob) as caught:
        check({"id": "a", "image": "busybox", "dependsOn": ["b", "a"]}, None, world.services)
    assert [e.loc for e in caught.value.errors] == ["dependsOn[1]"]
    with pytest.raises(InvalidJob) as caught:
        check({"image": "busybox", "dependsOn": ["from-message"]}, "from-message", world.services)
    assert [e.loc for e in caught.value.errors] == ["dependsOn[0]"]


def test_cancelling_a_dependency_fails_its_dependants_and_a_completed_one_runs() -> None:
    world = make_world()
    submit(world, "a")
    submit(world, "strict", ["a"])
    submit(world, "lenient", [{"job": "a", "condition": "Completed"}])
    cancel(world.services, "a")
    run_tick(world.services)  # stops the group and ends the job Cancelled
    run_tick(world.services)  # decides its dependants
    assert status(world, "a") is Status.CANCELLED
    assert status(world, "strict") is Status.FAILED
    assert "dependency a ended Cancelled" in (world.record("strict").reason or "")
    assert status(world, "lenient") is not Status.WAITING


def test_cancelling_a_waiting_job_ends_it_at_once() -> None:
    world = make_world()
    submit(world, "a")
    submit(world, "b", ["a"])
    assert cancel(world.services, "b").record is not None
    assert status(world, "b") is Status.CANCELLED
    finish(world, "a", 0)
    assert status(world, "b") is Status.CANCELLED


def test_a_release_that_fails_is_retried_by_the_next_run() -> None:
    world = make_world()
    submit(world, "a")
    submit(world, "b", ["a"])
    world.store.faults.add("waiters", outage("table storage"))
    finish(world, "a", 0)
    assert status(world, "b") is Status.WAITING
    assert world.store.releases == {"a"}
    run_tick(world.services)
    assert status(world, "b") in (Status.LAUNCHING, Status.RUNNING)
    assert world.store.releases == set()


def test_waiting_jobs_cost_the_scheduler_nothing() -> None:
    world = make_world()
    submit(world, "a")
    for n in range(50):
        submit(world, f"w{n}", ["a"])
    world.store.reads.clear()
    world.store.got.clear()
    run_tick(world.services)
    assert not any(job.startswith("w") for job in world.store.got)
    assert world.store.reads["waiters"] == 0


def test_a_dependant_registering_while_the_dependency_is_created_does_not_hold_back_its_confirmation() -> None:
    world = make_world()
    submit(world, "a")
    found = world.services.records.get("a")
    assert found is not None
    attempt = found.value.current
    assert attempt is not None
    claimed_before = found.value.with_attempt(attempt.model_copy(update={"launched_at": None})).model_copy(
        update={"status": Status.LAUNCHING}
    )
    claimed = world.services.records.replace(found, claimed_before)
    submit(world, "b", ["a"])  # marks a as having dependants: a's record changes under its launcher
    record_launched(world.services, claimed, "Pending", at=world.clock.now())
    a = world.record("a")
    assert a.current is not None
    assert a.current.launched_at is not None
    assert a.has_dependants
    assert ("p1", "a-a1") not in world.groups.deleted


def test_a_cycle_member_released_by_another_members_failure_fails_for_the_cycle_and_an_outsider_for_the_member() -> (
    None
):
    world = make_world()
    now = world.clock.now()

    def job(job_id: str, status: Status, *needs: str, **changes: Any) -> JobRecord:
        spec = validate_job({"id": job_id, "image": "busybox", "dependsOn": list(needs)})
        made = JobRecord(id=job_id, spec=spec, spec_hash="h", status=status, submitted_at=now, updated_at=now)
        return made.model_copy(update=changes)

    # Given z failed for a cycle (z -> x -> z) while x, a member, still waits, as when two runs race
    cycle = "dependency cycle: z -> x -> z"
    world.store.insert(job("z", Status.FAILED, "x", reason=cycle, has_dependants=True))
    world.store.insert(job("x", Status.WAITING, "z"))
    world.store.insert(job("outside", Status.WAITING, "z"))
    # When the next run releases z's waiters
    run_tick(world.services)
    # Then the member fails for the cycle, and the outsider because z failed
    assert world.record("x").reason == cycle
    assert world.record("outside").reason == "dependency z ended Failed; this job needs it to succeed"

"""What a stopped or stalled writer leaves is finished once, by the intents sweep and by reading before creating."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

from dispatcher.domain.errors import CloudError
from dispatcher.domain.jobs import Status
from dispatcher.domain.placement import Demand
from dispatcher.service.launch import Capacity, Outcome, new_attempt, reserve_and_launch
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world

SECRET_SPEC = {"containers": [{"name": "main", "image": "busybox", "secretEnv": {"T": "api-token"}}]}


def submit(world: World, job_id: str, **spec: object) -> None:
    fields = spec or {"image": "busybox", "command": ["true"]}
    accept_message(world.services, json.dumps({"id": job_id, **fields}).encode(), job_id, "application/json")


def grace(world: World) -> float:
    return world.services.settings.launch_grace_seconds


def leave_a_claim(world: World, job_id: str) -> None:
    """As if a launcher claimed the job's next attempt and then stopped before reserving it."""
    found = world.store.get(job_id)
    assert found is not None
    record = found.value
    attempt = new_attempt(record, POOL, Demand.of(record.job_spec), world.clock.now())
    world.store.replace(found, record.with_attempt(attempt).transition(Status.LAUNCHING, world.clock.now()))


def test_a_launcher_that_stalls_past_half_its_grace_does_not_create_and_the_reconciler_creates_once() -> None:
    # Given a launcher whose vault read takes longer than half the launch grace
    world = make_world()
    world.job_secrets.stall = lambda: world.clock.advance(grace(world) * 0.6)
    result = accept_message(world.services, json.dumps({"id": "a", **SECRET_SPEC}).encode(), "a", "application/json")
    # Then it stops short of the create: the reconciler may be resolving the claim by now
    assert result.launch is not None
    assert result.launch.outcome is Outcome.IN_DOUBT
    assert world.groups.puts == 0
    # And the reconciler, past the grace, reads the group absent and creates it: one create in all
    world.job_secrets.stall = None
    world.clock.advance(grace(world))
    run_tick(world.services)
    assert world.groups.puts == 1
    assert world.store.status("a") is Status.RUNNING


def test_a_late_launcher_finds_its_claim_resumed_and_creates_nothing() -> None:
    # Given a claim left without a reservation, which the sweep resumes past the grace
    world = make_world()
    world.ledger.saturate(POOL, world.clock.now() + dt.timedelta(seconds=1))  # no launch at intake
    submit(world, "a")
    leave_a_claim(world, "a")
    stale = world.store.get("a")
    assert stale is not None
    world.clock.advance(grace(world) + 1)
    run_tick(world.services)
    assert world.groups.puts == 1
    # When the original launcher wakes and carries on with its claim
    late = reserve_and_launch(world.services, stale, Capacity(world.services), owner=True)
    # Then it finds the reservation taken and the claim too old: no second create
    assert late.outcome in (Outcome.IN_DOUBT, Outcome.NOT_QUEUED)
    assert world.groups.puts == 1


def test_a_claim_cancelled_while_every_pool_is_full_ends_cancelled() -> None:
    world = make_world(POOL.model_copy(update={"max_groups": 1}))
    submit(world, "filler")
    submit(world, "a")
    leave_a_claim(world, "a")
    found = world.store.get("a")
    assert found is not None
    world.store.replace(found, found.value.model_copy(update={"cancel_requested": True}))
    world.clock.advance(grace(world) + 1)
    run_tick(world.services)
    assert world.store.status("a") is Status.CANCELLED
    assert world.ledger.state(POOL).groups == 1  # the filler's only


def test_a_claim_whose_pool_is_full_goes_back_to_the_queue() -> None:
    world = make_world(POOL.model_copy(update={"max_groups": 1}))
    submit(world, "filler")
    submit(world, "a")
    leave_a_claim(world, "a")
    world.clock.advance(grace(world) + 1)
    run_tick(world.services)
    record = world.record("a")
    assert (record.status, record.attempts) == (Status.QUEUED, [])
    assert [e.job_id for e in world.store.queued(10)] == ["a"]


def test_inline_values_never_stored_end_the_job_failed_with_the_reason() -> None:
    # Given a submission whose inline values could not be stored, and that nobody delivers again
    world = make_world(POOL, allow_inline_secrets=True, intake_retry_seconds=0)
    world.job_secrets.faults.add("set", CloudError("vault unreachable", status=503, transient=True))
    spec = {"id": "a", "containers": [{"name": "main", "image": "busybox", "secretEnv": {"T": {"value": "v"}}}]}
    with contextlib.suppress(CloudError):  # the message is redelivered... until it is dead-lettered
        accept_message(world.services, json.dumps(spec).encode(), "a", "application/json")
    assert world.record("a").secrets_pending
    # When ten launch graces pass
    world.clock.advance(grace(world) * 10 + 1)
    run_tick(world.services)
    # Then the job ends Failed, saying why, instead of waiting forever
    record = world.record("a")
    assert record.status is Status.FAILED
    assert "never stored" in (record.reason or "")


def test_a_spec_the_group_cannot_be_built_from_fails_the_job_and_releases_its_capacity() -> None:
    # Given a dispatcher that may mount from account "other", and an ACI adapter that no longer knows its key
    world = make_world(POOL, share_accounts={"other": "other-key"}, allowed_shares=["other/data"])
    world.secrets.versions["other-key"] = [("v0", "k")]
    world.groups.settings = world.groups.settings.model_copy(update={"share_accounts": {}})
    spec = {
        "containers": [{"name": "main", "image": "busybox", "mounts": [{"volume": "d", "path": "/d"}]}],
        "volumes": {"d": {"kind": "share", "share": "data", "account": "other"}},
    }
    accept_message(world.services, json.dumps({"id": "a", **spec}).encode(), "a", "application/json")
    record = world.record("a")
    assert record.status is Status.FAILED
    assert "not configured for mounts" in (record.reason or "")
    assert world.ledger.state(POOL).groups == 0


def test_many_field_errors_are_kept_bounded_in_the_record_and_its_event() -> None:
    world = make_world()
    bad = {"id": "bad", "containers": [{"name": f"C{n}", "image": "x", "cpu": 9} for n in range(120)]}
    accept_message(world.services, json.dumps(bad).encode(), "bad", "application/json")
    record = world.record("bad")
    assert record.status is Status.REJECTED
    assert len(record.errors) == 51
    assert record.errors[-1].message.startswith("and ")
    assert len(record.reason or "") < 5_000
    (event,) = world.events.published
    assert len(event.to_json()) < 20_000

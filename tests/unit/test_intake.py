"""Intake and launch over in-memory fakes: idempotency, rejection, admission and every launch error."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from dispatcher.domain.errors import CloudError
from dispatcher.domain.jobs import Status
from dispatcher.service.launch import Capacity, LaunchResult, Outcome, try_launch
from dispatcher.service.services import Services
from dispatcher.service.submit import Submitted, accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world


def body(**spec: object) -> bytes:
    return json.dumps({"image": "busybox", "command": ["true"], **spec}).encode()


def accept(services: Services, data: bytes, message_id: str | None) -> Submitted:
    return accept_message(services, data, message_id, "application/json")


def launch(world: World, job_id: str) -> LaunchResult:
    found = world.store.get(job_id)
    assert found is not None
    return try_launch(world.services, found, Capacity(world.services))


def test_a_valid_message_becomes_a_record_and_a_group() -> None:
    world = make_world()
    result = accept(world.services, body(id="job-1"), "msg-1")
    assert (result.job_id, result.launch and result.launch.outcome) == ("job-1", Outcome.LAUNCHED)
    assert world.store.status("job-1") is Status.RUNNING
    assert ("p1", "job-1-a1") in world.groups.created
    assert world.events.types() == ["queued", "started"]
    assert world.store.queue == {}


def test_the_message_id_is_the_job_id_when_the_spec_has_none() -> None:
    world = make_world()
    assert accept(world.services, body(), "3f2c1a9e-0000-4000-8000-000000000001").job_id == (
        "3f2c1a9e-0000-4000-8000-000000000001"
    )


def test_a_redelivered_message_creates_no_second_record_or_group() -> None:
    world = make_world()
    for _ in range(5):
        accept(world.services, body(id="job-1"), "msg-1")
    assert len(world.store.records) == 1
    assert world.groups.puts == 1


def test_concurrent_deliveries_of_one_message_give_one_record_and_one_group() -> None:
    world = make_world()
    threads = [threading.Thread(target=accept, args=(world.services, body(id="job-1"), "m")) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(world.store.records) == 1
    assert list(world.groups.created) == [("p1", "job-1-a1")]


def test_same_id_with_a_different_spec_is_a_recorded_conflict_and_the_original_is_untouched() -> None:
    world = make_world()
    accept(world.services, body(id="job-1"), "m1")
    before = world.store.get("job-1")
    result = accept(world.services, body(id="job-1", command=["false"]), "m2")
    assert result.status is Status.REJECTED
    assert world.store.get("job-1") == before
    assert [c.status for c in world.store.conflicts] == [Status.REJECTED]
    assert "different spec" in (world.store.conflicts[0].reason or "")


def test_an_invalid_spec_is_rejected_with_field_errors_and_returns_normally() -> None:
    world = make_world()
    result = accept(world.services, body(id="bad-1", restartPolicy="Always", cpu=1), "m")
    assert result.status is Status.REJECTED
    record = world.store.get("bad-1")
    assert record is not None
    assert {e.loc for e in record.value.errors} >= {"restartPolicy"}
    assert world.events.types() == ["rejected"]
    assert world.groups.puts == 0


def test_a_body_that_is_not_json_is_rejected_under_the_message_id() -> None:
    world = make_world()
    assert accept(world.services, b"\xff not json {", "msg-9").job_id == "msg-9"
    assert world.store.status("msg-9") is Status.REJECTED


def test_a_policy_violation_is_rejected_as_such() -> None:
    world = make_world(POOL, allowed_registries=["mcr.microsoft.com"])
    accept(world.services, body(id="hub-1"), "m")
    record = world.store.get("hub-1")
    assert record is not None
    assert record.value.status is Status.REJECTED
    assert "policy" in (record.value.reason or "")


def test_with_the_pool_full_the_job_stays_queued_and_intake_returns() -> None:
    world = make_world()
    for i in range(2):
        accept(world.services, body(id=f"fill-{i}"), "m")
    result = accept(world.services, body(id="waits"), "m")
    assert result.launch is not None
    assert result.launch.outcome is Outcome.NO_CAPACITY
    assert world.store.status("waits") is Status.QUEUED
    assert [e.job_id for e in world.store.queued(10)] == ["waits"]


def test_with_the_pool_full_intake_writes_once_reads_no_queue_and_the_tick_publishes_the_queued_event() -> None:
    """The cheap intake: with no room anywhere, the record (with its queue entry and outbox event, in one
    transaction) is all intake writes; it reads the pool's ledger row but not the queue, and leaves the ``queued``
    event to the reconciler's drain, which runs before any launch."""
    world = make_world()
    for i in range(2):
        accept(world.services, body(id=f"fill-{i}"), "m")
    events, queue_reads = len(world.events.published), world.store.reads["queued"]

    result = accept(world.services, body(id="waits"), "m")

    assert result.launch is not None
    assert result.launch.outcome is Outcome.NO_CAPACITY
    assert world.store.reads["queued"] == queue_reads  # no peek at the queue
    assert len(world.events.published) == events  # not yet published...
    assert [(e.job_id, e.kind) for e in world.store.pending_events()] == [("waits", "queued")]
    run_tick(world.services)
    assert ("waits", "queued") in [(e.job_id, e.kind) for e in world.events.published]  # ...the next run does
    assert world.store.pending_events() == []


def test_a_job_launched_at_intake_has_its_queued_event_published_before_its_launch() -> None:
    world = make_world()

    accept(world.services, body(id="first"), "m")

    assert [(e.job_id, e.kind) for e in world.events.published] == [("first", "queued"), ("first", "started")]


def test_a_new_arrival_does_not_overtake_an_older_waiting_job() -> None:
    world = make_world()
    for i in range(2):
        accept(world.services, body(id=f"fill-{i}"), "m")
    accept(world.services, body(id="older"), "m")  # the pool is full: it waits
    world.clock.advance(world.services.settings.reconcile_interval_seconds)  # intake reads the pool again
    held = world.ledger.find(POOL, "fill-0-a1")
    assert held is not None
    world.ledger.release(world.ledger.state(POOL), held, world.clock.now())  # room again, before the next run
    result = accept(world.services, body(id="newer"), "m")
    assert result.launch is not None
    assert result.launch.outcome is Outcome.IN_LINE
    assert [e.job_id for e in world.store.queued(10)] == ["older", "newer"]
    assert launch(world, "older").outcome is Outcome.LAUNCHED


def test_concurrent_launches_never_exceed_group_or_core_limits() -> None:
    pool = POOL.model_copy(update={"max_groups": 10, "max_cores": 3})
    world = make_world(pool)
    world.ledger.saturate(pool, world.clock.now() + dt.timedelta(seconds=60))  # intake launches none
    for i in range(12):
        accept(world.services, body(id=f"j{i}"), "m")
    world.clock.advance(61)
    outcomes: list[Outcome] = []
    threads = [
        threading.Thread(target=lambda job=f"j{i}": outcomes.append(launch(world, job).outcome)) for i in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(world.groups.created) == 3
    assert outcomes.count(Outcome.LAUNCHED) == 3
    assert world.ledger.state(pool).cores <= 3


def test_a_throttled_create_requeues_the_job_with_the_error_noted() -> None:
    world = make_world()
    world.groups.faults.add(
        "create", CloudError("429 after retries", code="TooManyRequests", status=429, transient=True)
    )
    result = accept(world.services, body(id="job-1"), "m")
    assert result.launch is not None
    assert result.launch.outcome is Outcome.REQUEUED
    record = world.record("job-1")
    assert (record.status, record.attempts) == (Status.QUEUED, [])
    assert "429" in (record.last_error or "")
    assert world.ledger.state(POOL).groups == 0
    assert launch(world, "job-1").outcome is Outcome.LAUNCHED


def test_a_create_of_unknown_outcome_keeps_its_claim_and_reservation_for_the_reconciler_to_read() -> None:
    # Given a create that ARM answers with a 503 after applying it (or not: nobody knows)
    world = make_world()
    world.groups.faults.add("create", CloudError("503", code="ServiceUnavailable", status=503, transient=True))
    result = accept(world.services, body(id="job-1"), "m")
    # Then nothing is released or given back: a second launcher must not take the slot or reuse the name
    assert result.launch is not None
    assert result.launch.outcome is Outcome.IN_DOUBT
    record = world.record("job-1")
    assert record.status is Status.LAUNCHING
    assert record.current is not None
    assert record.current.launched_at is None
    assert "unknown" in (record.last_error or "")
    assert world.ledger.find(POOL, "job-1-a1") is not None
    assert world.ledger.state(POOL).groups == 1


def test_quota_reached_marks_the_pool_saturated_and_requeues() -> None:
    world = make_world()
    world.groups.faults.add(
        "create", CloudError("quota", code="ContainerGroupQuotaReached", status=409, transient=True)
    )
    accept(world.services, body(id="job-1"), "m")
    assert world.store.status("job-1") is Status.QUEUED
    assert launch(world, "job-1").outcome is Outcome.NO_CAPACITY
    world.clock.advance(world.services.settings.saturation_cooldown_seconds + 1)
    assert launch(world, "job-1").outcome is Outcome.LAUNCHED


def test_an_aci_400_fails_the_job_without_retry() -> None:
    world = make_world()
    world.groups.faults.add("create", CloudError("InvalidImage: bad", code="InvalidImage", status=400, transient=False))
    accept(world.services, body(id="job-1", retries=3), "m")
    record = world.store.get("job-1")
    assert record is not None
    assert record.value.status is Status.FAILED
    assert "InvalidImage" in (record.value.reason or "")
    assert world.ledger.state(POOL).groups == 0
    assert world.events.types() == ["queued", "failed"]


def test_a_missing_key_vault_secret_fails_the_job_naming_the_reference() -> None:
    world = make_world()
    spec = {"id": "job-1", "containers": [{"name": "a", "image": "busybox", "secretEnv": {"T": "no-such"}}]}
    accept(world.services, json.dumps(spec).encode(), "m")
    record = world.store.get("job-1")
    assert record is not None
    assert record.value.status is Status.FAILED
    assert "'no-such'" in (record.value.reason or "")


def test_a_job_no_pool_could_ever_run_fails_at_once() -> None:
    world = make_world()
    accept(world.services, body(id="job-1", placement={"region": "mars"}), "m")
    record = world.store.get("job-1")
    assert record is not None
    assert record.value.status is Status.FAILED
    assert "mars" in (record.value.reason or "")


def test_a_workspace_share_is_created_for_jobs_that_ask_for_one() -> None:
    world = make_world()
    spec = {
        "id": "job-1",
        "containers": [{"name": "a", "image": "busybox", "mounts": [{"volume": "out", "path": "/out"}]}],
        "volumes": {"out": {"kind": "workspace"}},
    }
    accept(world.services, json.dumps(spec).encode(), "m")
    assert set(world.shares.shares) == {"ws-job-1"}


@pytest.mark.parametrize("state", ["Creating", "Succeeded"])
def test_the_record_says_launching_until_provisioning_succeeds(state: str) -> None:
    world = make_world()
    world.groups.provisioning_state = state
    accept(world.services, body(id="job-1"), "m")
    expected = Status.RUNNING if state == "Succeeded" else Status.LAUNCHING
    assert world.store.status("job-1") is expected


def test_no_secret_value_reaches_the_record_or_events() -> None:
    world = make_world()
    spec = {"id": "job-1", "containers": [{"name": "a", "image": "busybox", "secretEnv": {"T": "api-token"}}]}
    accept(world.services, json.dumps(spec).encode(), "m")
    record = world.store.get("job-1")
    assert record is not None
    assert "tok" not in record.value.model_dump_json().replace("api-token", "")
    assert all("tok" not in e.to_json().replace("api-token", "") for e in world.events.published)


def test_a_create_applied_but_answered_as_a_failure_is_adopted_by_reading_and_never_doubled() -> None:
    # Given a pool of one group, and a create that ARM applies and then answers with a 503
    world = make_world(POOL.model_copy(update={"max_groups": 1}))
    world.groups.applied_then_failed = 1
    assert accept(world.services, body(id="a"), "a").launch.outcome is Outcome.IN_DOUBT  # type: ignore[union-attr]
    accept(world.services, body(id="b"), "b")
    # When the reconciler runs past the launch grace
    world.clock.advance(world.services.settings.launch_grace_seconds + 1)
    run_tick(world.services)
    # Then it read the group, found it, and adopted it: one PUT, one group, and no second job admitted
    assert world.groups.puts == 1
    assert list(world.groups.created) == [("p1", "a-a1")]
    assert world.record("a").current.launched_at is not None  # type: ignore[union-attr]
    assert world.store.status("b") is Status.QUEUED
    assert world.ledger.state(POOL).groups == 1


def test_a_create_that_failed_before_arm_applied_it_is_made_once_the_reconciler_reads_it_absent() -> None:
    world = make_world()
    world.groups.faults.add("create", CloudError("connection reset", transient=True))
    accept(world.services, body(id="a"), "a")
    world.clock.advance(world.services.settings.launch_grace_seconds + 1)
    run_tick(world.services)
    assert world.groups.puts == 2
    assert list(world.groups.created) == [("p1", "a-a1")]
    assert world.store.status("a") is Status.RUNNING


def test_a_label_with_a_lone_surrogate_is_rejected_naming_it() -> None:
    # JSON's "\ud800" is no Unicode text: Table storage and Service Bus would refuse the record later, forever
    world = make_world()
    body = b'{"id": "s-1", "image": "busybox", "labels": {"team": "\\ud800"}}'
    result = accept_message(world.services, body, "m-s-1", "application/json")
    assert result.status is Status.REJECTED
    assert [e.loc for e in result.errors] == ["labels.team"]
    assert world.groups.puts == 0


def test_in_a_burst_intake_sees_no_room_from_the_states_it_read_within_an_interval() -> None:
    world = make_world()
    for i in range(2):
        accept(world.services, body(id=f"fill-{i}"), "m")
    accept(world.services, body(id="first-to-wait"), "m")
    world.ledger.reads.clear()
    for i in range(5):  # the same burst: no ledger read per job
        result = accept(world.services, body(id=f"waits-{i}"), "m")
        assert result.launch is not None
        assert result.launch.outcome is Outcome.NO_CAPACITY
    assert world.ledger.reads.get("state", 0) == 0
    world.clock.advance(world.services.settings.reconcile_interval_seconds)
    accept(world.services, body(id="later"), "m")
    assert world.ledger.reads.get("state", 0) == 1  # an interval on, the pool is read again


def test_a_run_that_frees_room_is_what_intake_sees_next() -> None:
    world = make_world()
    for i in range(2):
        accept(world.services, body(id=f"fill-{i}"), "m")
    accept(world.services, body(id="waits"), "m")  # no room, as intake has just read
    world.groups.finish(POOL, "fill-0-a1", 0, at=world.clock.now())
    world.groups.finish(POOL, "fill-1-a1", 0, at=world.clock.now())
    run_tick(world.services)  # frees both, launches the waiting job into one
    result = accept(world.services, body(id="next"), "m")  # the run's states show room: read again, launched
    assert result.launch is not None
    assert result.launch.outcome is Outcome.LAUNCHED

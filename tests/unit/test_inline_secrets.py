"""Inline secret values: stored in the job-secrets vault at intake, named by reference in the record, resolved at
every launch, never at rest anywhere else, and deleted with the job."""

from __future__ import annotations

import json

import pytest

from dispatcher.domain.jobs import Status
from dispatcher.entrypoints import http as api
from dispatcher.service.purge import purge_job
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world
from tests.fixtures.callers import ADMIN_CALLER

VALUE = "inline-s3cr3t-7f2a"


def spec(job_id: str, **extra: object) -> dict[str, object]:
    return {
        "id": job_id,
        "containers": [{"name": "main", "image": "busybox", "secretEnv": {"TOKEN": {"value": VALUE}}}],
        "volumes": {},
        **extra,
    }


def world_allowing_inline() -> World:
    return make_world(POOL, allow_inline_secrets=True)


def everything_at_rest(world: World) -> str:
    """Every record, conflict, pending event, published event, queued message and stored log, as text."""
    texts = [r.model_dump_json() for r, _ in world.store.records.values()]
    texts += [c.model_dump_json() for c in world.store.conflicts]
    texts += [e.to_json() for e in world.store.pending_events() + world.events.published]
    texts += [body.decode(errors="replace") for body, _, _ in world.queue.sent]
    texts += list(world.logs.blobs.values())
    return "\n".join(texts)


def test_an_inline_value_reaches_the_container_and_rests_only_in_the_job_vault() -> None:
    world = world_allowing_inline()
    accept_message(world.services, json.dumps(spec("job-1")).encode(), "m", "application/json")
    assert world.groups.environment(POOL, "job-1-a1")["TOKEN"] == VALUE  # not "**********"
    record = world.record("job-1")
    assert len(record.owned_secrets) == 1
    assert record.owned_secrets[0].startswith("inline-job-1-")
    ref = record.job_spec.containers[0].secret_env["TOKEN"]
    assert (ref.secret, ref.value is None, ref.version is not None) == (record.owned_secrets[0], True, True)
    assert world.job_secrets.get(f"{ref.secret}/{ref.version}") == VALUE
    assert VALUE not in world.secrets.values()  # never in the dispatcher's own vault
    assert VALUE not in everything_at_rest(world)


def test_a_retry_and_a_scheduler_launch_see_the_real_value_too() -> None:
    # Given a full pool, so the job is launched later by the scheduler, with one retry
    world = make_world(POOL.model_copy(update={"max_groups": 1}), allow_inline_secrets=True)
    accept_message(world.services, json.dumps({"id": "filler", "image": "busybox"}).encode(), "f", "application/json")
    body = json.dumps(spec("job-1", retries={"count": 1, "backoffSeconds": 0})).encode()
    accept_message(world.services, body, "m", "application/json")
    assert world.store.status("job-1") is Status.QUEUED
    world.groups.finish(POOL, "filler-a1", 0, at=world.clock.now())
    run_tick(world.services)
    assert world.groups.environment(POOL, "job-1-a1")["TOKEN"] == VALUE
    # When the first attempt fails, the retry's container sees it as well
    world.groups.finish(POOL, "job-1-a1", 1, at=world.clock.now())
    run_tick(world.services)
    world.clock.advance(1)
    run_tick(world.services)
    assert world.groups.environment(POOL, "job-1-a2")["TOKEN"] == VALUE
    assert VALUE not in everything_at_rest(world)


def test_an_http_submission_enqueues_a_reference_never_the_value_and_answers_without_it() -> None:
    world = world_allowing_inline()
    request = api.Request(
        caller=ADMIN_CALLER, body=json.dumps(spec("job-1")).encode(), headers={"content-type": "application/json"}
    )
    accepted = api.submit(world.services, request)
    assert accepted.status == 202
    ((message, message_id, content_type),) = world.queue.sent
    assert (message_id, content_type) == ("job-1", "application/vnd.aci-dispatcher.job-ref+json")
    assert json.loads(message) == {"jobRef": "job-1"}
    shown = api.get_job(world.services, "job-1", api.Request(caller=ADMIN_CALLER)).body.decode()
    assert VALUE not in shown
    assert VALUE not in everything_at_rest(world)


def test_the_vault_copy_is_deleted_when_the_job_is_purged() -> None:
    world = world_allowing_inline()
    accept_message(world.services, json.dumps(spec("job-1")).encode(), "m", "application/json")
    world.groups.finish(POOL, "job-1-a1", 0, at=world.clock.now())
    run_tick(world.services)
    names = world.record("job-1").owned_secrets
    assert purge_job(world.services, "job-1")
    assert set(names) <= world.job_secrets.deleted
    assert VALUE not in world.job_secrets.values()


def test_a_crash_before_the_values_are_stored_is_finished_by_the_redelivery() -> None:
    # Given an intake that recorded the job and then died before writing its values to the vault
    world = world_allowing_inline()
    world.job_secrets.faults.add("set", RuntimeError("the process died here"))
    body = json.dumps(spec("job-1")).encode()
    with pytest.raises(RuntimeError):  # raised before the job is launchable: the message is redelivered
        accept_message(world.services, body, "m", "application/json")
    record = world.record("job-1")
    assert record.secrets_pending
    assert world.store.queued(10) == []  # not launchable without its values
    # When the message is delivered again, the values are stored under the names reserved first, and it runs
    again = accept_message(world.services, body, "m", "application/json")
    assert again.outcome == "duplicate"
    assert world.groups.environment(POOL, "job-1-a1")["TOKEN"] == VALUE
    assert world.record("job-1").owned_secrets == record.owned_secrets


def test_inline_values_stay_refused_unless_policy_allows_them() -> None:
    world = make_world()
    accept_message(world.services, json.dumps(spec("job-1")).encode(), "m", "application/json")
    record = world.record("job-1")
    assert record.status is Status.REJECTED
    assert [e.loc for e in record.errors] == ["containers[0].secretEnv.TOKEN"]
    assert world.job_secrets.values() == ["tok"]

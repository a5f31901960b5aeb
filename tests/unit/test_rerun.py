"""Re-runs over fakes: overrides, the links both ways, idempotency keys, inline values, bad overrides."""

from __future__ import annotations

import json

import pytest

from dispatcher.domain.errors import InvalidJob
from dispatcher.domain.jobs import Status
from dispatcher.domain.rerun import Overrides, parse_overrides
from dispatcher.entrypoints import http_runs
from dispatcher.entrypoints.http import Request
from dispatcher.service.purge import purge_job
from dispatcher.service.rerun import JobNotFound, rerun
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world
from tests.fixtures.callers import ADMIN_CALLER

SPEC = {
    "id": "nightly",
    "containers": [
        {"name": "main", "image": "busybox", "command": ["sh", "-c", "exit 3"], "env": {"A": "1", "B": "2"}},
        {"name": "side", "image": "busybox", "command": ["true"]},
    ],
    "timeoutSeconds": 600,
    "labels": {"project": "a"},
}


def failed_job(world: World, spec: dict[str, object] | None = None) -> None:
    body = spec or SPEC
    accept_message(world.services, json.dumps(body).encode(), str(body["id"]), "application/json")
    codes = (3, 0) if spec is None else (3,)
    world.groups.finish(POOL, f"{body['id']}-a1", *codes, at=world.clock.now())
    run_tick(world.services)
    assert world.record(str(body["id"])).status is Status.FAILED


def test_a_rerun_applies_its_overrides_to_the_first_container_and_links_both_ways() -> None:
    world = make_world()
    failed_job(world)
    overrides = parse_overrides(
        {
            "env": {"B": "3", "C": "4"},
            "command": ["true"],
            "image": "alpine",
            "cpu": 0.5,
            "memoryGB": 1,
            "timeoutSeconds": 60,
            "labels": {"try": "2"},
        }
    )
    submitted = rerun(world.services, "nightly", overrides, "key-1")
    new = world.record(submitted.job_id)
    main, side = new.job_spec.containers
    assert (main.image, main.command, main.cpu, main.memory_gb) == ("alpine", ["true"], 0.5, 1)
    assert main.env == {"A": "1", "B": "3", "C": "4"}
    assert side.command == ["true"]
    assert new.job_spec.timeout_seconds == 60
    assert new.labels == {"project": "a", "try": "2"}
    assert new.rerun_of == "nightly"
    assert world.record("nightly").reruns == [submitted.job_id]
    queued = [e for e in world.events.published if e.kind == "queued" and e.job_id == submitted.job_id]
    assert queued[0].data["rerunOf"] == "nightly"


def test_the_same_idempotency_key_makes_one_job_and_another_key_a_second() -> None:
    world = make_world()
    failed_job(world)
    first = rerun(world.services, "nightly", Overrides(), "key-1")
    again = rerun(world.services, "nightly", Overrides(), "key-1")
    other = rerun(world.services, "nightly", Overrides(), None)
    assert first.job_id == again.job_id != other.job_id
    assert again.outcome == "duplicate"
    assert world.record("nightly").reruns == [first.job_id, other.job_id]


def test_inline_values_are_stored_again_for_the_rerun_and_survive_the_old_jobs_purge() -> None:
    world = make_world(allow_inline_secrets=True)
    spec = {
        "id": "old",
        "containers": [{"name": "main", "image": "busybox", "secretEnv": {"TOKEN": {"value": "s3cret"}}}],
    }
    failed_job(world, spec)
    submitted = rerun(world.services, "old", Overrides(), "k")
    old_name = world.record("old").job_spec.containers[0].secret_env["TOKEN"].secret
    new_ref = world.record(submitted.job_id).job_spec.containers[0].secret_env["TOKEN"]
    assert new_ref.secret != old_name
    assert new_ref.secret is not None
    assert world.job_secrets.get(new_ref.key) == "s3cret"
    assert "s3cret" not in world.record(submitted.job_id).model_dump_json()
    assert purge_job(world.services, "old")
    assert world.job_secrets.get(new_ref.key) == "s3cret"


def test_an_override_that_breaks_the_spec_is_refused_naming_the_field() -> None:
    world = make_world()
    failed_job(world)
    with pytest.raises(InvalidJob) as caught:
        rerun(world.services, "nightly", parse_overrides({"cpu": 9}), None)
    assert [e.loc for e in caught.value.errors] == ["containers[0].cpu"]
    with pytest.raises(InvalidJob) as caught:
        parse_overrides({"volumes": {}})
    assert [e.loc for e in caught.value.errors] == ["volumes"]
    with pytest.raises(InvalidJob) as caught:
        rerun(world.services, "nightly", parse_overrides({"onlyFailedTasks": True}), None)
    assert [e.loc for e in caught.value.errors] == ["onlyFailedTasks"]
    with pytest.raises(JobNotFound):
        rerun(world.services, "nope", Overrides(), None)


def test_the_api_answers_202_404_and_400() -> None:
    world = make_world()
    failed_job(world)
    headers = {"content-type": "application/json", "idempotency-key": "abc"}
    response = http_runs.rerun(
        world.services, "nightly", Request(b'{"env": {"X": "1"}}', caller=ADMIN_CALLER, headers=headers)
    )
    assert response.status == 202
    assert json.loads(response.body)["rerunOf"] == "nightly"
    again = http_runs.rerun(
        world.services, "nightly", Request(b'{"env": {"X": "1"}}', caller=ADMIN_CALLER, headers=headers)
    )
    assert json.loads(again.body)["id"] == json.loads(response.body)["id"]
    assert http_runs.rerun(world.services, "nope", Request(caller=ADMIN_CALLER)).status == 404
    assert http_runs.rerun(world.services, "nightly", Request(b'{"cpu": "lots"}', caller=ADMIN_CALLER)).status == 400
    assert http_runs.rerun(world.services, "nightly", Request(b"[1]", caller=ADMIN_CALLER)).status == 400
    assert (
        http_runs.rerun(
            world.services, "nightly", Request(caller=ADMIN_CALLER, headers={"idempotency-key": "\x00"})
        ).status
        == 400
    )
    assert world.queue.sent  # the new job was enqueued for a prompt first launch

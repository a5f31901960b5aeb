"""The HTTP API's behaviour over fakes: every status it answers, idempotency, cancellation, logs, outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.domain.jobs import Status
from dispatcher.domain.spec import MAX_SPEC_BYTES
from dispatcher.entrypoints import http as api
from dispatcher.entrypoints.openapi import document
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world
from tests.fixtures.callers import ADMIN_CALLER

JSON = {"content-type": "application/json"}


def post(world: World, spec: dict[str, Any] | str, headers: dict[str, str] | None = None) -> api.Response:
    body = spec.encode() if isinstance(spec, str) else json.dumps(spec).encode()
    return api.submit(world.services, api.Request(caller=ADMIN_CALLER, body=body, headers=headers or JSON))


def body(response: api.Response) -> dict[str, Any]:
    return json.loads(response.body)


def test_post_records_enqueues_and_answers_202_with_a_location() -> None:
    world = make_world()
    response = post(world, {"id": "job-1", "image": "busybox"})
    assert response.status == 202
    assert response.headers["Location"] == "/api/jobs/job-1"
    assert body(response) == {
        "id": "job-1",
        "status": "Queued",
        "location": "/api/jobs/job-1",
        "duplicate": False,
        "updatedAt": "2026-11-22T12:00:00Z",
    }
    assert [m[1] for m in world.queue.sent] == ["job-1"]
    assert world.store.status("job-1") is Status.QUEUED
    assert [e.job_id for e in world.store.queued(5)] == ["job-1"]


def test_post_without_an_id_gets_a_generated_one() -> None:
    world = make_world()
    job_id = body(post(world, {"image": "busybox"}))["id"]
    assert world.queue.sent[0][1] == job_id
    assert world.store.get(job_id) is not None


def test_yaml_bodies_are_accepted() -> None:
    world = make_world()
    response = post(world, "id: y-1\nimage: busybox\n", {"content-type": "application/yaml"})
    assert response.status == 202


def test_an_invalid_spec_is_400_problem_json_with_every_field_error() -> None:
    world = make_world()
    response = post(world, {"containers": [{"name": "A", "image": "x", "cpu": 9}], "restartPolicy": "Always"})
    assert (response.status, response.content_type) == (400, "application/problem+json")
    problem = body(response)
    assert problem["title"] == "Invalid job spec"
    assert {e["loc"] for e in problem["errors"]} >= {"containers[0].name", "containers[0].cpu", "restartPolicy"}
    assert world.queue.sent == []


def test_a_policy_violation_is_400_with_its_own_title() -> None:
    world = make_world(POOL, allowed_registries=["mcr.microsoft.com"])
    problem = body(post(world, {"image": "busybox"}))
    assert problem["title"] == "Policy violation"
    assert problem["errors"][0]["loc"] == "containers[0].image"


def test_too_large_is_413_and_unknown_types_are_415() -> None:
    world = make_world()
    assert post(world, "x" * (MAX_SPEC_BYTES + 1)).status == 413
    assert post(world, {"image": "busybox"}, {"content-type": "text/csv"}).status == 415


def test_the_same_id_and_spec_is_the_same_job_and_a_different_spec_is_409() -> None:
    world = make_world()
    assert post(world, {"id": "job-1", "image": "busybox"}).status == 202
    assert post(world, {"id": "job-1", "image": "busybox"}).status == 202
    assert len(world.store.records) == 1
    conflict = post(world, {"id": "job-1", "image": "busybox:2"})
    assert conflict.status == 409
    assert body(conflict)["title"] == "Job id in use"


def test_a_job_is_durable_even_when_the_queue_is_down() -> None:
    world = make_world()
    world.queue.down = True
    assert post(world, {"id": "job-1", "image": "busybox"}).status == 202
    run_tick(world.services)
    assert world.store.status("job-1") is Status.RUNNING


def test_a_submitted_job_shows_as_queued_before_intake_sees_it() -> None:
    world = make_world()
    post(world, {"id": "job-1", "image": "busybox"})
    job = body(api.get_job(world.services, "job-1", api.Request(caller=ADMIN_CALLER)))
    assert (job["status"], job["links"]["self"]) == ("Queued", "/api/jobs/job-1")


def test_an_unknown_job_is_404_problem() -> None:
    response = api.get_job(make_world().services, "nope", api.Request(caller=ADMIN_CALLER))
    assert (response.status, body(response)["title"]) == (404, "Job not found")


def test_list_filters_by_status_and_label_and_pages() -> None:
    world = make_world()
    for i in range(5):
        post(world, {"id": f"j{i}", "image": "busybox", "labels": {"project": "a" if i % 2 else "b"}})
        world.clock.advance(1)
    api.cancel(world.services, "j0", api.Request(caller=ADMIN_CALLER))
    page = body(api.list_jobs(world.services, api.Request(caller=ADMIN_CALLER, query={"status": "Cancelled"})))
    assert [j["id"] for j in page["items"]] == ["j0"]
    page = body(api.list_jobs(world.services, api.Request(caller=ADMIN_CALLER, query={"label": "project=a"})))
    assert [j["id"] for j in page["items"]] == ["j3", "j1"]  # newest first
    first = body(api.list_jobs(world.services, api.Request(caller=ADMIN_CALLER, query={"limit": "2"})))
    second = body(
        api.list_jobs(
            world.services,
            api.Request(caller=ADMIN_CALLER, query={"limit": "2", "continuation": first["continuationToken"]}),
        )
    )
    assert [j["id"] for j in first["items"] + second["items"]] == ["j4", "j3", "j2", "j1"]
    oldest = body(
        api.list_jobs(world.services, api.Request(caller=ADMIN_CALLER, query={"limit": "1", "order": "oldest"}))
    )
    assert [j["id"] for j in oldest["items"]] == ["j0"]


@pytest.mark.parametrize("query", [{"status": "Sleeping"}, {"limit": "0"}, {"since": "yesterday"}, {"label": "x"}])
def test_a_bad_list_query_is_400_naming_the_parameter(query: dict[str, str]) -> None:
    response = api.list_jobs(make_world().services, api.Request(caller=ADMIN_CALLER, query=query))
    assert response.status == 400
    assert body(response)["errors"][0]["loc"] == next(iter(query))


def test_cancelling_a_queued_job_cancels_at_once_and_repeats_are_safe() -> None:
    world = make_world()
    post(world, {"id": "job-1", "image": "busybox"})
    assert api.cancel(world.services, "job-1", api.Request(caller=ADMIN_CALLER)).status == 202
    assert world.store.status("job-1") is Status.CANCELLED
    assert world.store.queued(5) == []
    assert api.cancel(world.services, "job-1", api.Request(caller=ADMIN_CALLER)).status == 202
    assert world.events.types().count("cancelled") == 1


def test_cancelling_a_running_job_asks_the_reconciler() -> None:
    world = make_world()
    post(world, {"id": "job-1", "image": "busybox"})
    run_tick(world.services)
    job = body(api.cancel(world.services, "job-1", api.Request(caller=ADMIN_CALLER)))
    assert (job["status"], job["cancelRequested"]) == ("Running", True)
    run_tick(world.services)
    assert world.store.status("job-1") is Status.CANCELLED
    assert api.cancel(make_world().services, "nope", api.Request(caller=ADMIN_CALLER)).status == 404


def test_logs_are_live_while_running_and_stored_afterwards() -> None:
    world = make_world()
    post(world, {"id": "job-1", "image": "busybox"})
    run_tick(world.services)
    world.groups.log_text[("p1", "job-1-a1", "main")] = "one\ntwo\nthree\n"
    live = api.logs(world.services, "job-1", api.Request(caller=ADMIN_CALLER, query={"tail": "2"}))
    assert live.body == b"two\nthree\n"
    world.groups.finish(POOL, "job-1-a1", 0, at=world.clock.now())
    run_tick(world.services)
    world.groups.log_text.clear()
    stored = api.logs(world.services, "job-1", api.Request(caller=ADMIN_CALLER, query={"container": "main"}))
    assert stored.body == b"one\ntwo\nthree\n"
    assert (
        api.logs(world.services, "job-1", api.Request(caller=ADMIN_CALLER, query={"container": "nope"})).status == 404
    )
    assert api.logs(world.services, "job-1", api.Request(caller=ADMIN_CALLER, query={"tail": "-1"})).status == 400


def test_outputs_are_listed_and_streamed_and_traversal_is_refused() -> None:
    world = make_world()
    spec = {
        "id": "job-1",
        "containers": [{"name": "main", "image": "busybox", "mounts": [{"volume": "o", "path": "/o"}]}],
        "volumes": {"o": {"kind": "workspace"}},
    }
    post(world, spec)
    run_tick(world.services)
    world.shares.put("ws-job-1", "report.txt", b"done")
    world.shares.put("ws-job-1", "sub/data.csv", b"a,b")
    root = body(api.outputs(world.services, "job-1", api.Request(caller=ADMIN_CALLER)))
    assert [(e["path"], e["kind"], e["size"]) for e in root["entries"]] == [
        ("report.txt", "file", 4),
        ("sub", "directory", 0),
    ]
    sub = body(api.outputs(world.services, "job-1", api.Request(caller=ADMIN_CALLER, query={"path": "sub"})))
    assert [e["path"] for e in sub["entries"]] == ["sub/data.csv"]
    assert api.outputs(world.services, "job-1", api.Request(caller=ADMIN_CALLER, query={"path": "nope"})).status == 404
    assert api.output_file(world.services, "job-1", "sub/data.csv", api.Request(caller=ADMIN_CALLER)).body == b"a,b"
    for bad in ("../secrets", "sub/../../x", "/etc/passwd", "a\\b", ""):
        assert api.output_file(world.services, "job-1", bad, api.Request(caller=ADMIN_CALLER)).status == 400
    assert api.output_file(world.services, "job-1", "missing.txt", api.Request(caller=ADMIN_CALLER)).status == 404


def test_outputs_are_listed_a_page_at_a_time() -> None:
    world = make_world()
    spec = {
        "id": "job-1",
        "containers": [{"name": "main", "image": "busybox", "mounts": [{"volume": "o", "path": "/o"}]}],
        "volumes": {"o": {"kind": "workspace"}},
    }
    post(world, spec)
    for n in range(5):
        world.shares.put("ws-job-1", f"f{n}.txt")
    seen: list[str] = []
    query = {"limit": "2"}
    while True:
        page = body(api.outputs(world.services, "job-1", api.Request(caller=ADMIN_CALLER, query=query)))
        seen += [e["path"] for e in page["entries"]]
        if not page["continuationToken"]:
            break
        query = {"limit": "2", "continuation": page["continuationToken"]}
    assert seen == [f"f{n}.txt" for n in range(5)]


def test_health_reports_each_dependency() -> None:
    world = make_world()
    healthy = api.health(world.services)
    assert healthy.status == 200
    assert set(body(healthy)["checks"]) == {"store", "serviceBus", "arm:p1"}
    world.queue.down = True
    degraded = api.health(world.services)
    assert (degraded.status, body(degraded)["checks"]["serviceBus"]["status"]) == (503, "error")


def test_unexpected_failures_are_a_500_problem_without_internals() -> None:
    def boom() -> api.Response:
        raise RuntimeError("connection string with AccountKey=secret")

    response = api.safely(boom)
    assert response.status == 500
    assert b"AccountKey" not in response.body


def test_the_openapi_document_is_3_1_and_references_the_models() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert {"JobOut", "JobList", "Problem", "JobSpec", "Health"} <= set(doc["components"]["schemas"])
    assert doc["paths"]["/jobs/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobOut"
    }


def test_an_http_submission_is_recorded_once_and_its_message_is_a_reference_intake_knows() -> None:
    # Given a job submitted over HTTP
    world = make_world()
    assert post(world, {"id": "job-1", "image": "busybox"}).status == 202
    ((message, message_id, content_type),) = world.queue.sent
    # Then the queue carries a reference, not the spec
    assert json.loads(message) == {"jobRef": "job-1"}
    # And intake, given that message, launches the recorded job: it is neither re-validated nor a duplicate
    result = accept_message(world.services, message, message_id, content_type)
    assert (result.outcome, result.duplicate) == ("reference", False)
    assert result.launch is not None
    assert result.launch.outcome.value == "launched"
    assert world.events.types() == ["queued", "started"]
    assert len(world.store.records) == 1


def test_every_attempts_harvested_log_is_served() -> None:
    from dispatcher.service.submit import accept_message
    from dispatcher.service.tick import run_tick
    from tests.fakes import POOL

    world = make_world()
    spec = {"id": "twice", "image": "busybox", "retries": {"count": 1, "backoffSeconds": 0}}
    accept_message(world.services, json.dumps(spec).encode(), "twice", "application/json")
    for attempt in (1, 2):
        world.groups.log_text[("p1", f"twice-a{attempt}", "main")] = f"attempt {attempt} says hi\n"
        world.groups.finish(POOL, f"twice-a{attempt}", 3, at=world.clock.now())
        run_tick(world.services)
        run_tick(world.services)
    assert world.record("twice").status.value == "Failed"
    first = api.logs(world.services, "twice", api.Request(caller=ADMIN_CALLER, query={"attempt": "1"}))
    assert first.body == b"attempt 1 says hi\n"
    assert api.logs(world.services, "twice", api.Request(caller=ADMIN_CALLER)).body == b"attempt 2 says hi\n"
    assert api.logs(world.services, "twice", api.Request(caller=ADMIN_CALLER, query={"attempt": "3"})).status == 404

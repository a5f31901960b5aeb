"""Telemetry over fakes, with the OpenTelemetry SDK's in-memory exporter and reader standing in for Azure Monitor:
one trace from submission to completion across invocations, the reconciler's metrics, and no secret in a span."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dispatcher.domain.errors import CloudError
from dispatcher.entrypoints import http as api
from dispatcher.service import telemetry
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world
from tests.fixtures.callers import ADMIN_CALLER

JSON_HEADERS = {"content-type": "application/json"}
SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def providers() -> None:
    """The process's providers, set once (OpenTelemetry allows no second): what the Functions worker does with the
    Azure Monitor distro, with in-memory exporters."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(autouse=True)
def fresh() -> None:
    SPANS.clear()


def spans(name: str) -> list[ReadableSpan]:
    return [s for s in SPANS.get_finished_spans() if s.name == name]


def only(name: str) -> ReadableSpan:
    (found,) = spans(name)
    return found


def metric_points(name: str) -> list[Any]:
    data = READER.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def submit_over_http(world: World, spec: dict[str, Any]) -> dict[str, str]:
    """POST /api/jobs, and the properties of the message it enqueued."""
    response = api.submit(
        world.services,
        api.Request(caller=ADMIN_CALLER, body=json.dumps(spec).encode(), headers={"content-type": "application/json"}),
    )
    assert response.status == 202, response.body
    return world.queue.properties[-1]


def test_one_trace_follows_a_job_from_http_submit_through_service_bus_intake_launch_and_finish() -> None:
    world = make_world()
    properties = submit_over_http(world, {"id": "traced", "image": "busybox"})
    body, message_id, content_type = world.queue.sent[-1]
    # The intake is another invocation: the trace goes on only through the message
    accept_message(world.services, body, message_id, content_type, traceparent=properties["traceparent"])
    world.groups.finish(POOL, "traced-a1", 0, at=world.clock.now())
    run_tick(world.services)

    submit, intake, launch, finish = (
        only(n) for n in ("dispatcher.submit", "dispatcher.intake", "dispatcher.launch", "dispatcher.Finish")
    )
    trace_id = submit.context.trace_id
    assert {s.context.trace_id for s in (submit, intake, launch, finish)} == {trace_id}
    assert [s.parent.span_id if s.parent else None for s in (intake, launch, finish)] == [submit.context.span_id] * 3
    assert world.record("traced").trace == properties["traceparent"]
    assert (launch.attributes or {}).get("dispatcher.outcome") == "launched"
    assert (finish.attributes or {}).get("dispatcher.job_id") == "traced"
    # The reconciler run is a trace of its own, which the job's spans are not part of
    assert only("dispatcher.reconcile").context.trace_id != trace_id


def test_a_job_sent_straight_to_service_bus_starts_its_trace_at_intake() -> None:
    world = make_world()
    accept_message(world.services, b'{"id": "bus-only", "image": "busybox"}', "bus-only", "application/json")
    intake = only("dispatcher.intake")
    assert intake.parent is None
    assert world.record("bus-only").trace is not None
    assert world.record("bus-only").trace == telemetry.format_traceparent(intake.context)
    assert only("dispatcher.launch").context.trace_id == intake.context.trace_id


def test_a_run_records_queue_depth_jobs_by_status_pool_use_dead_letters_and_its_duration() -> None:
    world = make_world()  # a pool of 2 groups and 4 cores
    for n in range(5):
        accept_message(
            world.services,
            json.dumps({"id": f"j{n}", "image": "busybox", "cpu": 1}).encode(),
            f"j{n}",
            "application/json",
        )
    world.queue.dead_letters = 3
    run_tick(world.services)
    assert metric_points(telemetry.QUEUE_DEPTH)[-1].value == 3
    assert metric_points(telemetry.DEAD_LETTERS)[-1].value == 3
    by_status = {p.attributes["status"]: p.value for p in metric_points(telemetry.JOBS)}
    assert by_status["Queued"] == 3
    assert by_status["Launching"] + by_status["Running"] == 2
    use = {(p.attributes["pool"], p.attributes["resource"]): p.value for p in metric_points(telemetry.POOL_UTILIZATION)}
    assert use[("p1", "groups")] == 1.0
    assert use[("p1", "cores")] == 0.5
    (duration,) = metric_points(telemetry.RECONCILE_DURATION)
    assert duration.count >= 1
    assert sum(p.value for p in metric_points(telemetry.RECONCILE_FAILURES)) == 0


def test_a_failed_step_counts_as_a_reconciler_failure() -> None:
    world = make_world()
    before = sum(p.value for p in metric_points(telemetry.RECONCILE_FAILURES))
    world.groups.faults.add("list", CloudError("ARM is unreachable", status=503, transient=True))
    report = run_tick(world.services)
    assert report.failures == 1
    assert sum(p.value for p in metric_points(telemetry.RECONCILE_FAILURES)) == before + 1


def test_no_span_attribute_holds_a_secret_value() -> None:
    world = make_world(allow_inline_secrets=True)
    main = {"name": "main", "image": "busybox", "secretEnv": {"TOKEN": {"value": "s3cr3t-value"}}}
    spec = {"id": "secretive", "containers": [main]}
    properties = submit_over_http(world, spec)
    body, message_id, content_type = world.queue.sent[-1]
    accept_message(world.services, body, message_id, content_type, traceparent=properties["traceparent"])
    world.groups.finish(POOL, "secretive-a1", 0, at=world.clock.now())
    run_tick(world.services)
    seen = [str(value) for s in SPANS.get_finished_spans() for value in (s.attributes or {}).values()]
    assert seen
    assert not any("s3cr3t" in value for value in seen)


def test_a_rerun_starts_a_trace_of_its_own_that_its_message_carries() -> None:
    from dispatcher.entrypoints import http_runs

    world = make_world()
    accept_message(world.services, b'{"id": "first", "image": "busybox"}', "first", "application/json")
    world.groups.finish(POOL, "first-a1", 0, at=world.clock.now())
    run_tick(world.services)
    response = http_runs.rerun(
        world.services, "first", api.Request(caller=ADMIN_CALLER, body=b"{}", headers=JSON_HEADERS)
    )
    assert response.status == 202, response.body
    again = json.loads(response.body)["id"]
    rerun = only("dispatcher.rerun")
    assert world.record(again).trace == telemetry.format_traceparent(rerun.context)
    assert world.queue.properties[-1] == {"traceparent": world.record(again).trace}
    first = world.record("first").trace
    assert first is not None
    assert f"{rerun.context.trace_id:032x}" != first.split("-")[1]  # not the first job's trace

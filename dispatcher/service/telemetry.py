"""Traces and metrics through the OpenTelemetry API; where they go is the host's choice, not this module's.

In Azure the Functions Python worker configures the Azure Monitor OpenTelemetry distro
(``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true``) before any invocation, so these spans and metrics reach
Application Insights, with the Azure SDKs' own spans (each ARM, Service Bus, Table call) as children of ours.
Without a configured provider every call here is a no-op.

One trace follows a job from submission to completion, across invocations: the submission's context is written
into the message (``traceparent``) and into the job's record, and intake, each launch and each finish start their
spans as its children. Span attributes carry ids, statuses and counts only: never a spec, a value or an error body.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind

TRACEPARENT = "traceparent"
NAME = "dispatcher"

tracer = trace.get_tracer(NAME)
meter = metrics.get_meter(NAME)

# Metric names: the alert rules of infra/core/monitor/alerts.bicep query these.
RECONCILE_DURATION = "dispatcher.reconcile.duration"
RECONCILE_FAILURES = "dispatcher.reconcile.failures"
QUEUE_DEPTH = "dispatcher.queue.depth"
DEAD_LETTERS = "dispatcher.queue.dead_letters"
JOBS = "dispatcher.jobs"
POOL_UTILIZATION = "dispatcher.pool.utilization"

_duration = meter.create_histogram(RECONCILE_DURATION, unit="s", description="How long a reconciler run took.")
_failures = meter.create_counter(
    RECONCILE_FAILURES, unit="{step}", description="Reconciler steps that failed (each contained, the run went on)."
)
_depth = meter.create_gauge(QUEUE_DEPTH, unit="{job}", description="Jobs in the queue index, as far as counted.")
_dead = meter.create_gauge(
    DEAD_LETTERS, unit="{message}", description="Messages in the jobs queue's dead-letter queue, as far as peeked."
)
_jobs = meter.create_gauge(JOBS, unit="{job}", description="Jobs the reconciler holds, by status.")
_pool = meter.create_gauge(
    POOL_UTILIZATION, unit="1", description="A pool's groups or cores in use over its limit (1: saturated)."
)


def format_traceparent(context: SpanContext) -> str:
    """The W3C ``traceparent`` of a span context."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to carry in a message or a record; ``None`` without one."""
    context = trace.get_current_span().get_span_context()
    return format_traceparent(context) if context.is_valid else None


def trace_properties(trace: str | None) -> dict[str, str]:
    """Application properties that continue ``trace`` (a job's) in the message's consumer."""
    return {TRACEPARENT: trace} if trace else {}


@contextmanager
def span(
    name: str,
    *,
    parent: str | None = None,
    root: bool = False,
    attributes: Mapping[str, str | int] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A span named ``name``: a child of ``parent`` (a ``traceparent``: a job's trace) when given, or the root of a
    trace of its own with ``root``; either way linked to the span it runs under (the host's invocation, or the
    reconciler's run). Otherwise a child of the current span."""
    current = trace.get_current_span().get_span_context()
    links = [Link(current)] if current.is_valid and (parent or root) else []
    context: Context | None = None
    if parent:
        context = propagate.extract({TRACEPARENT: parent})
    elif root:
        context = Context()
    with tracer.start_as_current_span(name, context=context, kind=kind, links=links, attributes=attributes) as s:
        yield s


@dataclass
class RunMetrics:
    """What one reconciler run measured; a count it could not read is ``None``, and not recorded."""

    seconds: float
    failures: int
    queue_depth: int | None = None
    dead_letters: int | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    """Jobs by status: the queued ones from the queue index, the others as the run read them."""
    pools: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per pool: its groups and its cores in use, each over its limit."""


def record_run(run: RunMetrics) -> None:
    """Record one reconciler run's metrics."""
    _duration.record(run.seconds)
    _failures.add(run.failures)
    if run.queue_depth is not None:
        _depth.set(run.queue_depth)
    if run.dead_letters is not None:
        _dead.set(run.dead_letters)
    for status, count in run.statuses.items():
        _jobs.set(count, {"status": status})
    for pool, (groups, cores) in run.pools.items():
        _pool.set(groups, {"pool": pool, "resource": "groups"})
        _pool.set(cores, {"pool": pool, "resource": "cores"})

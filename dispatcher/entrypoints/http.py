"""The HTTP API's behaviour, free of any web framework: a request in, a response out.

``function_app.py`` translates ``func.HttpRequest`` to :class:`Request` and :class:`Response` back.
Errors are RFC 9457 ``application/problem+json`` with field-level details.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from dispatcher.domain.errors import DispatcherError, FieldError, JobError, PolicyViolation
from dispatcher.domain.events import job_event
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.placement import Demand
from dispatcher.domain.spec import MAX_SPEC_BYTES, load_document
from dispatcher.entrypoints.api_models import (
    Accepted,
    Check,
    FieldProblem,
    Health,
    JobList,
    OutputList,
    Problem,
    job_out,
)
from dispatcher.ports import AlreadyExists, Conflict, JobQuery
from dispatcher.service.services import Services
from dispatcher.service.submit import check, new_record

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
SPEC_TYPES = {"application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", ""}
MAX_RACES = 5
MAX_PAGE = 200


@dataclass(frozen=True)
class Request:
    """What a handler needs of an HTTP request. Header names are lower case."""

    body: bytes = b""
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    """An HTTP response."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, model.model_dump_json(by_alias=True).encode(), JSON, headers or {})


def problem(status: int, title: str, detail: str | None = None, errors: list[FieldError] | None = None) -> Response:
    """An RFC 9457 problem response."""
    body = Problem(
        title=title,
        status=status,
        detail=detail,
        errors=[FieldProblem(loc=e.loc, message=e.message) for e in errors or []],
    )
    return Response(status, body.model_dump_json(by_alias=True, exclude_none=True).encode(), PROBLEM_JSON)


def _not_found(job_id: str) -> Response:
    return problem(404, "Job not found", f"there is no job {job_id!r}")


def submit(services: Services, request: Request) -> Response:
    """``POST /api/jobs``: validate and apply policy now, record the job, enqueue it, answer 202."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in SPEC_TYPES:
        return problem(415, "Unsupported media type", f"{content_type!r}: send application/json or application/yaml")
    if len(request.body) > MAX_SPEC_BYTES:
        return problem(413, "Job spec too large", f"the limit is {MAX_SPEC_BYTES // 1024} KiB")
    generated = str(uuid.uuid4())
    try:
        spec = check(load_document(request.body), generated, services)
    except JobError as exc:
        title = "Policy violation" if isinstance(exc, PolicyViolation) else "Invalid job spec"
        return problem(400, title, str(exc), exc.errors)
    assert spec.id is not None  # check() always returns a spec with an id
    record = new_record(spec, spec.id, services)
    created = True
    try:
        services.store.insert(record)
    except AlreadyExists:
        created = False
        found = services.store.get(record.id)
        if found is not None and found.value.spec_hash != record.spec_hash:
            return problem(409, "Job id in use", f"job {record.id!r} already exists with a different spec")
        record = found.value if found is not None else record
    if record.status is Status.QUEUED:
        # before the message: the scheduler launches it even if the message is lost
        services.store.enqueue(record, Demand.of(spec))
    try:
        services.queue.send(request.body, record.id, content_type or JSON)
    except Exception as exc:  # the job is durable and indexed: the reconciler launches it anyway
        log.warning(
            "job %s recorded but not enqueued (%s); the scheduler will launch it", record.id, type(exc).__name__
        )
    if created:
        services.events.publish(job_event(record, "queued", instance=services.settings.instance))
    location = f"/api/jobs/{record.id}"
    return _json(Accepted(id=record.id, status=record.status, location=location), 202, {"Location": location})


def get_job(services: Services, job_id: str) -> Response:
    """``GET /api/jobs/{id}``."""
    found = services.store.get(job_id)
    return _json(job_out(found.value)) if found is not None else _not_found(job_id)


def _time(name: str, value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _query(request: Request) -> JobQuery:
    status = request.query.get("status") or None
    if status is not None and status not in {s.value for s in Status}:
        raise ValueError(f"status: {status!r} is not one of {', '.join(s.value for s in Status)}")
    labels = []
    for pair in filter(None, (request.query.get("label") or "").split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"label: {pair!r} is not key=value")
        labels.append((key.strip(), value.strip()))
    limit_text = request.query.get("limit") or "50"
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
        raise ValueError(f"limit: {limit_text!r} is not a number from 1 to {MAX_PAGE}")
    return JobQuery(
        status=status,
        since=_time("since", request.query.get("since")),
        until=_time("until", request.query.get("until")),
        labels=tuple(labels),
        limit=int(limit_text),
        continuation=request.query.get("continuation") or None,
    )


def list_jobs(services: Services, request: Request) -> Response:
    """``GET /api/jobs``: filtered by status, label and submission time, a page at a time."""
    try:
        query = _query(request)
        records, token = services.store.list_jobs(query)
    except ValueError as exc:
        loc, _, message = str(exc).partition(": ")
        return problem(400, "Invalid query", str(exc), [FieldError(loc, message)])
    return _json(JobList(items=[job_out(r) for r in records], continuation_token=token))


def cancel(services: Services, job_id: str) -> Response:
    """``DELETE /api/jobs/{id}``: a queued job is cancelled now, a launched one by the reconciler. Idempotent."""
    for _ in range(MAX_RACES):
        found = services.store.get(job_id)
        if found is None:
            return _not_found(job_id)
        record = found.value
        if record.status.terminal or record.cancel_requested:
            if not record.status.terminal:
                _tell_reconciler(services, record)  # a repeat makes sure the reservation carries the cancel
            return _json(job_out(record), 202)
        now = services.clock.now()
        if record.status is Status.QUEUED:
            updated = record.transition(Status.CANCELLED, now, reason="cancelled on request", cancel_requested=True)
        else:
            updated = record.model_copy(update={"cancel_requested": True, "updated_at": now})
        try:
            services.store.replace(updated, found.etag)
        except Conflict:
            continue
        if updated.status is Status.CANCELLED:
            services.store.dequeue(updated)
            services.events.publish(job_event(updated, "cancelled", instance=services.settings.instance))
        else:
            _tell_reconciler(services, updated)
        return _json(job_out(updated), 202)
    return problem(409, "Job changing", f"job {job_id!r} kept changing; try again")


def _tell_reconciler(services: Services, record: JobRecord) -> None:
    """Flag the cancel on the attempt's reservation: the reconciler reads a running job's record only when asked."""
    attempt = record.current
    if attempt is None:
        return
    pool = services.settings.pool(attempt.pool)
    if pool is not None:
        services.store.mark_reservation(pool, attempt.group, cancel_requested=True)


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    kept = text.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return "".join(kept)


def _containers(record: JobRecord) -> list[str]:
    names = [c.get("name", "") for c in record.spec.get("initContainers", [])]
    return names + [c.get("name", "") for c in record.spec.get("containers", [])]


def logs(services: Services, job_id: str, request: Request) -> Response:
    """``GET /api/jobs/{id}/logs``: live from ACI while the job runs, the harvested logs afterwards."""
    found = services.store.get(job_id)
    if found is None:
        return _not_found(job_id)
    record = found.value
    tail_text = request.query.get("tail")
    if tail_text is not None and not tail_text.isdigit():
        return problem(400, "Invalid query", None, [FieldError("tail", f"{tail_text!r} is not a number of lines")])
    tail = int(tail_text) if tail_text is not None else None
    wanted = request.query.get("container")
    names = _containers(record)
    if wanted is not None and wanted not in names:
        return problem(404, "Container not found", f"job {job_id!r} has no container {wanted!r}")
    attempt = record.current
    texts: dict[str, str] = {}
    if attempt is not None and attempt.outcome is None and attempt.launched_at is not None:
        pool = next((p for p in services.settings.pools if p.name == attempt.pool), None)
        if pool is not None:
            for name in [wanted] if wanted else names:
                texts[name] = _tail(services.groups.logs(pool, attempt.group, name, tail), tail)
    elif attempt is not None:
        for result in attempt.containers:
            if wanted is None or result.name == wanted:
                stored = services.logs.get(f"{record.id}/{attempt.number}/{result.name}.log")
                texts[result.name] = _tail(stored if stored is not None else result.log_tail, tail)
    if len(texts) == 1 or wanted:
        body = next(iter(texts.values()), "")
    else:
        body = "".join(
            f"==> {name} <==\n{text}" + ("" if text.endswith("\n") or not text else "\n")
            for name, text in texts.items()
        )
    return Response(200, body.encode(), "text/plain; charset=utf-8")


def _safe_path(path: str) -> str | None:
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        return None
    return path


def outputs(services: Services, job_id: str) -> Response:
    """``GET /api/jobs/{id}/outputs``: the files in the job's workspace."""
    found = services.store.get(job_id)
    if found is None:
        return _not_found(job_id)
    share = found.value.workspace
    files = services.shares.files(share) if share else []
    return _json(OutputList(job_id=job_id, workspace=share, files=files))


def output_file(services: Services, job_id: str, path: str) -> Response:
    """``GET /api/jobs/{id}/outputs/{path}``: one file of the workspace; paths may not leave it."""
    safe = _safe_path(path)
    if safe is None:
        return problem(
            400, "Invalid path", None, [FieldError("path", f"{path!r} must be a relative path inside the workspace")]
        )
    found = services.store.get(job_id)
    if found is None:
        return _not_found(job_id)
    share = found.value.workspace
    data = services.shares.read(share, safe) if share else None
    if data is None:
        return problem(404, "Output not found", f"job {job_id!r} has no output {safe!r}")
    return Response(200, data, "application/octet-stream")


def _probe(action: Callable[[], object]) -> Check:
    started = time.perf_counter()
    try:
        action()
    except (DispatcherError, Exception) as exc:  # report any failure, never raise from a health check
        return Check(
            status="error", detail=type(exc).__name__, latency_ms=round((time.perf_counter() - started) * 1000, 1)
        )
    return Check(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 1))


def health(services: Services) -> Response:
    """``GET /api/health``: the store, Service Bus and ARM, each checked with one cheap read."""
    checks = {
        "store": _probe(lambda: services.store.get("health-probe")),
        "serviceBus": _probe(services.queue.probe),
    }
    for pool in services.settings.pools:
        checks[f"arm:{pool.name}"] = _probe(functools.partial(services.groups.get, pool, "health-probe"))
    ok = all(c.status == "ok" for c in checks.values())
    return _json(Health(status="ok" if ok else "degraded", checks=checks), 200 if ok else 503)


def safely(handler: Callable[[], Response]) -> Response:
    """Run a handler; an unexpected failure becomes a 500 problem that names no internals or secrets."""
    try:
        return handler()
    except DispatcherError as exc:
        log.warning("request failed: %s", type(exc).__name__)
        return problem(503, "Dependency unavailable", type(exc).__name__)
    except Exception:
        log.exception("request failed")
        return problem(500, "Internal error", "the request failed; see the dispatcher's logs")

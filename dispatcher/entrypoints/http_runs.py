"""The HTTP API's schedules and re-runs (see :mod:`dispatcher.entrypoints.http` for the conventions)."""

from __future__ import annotations

from dispatcher.domain.document import load_document
from dispatcher.domain.errors import JobError, PolicyViolation
from dispatcher.domain.identity import may_see
from dispatcher.domain.naming import job_path
from dispatcher.domain.rerun import parse_overrides
from dispatcher.domain.schedules import SCHEDULE_NAME, SCHEDULE_NAME_MAX
from dispatcher.entrypoints.api_models import (
    Accepted,
    RunOut,
    ScheduleDeleted,
    ScheduleList,
    ScheduleOut,
    SkipOut,
    job_out,
)
from dispatcher.entrypoints.http import (
    BadRequest,
    Request,
    Response,
    find_job,
    handler,
    job_not_found,
    json_response,
    problem,
    refused_body,
    submitting_team,
    text_param,
)
from dispatcher.service import schedules
from dispatcher.service.rerun import JobNotFound
from dispatcher.service.rerun import rerun as rerun_job
from dispatcher.service.services import Services
from dispatcher.service.submit import enqueue

IDEMPOTENCY_KEY = "idempotency-key"
MAX_KEY = 200


def schedule_out(view: schedules.ScheduleView) -> ScheduleOut:
    """A schedule as the API shows it."""
    record = view.record
    return ScheduleOut(
        schedule=record.spec,
        job=record.document.job.canonical(),
        created_at=record.created_at,
        updated_at=record.updated_at,
        next_due=view.next_due,
        active=[RunOut.model_validate(r, from_attributes=True) for r in view.active],
        succeeded=[RunOut.model_validate(r, from_attributes=True) for r in record.succeeded],
        failed=[RunOut.model_validate(r, from_attributes=True) for r in record.failed],
        last_skipped=SkipOut.model_validate(record.last_skipped, from_attributes=True) if record.last_skipped else None,
        missed=record.missed,
        team=record.team,
    )


def _invalid(exc: JobError, what: str) -> Response:
    title = "Policy violation" if isinstance(exc, PolicyViolation) else f"Invalid {what}"
    return problem(400, title, str(exc), exc.errors)


def _document(request: Request) -> object:
    """The request's JSON or YAML document, ``None`` for an empty body (after :func:`refused_body`)."""
    return load_document(request.body) if request.body.strip() else None


def _key(request: Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is not None and (not key or len(key) > MAX_KEY or not key.isprintable() or not key.isascii()):
        raise BadRequest("Idempotency-Key", f"must be 1-{MAX_KEY} printable ASCII characters")
    return key


def _name(name: str) -> str | None:
    return name if len(name) <= SCHEDULE_NAME_MAX and SCHEDULE_NAME.match(name) else None


def _no_schedule(name: str) -> Response:
    return problem(404, "Schedule not found", f"there is no schedule {ascii(name)[:80]}")


def _visible(services: Services, name: str, request: Request) -> bool:
    """Whether schedule ``name`` exists and the caller may see it: another team's is not found, as its jobs are."""
    if _name(name) is None:
        return False
    found = services.schedules.get(name)
    return found is not None and may_see(request.who, found.value.team)


@handler
def put_schedule(services: Services, name: str, request: Request) -> Response:
    """``PUT /api/schedules/{name}``: create (201) or replace (200), validated like a job."""
    if _name(name) is None:
        raise BadRequest("name", f"must be 1-{SCHEDULE_NAME_MAX} lowercase letters, digits and single hyphens")
    refused = refused_body(request)
    if refused is not None:
        return refused
    caller = request.who
    try:
        team = submitting_team(services, request)
        record, created = schedules.apply(
            services,
            _document(request),
            name,
            team=team,
            by=caller.actor,
            may_replace=lambda found: may_see(caller, found.team),
        )
    except JobError as exc:
        return _invalid(exc, "schedule")
    except schedules.ScheduleNotFound:  # another team's: its name is taken, which says no more than a 409 would
        return problem(409, "Schedule name in use", f"schedule {name!r} belongs to another team")
    return json_response(schedule_out(schedules.view(services, record.name)), 201 if created else 200)


@handler
def get_schedule(services: Services, name: str, request: Request) -> Response:
    """``GET /api/schedules/{name}``: its next due times and its last jobs with their status."""
    if not _visible(services, name, request):
        return _no_schedule(name)
    try:
        return json_response(schedule_out(schedules.view(services, name)))
    except schedules.ScheduleNotFound:
        return _no_schedule(name)


@handler
def list_schedules(services: Services, request: Request) -> Response:
    """``GET /api/schedules``: the caller's teams' (an admin's: all)."""
    views = [v for v in schedules.listing(services) if may_see(request.who, v.record.team)]
    return json_response(ScheduleList(items=[schedule_out(v) for v in views]))


@handler
def schedule_action(services: Services, name: str, action: str, request: Request) -> Response:
    """``POST /api/schedules/{name}/trigger | suspend | resume``."""
    if not _visible(services, name, request):
        return _no_schedule(name)
    try:
        if action == "trigger":
            job = schedules.trigger(services, name, _key(request))
            enqueue(services, job.id, job.trace)
            body = Accepted(id=job.id, status=job.status, location=job_path(job.id))
            return json_response(body, 202, {"Location": job_path(job.id)})
        if action in ("suspend", "resume"):
            schedules.set_suspended(services, name, action == "suspend")
            return json_response(schedule_out(schedules.view(services, name)))
    except schedules.ScheduleNotFound:
        return _no_schedule(name)
    return problem(404, "Action not found", f"{ascii(action)[:40]}: use trigger, suspend or resume")


@handler
def delete_schedule(services: Services, name: str, request: Request) -> Response:
    """``DELETE /api/schedules/{name}[?cancelActive=true]``: active jobs go on unless asked to cancel them."""
    flag = (text_param(request, "cancelActive") or "false").lower()
    if flag not in ("true", "false"):
        raise BadRequest("cancelActive", "must be true or false")
    if not _visible(services, name, request):
        return _no_schedule(name)
    try:
        cancelled = schedules.delete(services, name, flag == "true")
    except schedules.ScheduleNotFound:
        return _no_schedule(name)
    return json_response(ScheduleDeleted(deleted=name, cancelled=cancelled))


@handler
def rerun(services: Services, job_id: str, request: Request) -> Response:
    """``POST /api/jobs/{id}/rerun``: a new job from this one's spec with overrides; 202 with its Location."""
    if find_job(services, job_id, request.who) is None:
        return job_not_found(job_id)
    key = _key(request)
    refused = refused_body(request)
    if refused is not None:
        return refused
    try:
        overrides = parse_overrides(_document(request))
        submitted = rerun_job(services, job_id, overrides, key, request.who.actor)
    except JobNotFound:
        return job_not_found(job_id)
    except JobError as exc:
        return _invalid(exc, "re-run")
    if submitted.outcome == "conflict":
        return problem(409, "Re-run key in use", "this Idempotency-Key made a re-run with other overrides")
    assert submitted.record is not None
    enqueue(services, submitted.job_id, submitted.record.trace)
    location = job_path(submitted.job_id)
    body = job_out(submitted.record)
    return json_response(body, 202, {"Location": location})

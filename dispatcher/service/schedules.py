"""Schedules: create or replace, fire due times in the reconciler run, trigger, suspend, resume, delete.

Firing is idempotent by construction. A due time's job id is derived from the schedule and the due time
(:func:`~dispatcher.domain.schedules.fired_id`); the job is recorded first (a second recording of the same id is a
duplicate), then the schedule's ``handled`` time moves past it in an ETag-guarded write that carries the
``schedule.fired`` event. A crash between the two is finished by the next run, which finds the same due time and
the same job; two overlapping runs record one job and one of them writes the schedule.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispatcher.domain.cron import due_since, next_due
from dispatcher.domain.errors import AlreadyExists, Conflict, FieldError, InvalidJob
from dispatcher.domain.events import CloudEvent, schedule_event
from dispatcher.domain.identity import Actor
from dispatcher.domain.jobs import JobRecord
from dispatcher.domain.policy import apply_policy
from dispatcher.domain.schedules import (
    ACTIVE_MAX,
    SCHEDULE_LABEL,
    ConcurrencyPolicy,
    Run,
    ScheduleDocument,
    ScheduleRecord,
    Skip,
    fired_id,
    triggered_id,
    validate_schedule,
)
from dispatcher.ports import Versioned
from dispatcher.service.cancel import cancel
from dispatcher.service.outbox import publish
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services
from dispatcher.service.submit import record_job
from dispatcher.service.telemetry import span

log = logging.getLogger(__name__)

MAX_SCHEDULES = 1000
NEXT_SHOWN = 5
MAX_RACES = 5


class ScheduleNotFound(LookupError):
    """No schedule has this name."""


def _check_template(document: ScheduleDocument, services: Services, team: str | None) -> None:
    """The template must pass policy as its jobs will, and hold no inline value (it would rest in the schedule)."""
    job = document.job
    errors = [
        FieldError(f"job.{path}", "a schedule cannot hold an inline value; reference a job-secrets vault name")
        for path, ref in job.secret_refs()
        if ref.is_inline
    ]
    if SCHEDULE_LABEL in job.labels:
        errors.append(FieldError(f"job.labels.{SCHEDULE_LABEL}", "is set by the dispatcher to the schedule's name"))
    if errors:
        raise InvalidJob(errors)
    try:
        apply_policy(
            job.model_copy(update={"id": fired_id(document.schedule.name, services.clock.now())}),
            services.settings,
            team,
        )
    except InvalidJob as exc:
        raise type(exc)([FieldError(f"job.{e.loc}" if e.loc else "job", e.message) for e in exc.errors]) from None


def apply(
    services: Services,
    data: Any,
    name: str,
    *,
    team: str | None = None,
    by: Actor | None = None,
    may_replace: Callable[[ScheduleRecord], bool] = lambda _: True,
) -> tuple[ScheduleRecord, bool]:
    """``PUT /api/schedules/{name}`` by ``by`` for ``team``: create the schedule, or replace its document keeping
    what it has done; its jobs count against ``team``.

    Returns the schedule and whether it was created. Raises :class:`InvalidJob` naming each bad field, and
    :class:`ScheduleNotFound` when a schedule of that name exists that ``may_replace`` says the caller may not see.
    """
    document = validate_schedule(data, name)
    _check_template(document, services, team)
    for _ in range(MAX_RACES):
        now = services.clock.now()
        found = services.schedules.get(name)
        try:
            if found is None:
                record = ScheduleRecord(
                    document=document, created_at=now, updated_at=now, handled=now, team=team, owner=by
                )
                return services.schedules.insert(record).value, True
            if not may_replace(found.value):
                raise ScheduleNotFound(name)
            kept = team if team is not None else found.value.team  # an admin naming no team keeps the schedule's
            update = {"document": document, "updated_at": now, "team": kept, "owner": by}
            changed = found.value.model_copy(update=update)
            return services.schedules.replace(found, changed).value, False
        except (AlreadyExists, Conflict):
            continue
    raise Conflict(f"schedule {name}")


def _get(services: Services, name: str) -> Versioned[ScheduleRecord]:
    found = services.schedules.get(name)
    if found is None:
        raise ScheduleNotFound(name)
    return found


def _write(
    services: Services, found: Versioned[ScheduleRecord], new: ScheduleRecord, events: list[CloudEvent]
) -> Versioned[ScheduleRecord]:
    written = services.schedules.replace(found, new, events)
    publish(services, events)
    return written


def _job_of(services: Services, record: ScheduleRecord, job_id: str) -> JobRecord:
    """Record the job of one run (a duplicate when it was recorded before): the template under ``job_id``."""
    template = record.document.job
    spec = template.model_copy(update={"id": job_id, "labels": {**template.labels, SCHEDULE_LABEL: record.name}})
    attributes = {"dispatcher.schedule": record.name, "dispatcher.job_id": job_id}
    with span("dispatcher.schedule.fire", root=True, attributes=attributes):  # each run's job a trace of its own
        submitted = record_job(services, apply_policy(spec, services.settings, record.team), owner=record.actor)
    assert submitted.record is not None
    if submitted.outcome == "conflict":  # the template changed between a crash and this repeat: the job stands
        log.info("schedule %s: job %s was recorded before with the earlier template", record.name, job_id)
    return submitted.record


def _refresh(services: Services, record: ScheduleRecord) -> ScheduleRecord:
    """Move the schedule's active jobs that have ended to its history."""
    for run in record.active:
        found = services.records.get(run.job_id)
        if found is None:
            record = record.ended(run, "Missing", services.clock.now())
        elif found.value.status.terminal:
            record = record.ended(run, found.value.status.value, found.value.updated_at)
    return record


def _skip(
    services: Services, record: ScheduleRecord, due: dt.datetime, reason: str
) -> tuple[ScheduleRecord, CloudEvent]:
    instance = services.settings.instance
    skipped = record.model_copy(update={"handled": due, "last_skipped": Skip(due=due, reason=reason)})
    return skipped, schedule_event(
        record.name, "skipped", due, None, services.clock.now(), instance=instance, reason=reason
    )


def advance(services: Services, found: Versioned[ScheduleRecord]) -> str:
    """One reconciler run's work on one schedule: refresh its active jobs, then fire or skip what is due.

    Returns what happened (``fired``, ``skipped``, ``refreshed`` or ``idle``), for the run's report.
    """
    now = services.clock.now()
    before = found.value
    record = _refresh(services, before)
    spec = record.spec
    due = None if spec.suspend else due_since(spec.cron, spec.zone, record.handled, now)
    if due is None:
        if record != before:
            _write(services, found, record.model_copy(update={"updated_at": now}), [])
            return "refreshed"
        return "idle"
    record = record.model_copy(update={"missed": record.missed + due.missed, "updated_at": now})
    late = (now - due.latest).total_seconds()
    reason: str | None = None
    if spec.starting_deadline_seconds is not None and late > spec.starting_deadline_seconds:
        reason = f"missed: {late:.0f} s late, past the starting deadline of {spec.starting_deadline_seconds} s"
    elif record.active and spec.concurrency_policy is ConcurrencyPolicy.FORBID:
        reason = f"Forbid: job {record.active[0].job_id} is still active"
    elif len(record.active) >= ACTIVE_MAX:
        reason = f"{ACTIVE_MAX} jobs of this schedule are still active"
    if reason is not None:
        skipped, event = _skip(services, record, due.latest, reason)
        _write(services, found, skipped.model_copy(update={"missed": skipped.missed + 1}), [event])
        log.info("schedule %s skipped %s: %s", record.name, due.latest.isoformat(), reason)
        return "skipped"
    replaced = [run.job_id for run in record.active] if spec.concurrency_policy is ConcurrencyPolicy.REPLACE else []
    for job_id in replaced:
        cancel(services, job_id)  # idempotent: a repeat after a crash asks again
    job_id = fired_id(record.name, due.latest)
    job = _job_of(services, record, job_id)
    fired = record.model_copy(
        update={"handled": due.latest, "active": [*record.active, Run(job_id=job_id, due=due.latest)]}
    )
    event = schedule_event(
        record.name,
        "fired",
        due.latest,
        job.id,
        now,
        instance=services.settings.instance,
        replaced=replaced,
        missed=due.missed,
    )
    _write(services, found, fired, [event])
    return "fired"


def fire_due(services: Services, report: RunReport) -> None:
    """Advance every schedule, each on its own: one that fails is counted and retried by the next run."""
    for found in services.schedules.list(MAX_SCHEDULES):
        if report.out_of_time():
            return
        with report.contained(f"schedule {found.value.name}"):
            try:
                outcome = advance(services, found)
            except Conflict:  # another run advanced it meanwhile; it sees the same due times
                outcome = "raced"
            if outcome != "idle":
                report.count(f"Schedule{outcome.capitalize()}")


def trigger(services: Services, name: str, key: str | None) -> JobRecord:
    """``POST /api/schedules/{name}/trigger``: run the template now, whatever the policy (as ``kubectl create job
    --from=cronjob`` does). The idempotency key names the run, so a retried request starts one job."""
    job_id = triggered_id(name, key or str(uuid.uuid4()))
    for _ in range(MAX_RACES):
        found = _get(services, name)
        job = _job_of(services, found.value, job_id)
        if any(run.job_id == job_id for run in found.value.active):
            return job
        now = services.clock.now()
        record = found.value
        updated = record.model_copy(update={"active": [*record.active, Run(job_id=job_id)], "updated_at": now})
        event = schedule_event(name, "fired", now, job_id, now, instance=services.settings.instance, manual=True)
        try:
            _write(services, found, updated, [event])
        except Conflict:
            continue
        return job
    raise Conflict(f"schedule {name}")


def set_suspended(services: Services, name: str, suspend: bool) -> ScheduleRecord:
    """``POST .../suspend`` and ``.../resume``. Due times passed while suspended count as missed: on resume the
    latest of them runs if it is within the starting deadline, as with Kubernetes CronJob."""
    for _ in range(MAX_RACES):
        found = _get(services, name)
        record = found.value
        if record.spec.suspend == suspend:
            return record
        document = record.document.model_copy(update={"schedule": record.spec.model_copy(update={"suspend": suspend})})
        try:
            updated = record.model_copy(update={"document": document, "updated_at": services.clock.now()})
            return _write(services, found, updated, []).value
        except Conflict:
            continue
    raise Conflict(f"schedule {name}")


def delete(services: Services, name: str, cancel_active: bool) -> list[str]:
    """``DELETE /api/schedules/{name}``: active jobs go on unless ``cancel_active``; returns those cancelled. The
    cancels come first, so a crash before the delete leaves the schedule to delete again."""
    for _ in range(MAX_RACES):
        found = _get(services, name)
        record = _refresh(services, found.value)
        cancelled = [run.job_id for run in record.active] if cancel_active else []
        for job_id in cancelled:
            cancel(services, job_id)
        try:
            services.schedules.delete(found)
        except Conflict:
            continue
        return cancelled
    raise Conflict(f"schedule {name}")


@dataclass(frozen=True)
class ScheduleView:
    record: ScheduleRecord
    next_due: list[dt.datetime]
    active: list[Run]


def view(services: Services, name: str) -> ScheduleView:
    """A schedule with its next due times and the current status of its active jobs."""
    record = _get(services, name).value
    active = []
    for run in record.active:
        found = services.records.get(run.job_id)
        active.append(run.model_copy(update={"status": found.value.status.value if found else "Missing"}))
    upcoming = (
        [] if record.spec.suspend else next_due(record.spec.cron, record.spec.zone, services.clock.now(), NEXT_SHOWN)
    )
    return ScheduleView(record, upcoming, active)


def listing(services: Services) -> list[ScheduleView]:
    """Every schedule with its next due times (active jobs as last recorded, without reading them)."""
    now = services.clock.now()
    return [
        ScheduleView(
            s.value,
            [] if s.value.spec.suspend else next_due(s.value.spec.cron, s.value.spec.zone, now, 1),
            s.value.active,
        )
        for s in services.schedules.list(MAX_SCHEDULES)
    ]

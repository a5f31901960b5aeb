"""Schedules: a named job template with a cron expression, and the state the reconciler keeps of it. Pure.

A schedule's document is ``{schedule: {...}, job: {...}}``; the job is an ordinary job spec without an id. Each due
time becomes one job whose id is the schedule's name and the due time in UTC (:func:`fired_id`), so overlapping
reconciler runs, a retried run and two function instances converge on one job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from dispatcher.domain.cron import valid_cron
from dispatcher.domain.document import errors_from, validate_job
from dispatcher.domain.errors import FieldError, InvalidJob
from dispatcher.domain.identity import Actor
from dispatcher.domain.limits import ARRAY_ID_MAX
from dispatcher.domain.spec import ID_MAX, JobSpec

FIRED_SUFFIX = len("-yyyymmddhhmm")
TRIGGERED_SUFFIX = len("-t") + 12
SCHEDULE_NAME_MAX = ID_MAX - max(FIRED_SUFFIX, TRIGGERED_SUFFIX)
"""A schedule's name leaves room in the job-id grammar for the due time (or a manual trigger's key)."""
SCHEDULE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
SCHEDULE_LABEL = "schedule"
"""The label the dispatcher sets on every job a schedule starts (a template may not set it)."""
MAX_HISTORY = 100
ACTIVE_MAX = 50
"""Active jobs a schedule tracks at most; under Allow, a due time past it is skipped, never lost silently."""


class ConcurrencyPolicy(StrEnum):
    """As Kubernetes CronJob: what a due time does while the schedule's previous job is still active."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class History(_Model):
    succeeded: int = Field(default=10, ge=0, le=MAX_HISTORY)
    failed: int = Field(default=20, ge=0, le=MAX_HISTORY)


class ScheduleSpec(_Model):
    """When to run the template: ``cron`` in ``time_zone``, with Kubernetes CronJob's policies."""

    name: str = Field(description=f"1-{SCHEDULE_NAME_MAX} lowercase letters, digits and single hyphens.")
    cron: str = Field(description="A five-field crontab expression (minute hour day month weekday).")
    time_zone: str = Field(default="UTC", description="An IANA time zone name; daylight-saving changes handled.")
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    starting_deadline_seconds: int | None = Field(
        default=None, gt=0, le=366 * 86400, description="A missed due time older than this is skipped."
    )
    suspend: bool = False
    history: History = Field(default_factory=History)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > SCHEDULE_NAME_MAX:
            raise ValueError(f"{len(value)} characters is more than the {SCHEDULE_NAME_MAX} a schedule name may have")
        if not SCHEDULE_NAME.match(value) or "--" in value:
            raise ValueError("must be lowercase letters, digits and single hyphens, starting and ending with either")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = valid_cron(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{ascii(value)[:60]} is not an IANA time zone name, such as Europe/Amsterdam") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class ScheduleDocument(_Model):
    """What ``PUT /api/schedules/{name}`` and ``dispatcher schedule apply`` take."""

    schedule: ScheduleSpec
    job: JobSpec


def validate_schedule(data: Any, name: str | None = None) -> ScheduleDocument:
    """A schedule document, validated like a job (every error naming its field, ``job.`` or ``schedule.``);
    ``name``, when given (the URL's), must be the document's or fills it in."""
    if not isinstance(data, dict):
        raise InvalidJob([FieldError("", f"a schedule is a mapping with schedule and job, not {type(data).__name__}")])
    errors: list[FieldError] = []
    schedule_data = data.get("schedule")
    if isinstance(schedule_data, dict) and name is not None:
        if schedule_data.get("name", name) != name:
            errors.append(FieldError("schedule.name", f"must be {name!r}, the name in the URL"))
        schedule_data = {**schedule_data, "name": name}
    unknown = sorted(set(data) - {"schedule", "job"})
    errors += [FieldError(k, "is not a field of a schedule; give schedule and job") for k in unknown]
    schedule: ScheduleSpec | None = None
    try:
        schedule = ScheduleSpec.model_validate(schedule_data)
    except ValidationError as exc:
        errors += [FieldError(_under("schedule", e.loc), e.message) for e in errors_from(exc)]
    job: JobSpec | None = None
    job_data = data.get("job")
    if isinstance(job_data, dict) and "id" in job_data:
        errors.append(FieldError("job.id", "a schedule's jobs get their ids from the schedule; remove it"))
    else:
        try:
            job = validate_job(job_data)
        except InvalidJob as exc:
            errors += [FieldError(_under("job", e.loc), e.message) for e in exc.errors]
    room = ARRAY_ID_MAX - max(FIRED_SUFFIX, TRIGGERED_SUFFIX)
    if schedule is not None and job is not None and job.tasks is not None and len(schedule.name) > room:
        errors.append(
            FieldError("schedule.name", f"a schedule of an array job has a name of at most {room} characters")
        )
    if errors or schedule is None or job is None:
        raise InvalidJob(errors)
    return ScheduleDocument(schedule=schedule, job=job)


def _under(prefix: str, loc: str) -> str:
    return f"{prefix}.{loc}" if loc else prefix


def fired_id(name: str, due: dt.datetime) -> str:
    """The id of the job a schedule starts for due time ``due``: ``{name}-{yyyymmddhhmm}`` in UTC."""
    return f"{name}-{due.astimezone(dt.UTC):%Y%m%d%H%M}"


def triggered_id(name: str, key: str) -> str:
    """The id of a manual run: ``{name}-t{hash of the request's idempotency key}``, so a retried request is one job."""
    return f"{name}-t{hashlib.sha256(key.encode()).hexdigest()[:12]}"


class Run(_Model):
    """A job the schedule started, as the schedule remembers it."""

    job_id: str
    due: dt.datetime | None = Field(default=None, description="The due time it was fired for; None when triggered.")
    status: str = "Queued"
    ended_at: dt.datetime | None = None


class Skip(_Model):
    due: dt.datetime
    reason: str


class ScheduleRecord(_Model):
    """A schedule and what the reconciler has done with it."""

    document: ScheduleDocument
    created_at: dt.datetime
    updated_at: dt.datetime
    handled: dt.datetime = Field(description="Every due time up to this one has been fired or skipped.")
    active: list[Run] = Field(default_factory=list)
    succeeded: list[Run] = Field(default_factory=list, description="Newest first, within the history limit.")
    failed: list[Run] = Field(default_factory=list, description="Newest first, within the history limit.")
    last_skipped: Skip | None = None
    missed: int = Field(default=0, description="Due times not run since the schedule was created.")
    team: str | None = Field(default=None, description="The team its jobs count against: its writer's.")
    owner: Actor | None = Field(default=None, description="Who last wrote the schedule.")

    @property
    def actor(self) -> Actor:
        """Who its jobs are submitted by: the schedule."""
        return Actor(id=f"schedule:{self.name}", name=f"schedule {self.name}", via="schedule")

    @property
    def name(self) -> str:
        return self.document.schedule.name

    @property
    def spec(self) -> ScheduleSpec:
        return self.document.schedule

    def ended(self, run: Run, status: str, at: dt.datetime) -> ScheduleRecord:
        """A copy with ``run`` moved from active to its history (trimmed to the limits)."""
        done = run.model_copy(update={"status": status, "ended_at": at})
        active = [r for r in self.active if r.job_id != run.job_id]
        limits = self.spec.history
        if status == "Succeeded":
            return self.model_copy(update={"active": active, "succeeded": [done, *self.succeeded][: limits.succeeded]})
        return self.model_copy(update={"active": active, "failed": [done, *self.failed][: limits.failed]})

    def kept(self) -> set[str]:
        """The ids of the jobs the schedule keeps visible: its active jobs and its history."""
        return {r.job_id for r in (*self.active, *self.succeeded, *self.failed)}

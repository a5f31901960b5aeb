"""The HTTP API's bodies, as frozen pydantic models; the OpenAPI document is generated from these.

Field names are camelCase on the wire. Nothing here can hold a secret value: the views are built from
job records, which hold none.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from dispatcher.domain.identity import Actor
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.naming import job_links
from dispatcher.domain.schedules import ScheduleSpec
from dispatcher.domain.tasks import ArrayState, TaskRecord, TaskStatus


class _Body(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True, from_attributes=True
    )


class FieldProblem(_Body):
    """One problem with one field of a request."""

    loc: str = Field(description="The field's path, e.g. containers[0].cpu.")
    message: str


class Problem(_Body):
    """An RFC 9457 problem details body (application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] = Field(default_factory=list)


class ContainerOut(_Body):
    """What one container of an attempt did."""

    name: str
    state: str | None = None
    exit_code: int | None = None
    start_time: dt.datetime | None = None
    finish_time: dt.datetime | None = None
    restart_count: int = 0
    detail_status: str | None = None
    events: list[str] = Field(default_factory=list)
    log_tail: str = ""


class AttemptOut(_Body):
    """One attempt: one container group in one pool."""

    number: int
    group: str
    pool: str
    location: str
    launched_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    outcome: Status | None = None
    reason: str | None = None
    exit_codes: dict[str, int | None] = Field(default_factory=dict)
    billed_seconds: float | None = None
    cost: float | None = None
    containers: list[ContainerOut] = Field(default_factory=list)


class Links(_Body):
    self: str
    logs: str
    outputs: str


class OutputSummaryOut(_Body):
    """What a job left in its workspace, as counted when its last attempt ended."""

    files: int = 0
    bytes: int = 0
    first: list[str] = Field(default_factory=list, description="The first file paths, in listing order.")
    complete: bool = Field(default=True, description="False when the count stopped at its bound.")


class TaskCountsOut(_Body):
    """An array job's tasks by status, and how far it is."""

    total: int
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    progress: float = Field(description="Ended tasks as a fraction of all, 0 to 1.")
    failed_indexes: list[int] = Field(default_factory=list, description="Tasks that failed for good (the first 1,000).")
    stopping: str | None = Field(default=None, description="Why the job stops its remaining tasks, if it does.")


class TaskOut(_Body):
    """One task of an array job."""

    index: int
    status: TaskStatus
    attempts: int = Field(default=0, description="Runs that failed and counted against the retries.")
    runs: int = 0
    exit_code: int | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    not_before: dt.datetime | None = Field(default=None, description="When a task waiting for a retry runs again.")
    reason: str | None = None
    cost: float = 0.0
    group: str | None = Field(default=None, description="The container group of its latest run.")
    item: str | None = None


class TaskList(_Body):
    """A page of an array job's tasks, in index order; pass ``continuationToken`` back as ``?continuation=``."""

    job_id: str
    items: list[TaskOut]
    continuation_token: str | None = None


class LogLineOut(_Body):
    """One line of a container's log, with the time ACI gave it."""

    container: str
    time: str | None = Field(default=None, description="RFC 3339 UTC with nanoseconds; none for a line kept without.")
    text: str


class LogGapOut(_Body):
    """ACI's log window begins after the last line the follower had: lines between may be gone (past ACI's 4 MB,
    or the container restarted with a new log). ACI's answer has no line numbers, so they cannot be counted."""

    container: str
    after: str | None
    before: str | None


class LogPageOut(_Body):
    """What ``GET /api/jobs/{id}/logs?after=`` gives: the lines after the cursor, of one attempt, in time order."""

    job_id: str
    attempt: int | None = Field(description="The attempt the lines are of; none while the job has no attempt.")
    containers: list[str] = Field(description="The containers followed: every one of the job's, or ?container=.")
    lines: list[LogLineOut]
    gaps: list[LogGapOut] = Field(default_factory=list)
    next: str | None = Field(description="Pass back as ?after= for the lines after these.")
    complete: bool = Field(description="The attempt ended and its harvested log was read to its end.")
    more: bool = Field(description="A later call may give more lines: the job is not over, or a later attempt is next.")


class ActorOut(_Body):
    """Who did something: an Entra object id and display name, or what stands for a caller without one."""

    id: str
    name: str
    via: str = Field(description="token, key, queue or schedule.")


class UsageOut(_Body):
    """One team's or label value's usage over the period."""

    key: str = Field(description="The team (- for jobs of no team), or the label's value.")
    jobs: int
    vcpu_seconds: float
    gb_seconds: float = Field(alias="gbSeconds")
    cost: float


class UsageReport(_Body):
    """Usage over whole UTC days, ``since`` to ``until``, from totals written as jobs end."""

    since: dt.date
    until: dt.date
    by: str
    currency: str
    items: list[UsageOut]


class WindowPoint(_Body):
    """Creates and deletes in one minute."""

    minute: dt.datetime
    creates: int
    deletes: int


class PoolOut(_Body):
    """A pool: what it holds against its limits, and its rate windows over the last hour."""

    name: str
    location: str
    max_groups: int
    max_cores: float
    creates_per_5min: int = Field(alias="createsPer5Min")
    creates_per_hour: int
    groups: int
    cores: float
    creates_5min: int = Field(alias="creates5Min")
    creates_hour: int
    deletes_5min: int = Field(alias="deletes5Min")
    deletes_hour: int
    saturated_until: dt.datetime | None = None
    minutes: list[WindowPoint] = Field(description="The last 60 minutes, oldest first.")


class PoolsOut(_Body):
    """Every pool, as the ledger counts them at ``at``."""

    at: dt.datetime
    items: list[PoolOut]


class Me(_Body):
    """The caller, as the API authenticated it (``GET /api/me``)."""

    id: str
    name: str
    via: str
    roles: list[str]
    teams: list[str]


class JobOut(_Body):
    """A job as the API shows it."""

    id: str
    name: str | None = None
    status: Status
    reason: str | None = None
    errors: list[FieldProblem] = Field(default_factory=list)
    last_error: str | None = None
    cancel_requested: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    submitted_at: dt.datetime
    updated_at: dt.datetime
    not_before: dt.datetime | None = None
    attempts: list[AttemptOut] = Field(default_factory=list)
    cost: float = 0.0
    currency: str = "USD"
    workspace: str | None = None
    outputs: OutputSummaryOut | None = None
    spec: dict[str, Any] = Field(default_factory=dict, description="The accepted spec; secrets only by reference.")
    rerun_of: str | None = Field(default=None, description="The job this one re-runs.")
    reruns: list[str] = Field(default_factory=list, description="This job's re-runs, oldest first.")
    tasks: TaskCountsOut | None = Field(default=None, description="An array job's tasks by status.")
    group_of: str | None = Field(default=None, description="For a container group of an array job: that job.")
    team: str | None = Field(default=None, description="The team the job counts against, from its submitter.")
    owner: ActorOut | None = Field(default=None, description="Who submitted it.")
    cancelled_by: ActorOut | None = Field(default=None, description="Who asked for it to be cancelled.")
    links: Links


class JobList(_Body):
    """A page of jobs; pass ``continuationToken`` back as ``?continuation=`` for the next page."""

    items: list[JobOut]
    continuation_token: str | None = None


class Accepted(_Body):
    """A submission accepted for processing."""

    id: str
    status: Status
    location: str
    duplicate: bool = Field(default=False, description="The same job was submitted before; nothing new was recorded.")
    updated_at: dt.datetime | None = None


class DryRun(_Body):
    """A submission validated and checked against policy as it would be, and not recorded."""

    valid: Literal[True] = True
    id: str | None = Field(default=None, description="The spec's own id; one without gets a new id when submitted.")
    spec: dict[str, Any] = Field(description="The spec as the server would record it, with the operator's defaults.")


class OutputEntryOut(_Body):
    """One entry of a workspace folder."""

    path: str = Field(description="The entry's path in the workspace; pass a folder's as ?path= to list it.")
    kind: Literal["file", "directory"]
    size: int = 0


class OutputList(_Body):
    """One page of one folder of a job's workspace; pass ``continuationToken`` back as ``?continuation=``."""

    job_id: str
    workspace: str | None = None
    path: str = ""
    summary: OutputSummaryOut | None = None
    entries: list[OutputEntryOut] = Field(default_factory=list)
    continuation_token: str | None = None


class Check(_Body):
    """One dependency's health."""

    status: Literal["ok", "error"]
    detail: str | None = None
    latency_ms: float


class Health(_Body):
    """The health of the dispatcher's dependencies."""

    status: Literal["ok", "degraded"]
    checks: dict[str, Check]


def links(job_id: str) -> Links:
    return Links(**job_links(job_id))


def job_out(record: JobRecord) -> JobOut:
    """The API view of a job record."""
    spec = record.spec
    return JobOut(
        id=record.id,
        name=spec.name if spec is not None else None,
        status=record.status,
        reason=record.reason,
        errors=[FieldProblem(loc=e.loc, message=e.message) for e in record.errors],
        last_error=record.last_error,
        cancel_requested=record.cancel_requested,
        labels=record.labels,
        submitted_at=record.submitted_at,
        updated_at=record.updated_at,
        not_before=record.not_before,
        attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in record.attempts],
        cost=record.cost,
        currency=record.currency,
        workspace=record.workspace,
        outputs=OutputSummaryOut.model_validate(record.outputs, from_attributes=True) if record.outputs else None,
        spec=spec.canonical() if spec is not None else {},
        rerun_of=record.rerun_of,
        reruns=record.reruns,
        tasks=task_counts(record.array),
        group_of=record.group_of,
        team=record.team,
        owner=_actor(record.owner),
        cancelled_by=_actor(record.cancelled_by),
        links=links(record.id),
    )


def _actor(actor: Actor | None) -> ActorOut | None:
    return ActorOut.model_validate(actor, from_attributes=True) if actor is not None else None


def task_counts(state: ArrayState | None) -> TaskCountsOut | None:
    if state is None:
        return None
    return TaskCountsOut(
        **state.counts(),
        progress=round(state.ended / state.count, 4) if state.count else 1.0,
        failed_indexes=state.failed_indexes[:1000],
        stopping=state.stopping,
    )


def task_out(task: TaskRecord) -> TaskOut:
    return TaskOut.model_validate(task, from_attributes=True)


class RunOut(_Body):
    """A job a schedule started."""

    job_id: str
    due: dt.datetime | None = Field(default=None, description="The due time it was fired for; none if triggered.")
    status: str
    ended_at: dt.datetime | None = None


class SkipOut(_Body):
    due: dt.datetime
    reason: str


class ScheduleOut(_Body):
    """A schedule: its document, next due times, active jobs and history."""

    schedule: ScheduleSpec
    job: dict[str, Any] = Field(description="The job template; secrets only by reference.")
    created_at: dt.datetime
    updated_at: dt.datetime
    next_due: list[dt.datetime] = Field(default_factory=list)
    active: list[RunOut] = Field(default_factory=list)
    succeeded: list[RunOut] = Field(default_factory=list, description="Newest first.")
    failed: list[RunOut] = Field(default_factory=list, description="Newest first.")
    last_skipped: SkipOut | None = None
    missed: int = 0
    team: str | None = None


class ScheduleList(_Body):
    items: list[ScheduleOut]


class ScheduleDeleted(_Body):
    deleted: str
    cancelled: list[str] = Field(default_factory=list, description="The active jobs cancelled with it.")

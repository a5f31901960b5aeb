"""The job record and its lifecycle: statuses, attempts, and the transitions allowed between them. Pure.

The record is the one source of truth about a job. It never holds a secret value: its spec is typed, and an
inline value the user sent is moved to the job-secrets vault before the job can run, the spec then naming it
by reference (:attr:`JobRecord.owned_secrets` lists those names, deleted with the job).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dispatcher.domain.errors import DispatcherError, FieldError
from dispatcher.domain.identity import Actor
from dispatcher.domain.placement import Demand
from dispatcher.domain.spec import JobSpec
from dispatcher.domain.tasks import ArrayState, TaskRun


class Status(StrEnum):
    """Where a job is in its lifecycle (DESIGN.md, "Job lifecycle")."""

    WAITING = "Waiting"
    QUEUED = "Queued"
    LAUNCHING = "Launching"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"
    REJECTED = "Rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def launched(self) -> bool:
        """Whether a container group exists, or is being created, for the current attempt."""
        return self in (Status.LAUNCHING, Status.RUNNING)


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED, Status.REJECTED})

ALLOWED: dict[Status, frozenset[Status]] = {
    Status.WAITING: frozenset({Status.WAITING, Status.QUEUED, Status.CANCELLED, Status.FAILED}),
    Status.QUEUED: frozenset({Status.QUEUED, Status.LAUNCHING, Status.RUNNING, Status.CANCELLED, Status.FAILED}),
    Status.LAUNCHING: frozenset(
        {Status.QUEUED, Status.LAUNCHING, Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT}
        | {Status.CANCELLED}
    ),
    Status.RUNNING: frozenset(
        {Status.QUEUED, Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED}
    ),
}


class IllegalTransition(DispatcherError):
    """A status change the lifecycle does not allow; the caller's view of the record is stale."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContainerResult(_Record):
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
    log_blob: str | None = None


class Ending(_Record):
    """A decision to end an attempt, recorded before the group is stopped: a run that stops the group and dies
    before it records the outcome leaves this, and the next run ends the attempt the same way (a stopped group
    would otherwise read as its containers' exit codes: a timeout as "main exited 137")."""

    outcome: Status
    reason: str
    at: dt.datetime
    lost: bool = False


class Attempt(_Record):
    """One attempt: one container group in one pool."""

    number: int
    group: str
    pool: str
    location: str
    subscription_id: str = ""
    resource_group: str = ""
    cores: float = 0.0
    memory_gb: float = 0.0
    reserved_at: dt.datetime
    launched_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    ending: Ending | None = None
    lost: bool = Field(
        default=False,
        description="The platform took the attempt away (a Spot eviction): retried, and not counted against the "
        "job's retries.",
    )
    outcome: Status | None = None
    reason: str | None = None
    containers: list[ContainerResult] = Field(default_factory=list)
    billed_seconds: float | None = None
    cost: float | None = None

    @property
    def exit_codes(self) -> dict[str, int | None]:
        return {c.name: c.exit_code for c in self.containers}


class OutputSummary(_Record):
    """What a job left in its workspace, bounded: the record never grows with the number of files."""

    files: int = 0
    bytes: int = 0
    first: list[str] = Field(default_factory=list, description="The first file paths, in listing order.")
    complete: bool = Field(default=True, description="False when the count stopped at the listing's bound.")


class JobRecord(_Record):
    """A job: its spec, its status, and every attempt."""

    id: str = Field(description="The job id; for a rejected submission, the key it is recorded under.")
    spec: JobSpec | None = Field(description="The accepted spec, secrets by reference only; None when rejected.")
    spec_hash: str
    status: Status
    priority: int = Field(default=1, description="Scheduling rank: 0 runs before 1.")
    submitted_at: dt.datetime
    updated_at: dt.datetime
    attempts: list[Attempt] = Field(default_factory=list)
    not_before: dt.datetime | None = Field(default=None, description="When a queued retry may launch.")
    reason: str | None = Field(default=None, description="Why the job is in its status, for a person.")
    errors: list[FieldError] = Field(default_factory=list, description="Field errors of a rejected job.")
    claimed_id: str | None = Field(default=None, description="The id a rejected submission claimed, if unusable.")
    last_error: str | None = Field(default=None, description="The last error that kept the job from progressing.")
    cancel_requested: bool = False
    cost: float = 0.0
    currency: str = "USD"
    workspace: str | None = Field(default=None, description="The workspace share, when the job has one.")
    outputs: OutputSummary | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    owned_secrets: list[str] = Field(
        default_factory=list, description="Job-secrets vault names that hold this job's inline values."
    )
    rerun_of: str | None = Field(default=None, description="The job this one re-runs.")
    reruns: list[str] = Field(default_factory=list, description="The re-runs of this job, oldest first.")
    has_dependants: bool = Field(default=False, description="Some waiting job named this one in dependsOn.")
    dependants_released: bool = Field(default=False, description="Its waiting jobs were decided after it ended.")
    dependencies_due: dt.datetime | None = Field(
        default=None, description="While Waiting: when its dependencies are to be checked again (None: settled)."
    )
    secrets_pending: bool = Field(
        default=False, description="Inline values are still being written to the vault: not launchable yet."
    )
    array: ArrayState | None = Field(default=None, description="An array job's tasks, as far as its record keeps them.")
    group_of: str | None = Field(default=None, description="For a group record: the array job whose tasks it runs.")
    task_runs: list[TaskRun] = Field(default_factory=list, description="For a group record: the tasks it runs.")
    absorbed: bool = Field(default=False, description="For a group record: its tasks' results are in its job.")
    trace: str | None = Field(
        default=None, description="The W3C traceparent of the job's submission: its launches and finishes go on in it."
    )
    owner: Actor | None = Field(default=None, description="Who submitted the job (or re-ran it, or its schedule).")
    team: str | None = Field(default=None, description="The team the job counts against, from its submitter.")
    cancelled_by: Actor | None = Field(default=None, description="Who asked for the job to be cancelled.")

    @model_validator(mode="after")
    def _no_secret_values(self) -> JobRecord:
        if self.spec is not None and any(ref.is_inline for _, ref in self.spec.secret_refs()):
            raise ValueError("a job record never holds a secret value; inline values go to the job-secrets vault")
        return self

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def next_attempt(self) -> int:
        return len(self.attempts) + 1

    @property
    def job_spec(self) -> JobSpec:
        """The spec of an accepted job; a rejected record has none, and nothing runs it."""
        if self.spec is None:
            raise IllegalTransition(f"job {self.id} was rejected: it has no spec to run")
        return self.spec

    def transition(self, to: Status, now: dt.datetime, **changes: Any) -> JobRecord:
        """A copy in status ``to``; raises :class:`IllegalTransition` if the lifecycle forbids it."""
        if to not in ALLOWED.get(self.status, frozenset()):
            raise IllegalTransition(f"job {self.id}: {self.status} cannot become {to}")
        return self.model_copy(update={"status": to, "updated_at": now, **changes})

    def with_attempt(self, attempt: Attempt) -> JobRecord:
        """A copy whose attempt of the same number is replaced by ``attempt`` (or appended)."""
        attempts = [a for a in self.attempts if a.number != attempt.number] + [attempt]
        attempts.sort(key=lambda a: a.number)
        return self.model_copy(update={"attempts": attempts, "cost": sum(a.cost or 0.0 for a in attempts)})

    def without_attempt(self, number: int) -> list[Attempt]:
        """The attempts but ``number``: an attempt that was claimed and never launched gives its number back."""
        return [a for a in self.attempts if a.number != number]


@dataclass(frozen=True)
class QueueEntry:
    """A queued job as the queue index lists it: what the scheduler needs without reading the record."""

    job_id: str
    priority: int
    submitted_at: dt.datetime
    not_before: dt.datetime | None
    demand: Demand
    team: str | None = None
    """The team the job counts against: each team's jobs are a queue of their own, which fair share chooses among."""


def queue_entry(record: JobRecord) -> QueueEntry | None:
    """The queue index entry a record has: one exactly while it is Queued and launchable, else ``None``. Pure.

    The store keeps this entry in the same atomic write as the record, so the index can never disagree with the
    record it indexes.
    """
    if record.status is not Status.QUEUED or record.secrets_pending or record.spec is None or record.array is not None:
        return None
    return QueueEntry(
        record.id, record.priority, record.submitted_at, record.not_before, Demand.of(record.spec), record.team
    )


class IntentKind(StrEnum):
    """What a writer set out to do for a job and has not finished."""

    LAUNCH = "launch"
    """An attempt was claimed and its group is not confirmed created."""
    SECRETS = "secrets"
    """The job was recorded and its inline values are not yet stored in the vault."""
    DEPENDENCIES = "dependencies"
    """A waiting job has dependencies not recorded yet, or is still to be checked for a cycle."""


@dataclass(frozen=True)
class Intent:
    """An unfinished intent as the intents index lists it, by the time it was recorded."""

    job_id: str
    kind: IntentKind
    since: dt.datetime


def intent_of(record: JobRecord) -> Intent | None:
    """The intent a record leaves open, or ``None``. Pure.

    The store keeps it in the intents index in the same write as the record, so a writer that stops between its
    intent and its effect leaves a trace the reconciler finds without scanning (:mod:`dispatcher.service.sweep`).
    """
    if record.status.terminal:
        return None
    if record.secrets_pending:
        return Intent(record.id, IntentKind.SECRETS, record.submitted_at)
    if record.status is Status.WAITING and record.dependencies_due is not None:
        return Intent(record.id, IntentKind.DEPENDENCIES, record.dependencies_due)
    attempt = record.current
    if record.status is Status.LAUNCHING and attempt is not None and attempt.launched_at is None:
        return Intent(record.id, IntentKind.LAUNCH, attempt.reserved_at)
    return None


def array_active(record: JobRecord) -> bool:
    """Whether the record is an array job still to be advanced (an ``array|`` row): its groups are packed,
    absorbed and stopped by the reconciler's run over these rows. Pure."""
    return (
        record.array is not None
        and not record.status.terminal
        and record.status is not Status.WAITING
        and not record.secrets_pending
    )


def group_rows(record: JobRecord) -> tuple[bool, bool]:
    """For a group record: whether it waits to be launched (a ``groupq|`` row: its job counts its groups in line)
    and whether it ended with its results not yet taken into its job (a ``groupend|`` row). Pure."""
    if record.group_of is None:
        return False, False
    return record.status is Status.QUEUED, record.status.terminal and not record.absorbed


def waits_of(record: JobRecord) -> list[str]:
    """The jobs a record waits on, each one row ``wait|{dependency}|{job}`` of the waits index. Pure."""
    if record.status is not Status.WAITING or record.spec is None:
        return []
    return [d.job for d in record.spec.depends_on]


def to_release(record: JobRecord) -> bool:
    """Whether the record has ended with waiting dependants not yet decided (a ``release|`` row). Pure."""
    return record.status.terminal and record.has_dependants and not record.dependants_released

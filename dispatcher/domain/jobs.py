"""The job record and its lifecycle: statuses, attempts, and the transitions allowed between them. Pure.

The record is the one source of truth about a job. It never holds a secret value: the spec it keeps is
the canonical dump, in which inline secret values are masked and references are only names.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dispatcher.domain.errors import DispatcherError, FieldError


class Status(StrEnum):
    """Where a job is in its lifecycle (DESIGN.md, "Job lifecycle")."""

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
    Status.QUEUED: frozenset({Status.QUEUED, Status.LAUNCHING, Status.CANCELLED, Status.FAILED}),
    Status.LAUNCHING: frozenset(
        {Status.QUEUED, Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED}
    ),
    Status.RUNNING: frozenset({Status.QUEUED, Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED}),
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
    outcome: Status | None = None
    reason: str | None = None
    containers: list[ContainerResult] = Field(default_factory=list)
    billed_seconds: float | None = None
    cost: float | None = None
    deleted: bool = False

    @property
    def exit_codes(self) -> dict[str, int | None]:
        return {c.name: c.exit_code for c in self.containers}


class JobRecord(_Record):
    """A job: its spec, its status, and every attempt."""

    id: str
    spec: dict[str, Any] = Field(description="The canonical spec: secret references by name, no values.")
    spec_hash: str
    status: Status
    priority: int = Field(default=1, description="Scheduling rank: 0 runs before 1.")
    submitted_at: dt.datetime
    updated_at: dt.datetime
    attempts: list[Attempt] = Field(default_factory=list)
    not_before: dt.datetime | None = Field(default=None, description="When a queued retry may launch.")
    reason: str | None = Field(default=None, description="Why the job is in its status, for a person.")
    errors: list[FieldError] = Field(default_factory=list, description="Field errors of a rejected job.")
    last_error: str | None = Field(default=None, description="The last transient launch error, if any.")
    cancel_requested: bool = False
    cost: float = 0.0
    currency: str = "USD"
    workspace: str | None = Field(default=None, description="The workspace share, when the job has one.")
    outputs: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def next_attempt(self) -> int:
        return len(self.attempts) + 1

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

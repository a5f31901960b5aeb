"""Lifecycle events as CloudEvents 1.0. Pure: building an event does no I/O.

An event's id is derived from the job, the attempt and the kind it reports, so a re-published event carries
the same id and consumers can deduplicate. Events never carry a secret: they are built only from the job
record, which holds none. They are written to the outbox in the same write as the transition they report,
and published from there (:mod:`dispatcher.service.outbox`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dispatcher.domain.identity import Actor
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.naming import job_links
from dispatcher.domain.tasks import TaskRecord

SOURCE = "/aci-dispatcher"
TYPE_PREFIX = "dispatcher.job."
SCHEDULE_TYPE_PREFIX = "dispatcher.schedule."
EVENT_KINDS = {
    Status.WAITING: "waiting",
    Status.QUEUED: "queued",
    Status.RUNNING: "started",
    Status.SUCCEEDED: "succeeded",
    Status.FAILED: "failed",
    Status.TIMED_OUT: "timedout",
    Status.CANCELLED: "cancelled",
    Status.REJECTED: "rejected",
}


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event, in its JSON form."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    subject: str
    time: dt.datetime
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``queued``, ``started``, ...: the type without its prefix."""
        return self.type.removeprefix(TYPE_PREFIX)

    @property
    def job_id(self) -> str:
        return str(self.data.get("jobId", ""))

    def to_json(self) -> str:
        return self.model_dump_json()


def event_id(instance: str, job_id: str, attempt: int, kind: str) -> str:
    """The stable id of the ``kind`` event of ``attempt`` of a job, so a re-published event deduplicates."""
    return hashlib.sha256(f"{instance}|{job_id}|{attempt}|{kind}".encode()).hexdigest()[:32]


def job_event(record: JobRecord, kind: str, *, instance: str) -> CloudEvent:
    """The CloudEvent of ``kind`` (queued, started, ...) for ``record`` as it is now."""
    attempt = record.current
    number = attempt.number if attempt else 0
    duration = None
    if attempt and attempt.started_at and attempt.finished_at:
        duration = (attempt.finished_at - attempt.started_at).total_seconds()
    data: dict[str, Any] = {
        "jobId": record.id,
        "attempt": number,
        "status": record.status.value,
        "reason": record.reason,
        "exitCodes": attempt.exit_codes if attempt else {},
        "durationSeconds": duration,
        "cost": round(record.cost, 6),
        "currency": record.currency,
        "labels": record.labels,
        "links": job_links(record.id),
    }
    if record.spec is not None and record.spec.depends_on:
        data["dependsOn"] = [d.model_dump(by_alias=True) for d in record.spec.depends_on]
    if record.rerun_of:
        data["rerunOf"] = record.rerun_of
    if record.team is not None:
        data["team"] = record.team
    if record.owner is not None:
        data["owner"] = record.owner.model_dump()
    actor = _actor(record)
    if actor is not None:
        data["actor"] = actor.model_dump()
    if record.errors:
        data["errors"] = [{"loc": e.loc, "message": e.message} for e in record.errors]
    return CloudEvent(
        id=event_id(instance, record.id, number, kind),
        source=f"{SOURCE}/{instance}",
        type=TYPE_PREFIX + kind,
        subject=f"jobs/{record.id}",
        time=record.updated_at,
        data=data,
    )


def _actor(record: JobRecord) -> Actor | None:
    """Who caused the change the event reports: whoever asked for a cancel, the submitter of a job entering the
    queue; ``None`` when the dispatcher itself did it (a launch, an exit, a timeout)."""
    if record.status is Status.CANCELLED and record.cancelled_by is not None:
        return record.cancelled_by
    if record.status in (Status.QUEUED, Status.WAITING, Status.REJECTED) and not record.attempts:
        return record.owner
    return None


def status_event(record: JobRecord, *, instance: str) -> CloudEvent:
    """The event that reports the record's current status."""
    return job_event(record, EVENT_KINDS[record.status], instance=instance)


ANNOUNCED = frozenset({Status.RUNNING, *EVENT_KINDS} - {Status.QUEUED, Status.LAUNCHING, Status.WAITING})


def transition_events(old: JobRecord | None, new: JobRecord, *, instance: str) -> list[CloudEvent]:
    """The events a write of ``new`` over ``old`` (``None`` for a new record) announces.

    ``queued`` once, when the job becomes launchable; ``started`` when it is seen running; one terminal event.
    A retry's return to the queue announces nothing: its attempt's outcome is in the next event.
    """
    if new.group_of is not None:
        return []  # a group of an array job: its job reports, with task events, not one per group
    launchable = new.status is Status.QUEUED and not new.secrets_pending
    if launchable and (old is None or old.secrets_pending or old.status is Status.WAITING):
        return [status_event(new, instance=instance)]
    if new.status is Status.WAITING and not new.secrets_pending and (old is None or old.secrets_pending):
        return [status_event(new, instance=instance)]
    if new.status in ANNOUNCED and (old is None or old.status is not new.status):
        return [status_event(new, instance=instance)]
    return []


def schedule_event(
    name: str, kind: str, due: dt.datetime, job_id: str | None, now: dt.datetime, *, instance: str, **data: Any
) -> CloudEvent:
    """``schedule.fired`` or ``schedule.skipped`` for one due time of schedule ``name`` (a manual trigger's due
    time is when it was asked); its id is stable per schedule, due time and kind."""
    moment = due.astimezone(dt.UTC).isoformat()
    return CloudEvent(
        id=hashlib.sha256(f"{instance}|schedule|{name}|{moment}|{job_id}|{kind}".encode()).hexdigest()[:32],
        source=f"{SOURCE}/{instance}",
        type=SCHEDULE_TYPE_PREFIX + kind,
        subject=f"schedules/{name}",
        time=now,
        data={"schedule": name, "due": moment, "jobId": job_id, **data},
    )


def progress_event(record: JobRecord, *, instance: str) -> CloudEvent:
    """``tasks.progress`` of an array job: its task counts as they are now; one id per count of ended tasks."""
    state = record.array
    counts = state.counts() if state is not None else {}
    ended = state.ended if state is not None else 0
    return CloudEvent(
        id=event_id(instance, record.id, ended, "tasks.progress"),
        source=f"{SOURCE}/{instance}",
        type=TYPE_PREFIX + "tasks.progress",
        subject=f"jobs/{record.id}",
        time=record.updated_at,
        data={"jobId": record.id, "status": record.status.value, "tasks": counts, "links": job_links(record.id)},
    )


def task_failed_event(record: JobRecord, task: TaskRecord, *, instance: str) -> CloudEvent:
    """``task.failed``: one task of an array job failed for good (its retries used up, or it timed out)."""
    return CloudEvent(
        id=event_id(instance, f"{record.id}/{task.index}", task.runs, "task.failed"),
        source=f"{SOURCE}/{instance}",
        type=TYPE_PREFIX + "task.failed",
        subject=f"jobs/{record.id}/tasks/{task.index}",
        time=task.finished_at or record.updated_at,
        data={
            "jobId": record.id,
            "task": task.index,
            "status": task.status.value,
            "exitCode": task.exit_code,
            "attempts": task.attempts,
            "reason": task.reason,
            "labels": record.labels,
            "links": job_links(record.id),
        },
    )

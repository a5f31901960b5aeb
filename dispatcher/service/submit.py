"""Intake: a submitted job becomes a durable record, then gets a first launch try.

The Service Bus trigger calls :func:`accept`. It raises only while the record is not yet durable, so that
Service Bus redelivers; an invalid job is recorded as Rejected and returns normally, so its message
completes and never enters the retry loop.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from dispatcher.adapters.azure.mapping import workspace_share
from dispatcher.domain.errors import FieldError, InvalidJob, JobError
from dispatcher.domain.events import job_event
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.placement import Demand
from dispatcher.domain.policy import apply_policy
from dispatcher.domain.spec import JobSpec, load_document, validate_job
from dispatcher.ports import AlreadyExists, Versioned
from dispatcher.service.launch import LaunchResult, Outcome, try_launch
from dispatcher.service.services import Services

log = logging.getLogger(__name__)

# Table storage keys may not hold these; an id that does is kept only as a hash.
_UNSAFE_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
SCHEDULING_RANK = {"Regular": 0, "Spot": 1}
LOOKAHEAD = 10  # queue entries read to find whether an older due job is waiting


@dataclass(frozen=True)
class IntakeResult:
    """What intake did with one submission."""

    job_id: str
    status: Status
    duplicate: bool = False
    launch: LaunchResult | None = None


def _record_key(candidate: str | None, body: bytes) -> str:
    """A usable key for a rejected submission: its own id when safe, else a hash of what identifies it."""
    if candidate and len(candidate) <= 200 and not _UNSAFE_KEY.search(candidate):
        return candidate
    digest = hashlib.sha256((candidate or "").encode() + b"\0" + body).hexdigest()[:24]
    return f"rejected-{digest}"


def _claimed_id(data: Any) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return str(data["id"])
    return None


def new_record(spec: JobSpec, job_id: str, services: Services) -> JobRecord:
    """The Queued record of an accepted job."""
    now = services.clock.now()
    return JobRecord(
        id=job_id,
        spec=spec.canonical(),
        spec_hash=spec.spec_hash(),
        status=Status.QUEUED,
        priority=SCHEDULING_RANK[spec.priority],
        submitted_at=now,
        updated_at=now,
        labels=dict(spec.labels),
        workspace=workspace_share(job_id) if spec.workspace_volume else None,
        currency=services.settings.prices.currency,
    )


def check(data: Any, message_id: str | None, services: Services) -> JobSpec:
    """Validate a submission and apply policy; the job id is the spec's own, else the message id."""
    spec = validate_job(data)
    if spec.id is None:
        if not message_id:
            raise InvalidJob([FieldError("id", "the job has no id and its message no message_id")])
        try:
            spec = validate_job({**data, "id": message_id})
        except InvalidJob as exc:
            raise InvalidJob(
                [FieldError(e.loc, f"(from the message_id) {e.message}") if e.loc == "id" else e for e in exc.errors]
            ) from None
    return apply_policy(spec, services.settings)


def accept(services: Services, body: bytes, message_id: str | None) -> IntakeResult:
    """Record one submitted job durably, then try to launch it."""
    try:
        data = load_document(body)
        spec = check(data, message_id, services)
    except JobError as exc:
        return _reject(services, body, message_id, exc)
    assert spec.id is not None  # check() always returns a spec with an id
    record = new_record(spec, spec.id, services)
    try:
        inserted = services.store.insert(record)
    except AlreadyExists:
        return _existing(services, record, spec)
    services.store.enqueue(record, Demand.of(spec))
    services.events.publish(job_event(record, "queued", instance=services.settings.instance))
    return IntakeResult(record.id, Status.QUEUED, launch=_launch_if_first(services, record.id, inserted, spec))


def _launch_if_first(
    services: Services, job_id: str, known: Versioned[JobRecord] | None = None, spec: JobSpec | None = None
) -> LaunchResult:
    """Launch the job now if no older due job is waiting; otherwise leave it to the scheduler, which keeps order.

    Without this check a new arrival could take capacity that ACI's create window frees between two
    reconciler runs ahead of jobs that have waited longer.
    """
    now = services.clock.now()
    for entry in services.store.queued(LOOKAHEAD):
        if entry.job_id == job_id:
            return try_launch(services, job_id, known=known, spec=spec)
        if entry.not_before is None or entry.not_before <= now:
            break
    return LaunchResult(Outcome.IN_LINE, "older jobs are waiting; the scheduler launches in order")


def _existing(services: Services, record: JobRecord, spec: JobSpec) -> IntakeResult:
    """A second submission of an id: the same spec is the same job; a different one is a recorded conflict."""
    found = services.store.get(record.id)
    if found is None:  # purged between the insert and the read: treat as new on redelivery
        raise RuntimeError(f"job {record.id} vanished during intake; the message will be redelivered")
    original = found.value
    if original.spec_hash == record.spec_hash:
        if original.status is Status.QUEUED:
            # a crash may have come between the record and its index entry (the same spec: the same demand)
            services.store.enqueue(original, Demand.of(spec))
            return IntakeResult(
                original.id, original.status, duplicate=True, launch=_launch_if_first(services, original.id)
            )
        return IntakeResult(original.id, original.status, duplicate=True)
    reason = (
        f"a job with id {record.id!r} already exists with a different spec "
        f"(hash {original.spec_hash[:12]}, this one {record.spec_hash[:12]}); the original is unchanged"
    )
    conflict = record.model_copy(
        update={"status": Status.REJECTED, "reason": reason, "errors": [FieldError("id", reason)]}
    )
    services.store.insert_conflict(conflict)
    services.events.publish(job_event(conflict, "rejected", instance=services.settings.instance))
    log.warning("rejected a conflicting submission of job %s", record.id)
    return IntakeResult(record.id, Status.REJECTED, duplicate=True)


def _reject(services: Services, body: bytes, message_id: str | None, exc: JobError) -> IntakeResult:
    """Record an invalid or policy-violating submission as Rejected, with every field error."""
    data: Any = None
    try:
        data = load_document(body)
    except InvalidJob:
        data = None
    key = _record_key(_claimed_id(data) or message_id, body)
    now = services.clock.now()
    kind = "breaks the operator's policy" if exc.kind == "policy" else "is not a valid job spec"
    record = JobRecord(
        id=key,
        spec={},
        spec_hash=hashlib.sha256(body).hexdigest(),
        status=Status.REJECTED,
        submitted_at=now,
        updated_at=now,
        reason=f"the job {kind}: {exc}",
        errors=exc.errors,
    )
    try:
        services.store.insert(record)
    except AlreadyExists:
        existing = services.store.get(key)
        if existing is not None and existing.value.spec_hash == record.spec_hash:
            return IntakeResult(key, Status.REJECTED, duplicate=True)  # a redelivery of the same rejection
        services.store.insert_conflict(record)
    services.events.publish(job_event(record, "rejected", instance=services.settings.instance))
    log.info("rejected job %s: %s", key, exc)
    return IntakeResult(key, Status.REJECTED)

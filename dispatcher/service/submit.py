"""Submission: one path for the HTTP API and the Service Bus trigger, from a document to a durable record.

A submitted job becomes one record, written once with its queue entry and its ``queued`` event
(:func:`record_job`). An HTTP submission is recorded first and then enqueued as a reference to the job (its id),
never as its body, so no inline value sits in the queue or its dead-letter queue; intake recognises such a message
as already recorded (:func:`accept_message`). An inline secret value, where policy allows one, is written to the
job-secrets vault under a name the record reserved first, and the record then names it by version: the record
never holds the value, and a crash between the two is finished by the next delivery of the same submission.

Intake raises only while the record is not yet durable, so that Service Bus redelivers; an invalid job is recorded
as Rejected and returns normally, so its message completes and never enters the retry loop.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets as random
from dataclasses import dataclass, field
from typing import Any

from dispatcher.core.scheduling import (
    can_ever_fit,
    is_due,
    order_key,
    place,
    priority_rank,
    queues,
)
from dispatcher.domain.document import load_document, validate_job
from dispatcher.domain.errors import AlreadyExists, CloudError, Conflict, FieldError, InvalidJob, JobError, bounded
from dispatcher.domain.events import CloudEvent, status_event
from dispatcher.domain.identity import TEAM_LABEL, Actor, queue_actor
from dispatcher.domain.jobs import JobRecord, QueueEntry, Status
from dispatcher.domain.naming import RECORD_KEY, inline_secret_name, workspace_share
from dispatcher.domain.placement import Demand
from dispatcher.domain.policy import apply_policy
from dispatcher.domain.secrets import inline_refs, with_references
from dispatcher.domain.spec import JobSpec, SecretRef
from dispatcher.domain.tasks import ArrayState
from dispatcher.ports import Versioned
from dispatcher.service.arrays import MAX_NEW_GROUPS, advance
from dispatcher.service.dependencies import check as check_dependencies
from dispatcher.service.launch import Capacity, LaunchResult, Outcome, try_launch, why_not
from dispatcher.service.outbox import publish
from dispatcher.service.records import commit, create, insert
from dispatcher.service.retry import retrying
from dispatcher.service.services import Services
from dispatcher.service.telemetry import current_traceparent, span, trace_properties
from dispatcher.service.wake import AFTER_LAUNCH_SECONDS, wake_soon

log = logging.getLogger(__name__)

REFERENCE = "application/vnd.aci-dispatcher.job-ref+json"
"""The content type of a message that refers to an already recorded job instead of carrying a spec."""
LOOKAHEAD = 10  # queue entries read to find whether an older due job is waiting


@dataclass(frozen=True)
class Submitted:
    """What a submission came to.

    ``outcome`` is ``recorded`` (a new job), ``duplicate`` (the same job again), ``conflict`` (the id is taken by a
    different spec), ``rejected`` (invalid, or against policy) or ``reference`` (a message for a recorded job).
    """

    job_id: str
    status: Status
    outcome: str
    record: JobRecord | None = None
    errors: list[FieldError] = field(default_factory=list)
    launch: LaunchResult | None = None
    pending: list[CloudEvent] = field(default_factory=list)
    """Events written with the record and not published yet (the outbox's next drain publishes them)."""

    @property
    def duplicate(self) -> bool:
        return self.outcome in ("duplicate", "conflict")


def check(data: Any, fallback_id: str | None, services: Services, team: str | None = None) -> JobSpec:
    """Validate a submission and apply policy for ``team``; the job id is the spec's own, else ``fallback_id``."""
    spec = validate_job(data)
    if spec.id is None:
        if not fallback_id:
            raise InvalidJob([FieldError("id", "the job has no id and its message no message_id")])
        try:
            spec = validate_job({**data, "id": fallback_id})
        except InvalidJob as exc:
            raise InvalidJob(
                [FieldError(e.loc, f"(from the message_id) {e.message}") if e.loc == "id" else e for e in exc.errors]
            ) from None
    return apply_policy(spec, services.settings, team)


def new_record(
    spec: JobSpec, services: Services, rerun_of: str | None = None, *, owner: Actor | None = None
) -> JobRecord:
    """The record of an accepted job: Queued, or Waiting when it depends on other jobs; either way not launchable
    until its inline values, if it has some, are stored.

    Inline values are replaced by references to names in the job-secrets vault, random per job so that a name is
    never reused; the record lists them to delete them with the job.
    """
    assert spec.id is not None  # check() always returns a spec with an id
    now = services.clock.now()
    suffix = random.token_hex(4)
    names = {path: inline_secret_name(spec.id, suffix, index) for index, (path, _) in enumerate(inline_refs(spec))}
    return JobRecord(
        id=spec.id,
        spec=with_references(spec, {path: SecretRef(secret=name) for path, name in names.items()}),
        spec_hash=spec.spec_hash(),
        status=Status.WAITING if spec.depends_on else Status.QUEUED,
        priority=priority_rank(spec),
        submitted_at=now,
        updated_at=now,
        labels=dict(spec.labels),
        workspace=workspace_share(spec.id) if spec.workspace_volume else None,
        currency=services.settings.prices.currency,
        owned_secrets=list(names.values()),
        secrets_pending=bool(names),
        rerun_of=rerun_of,
        dependencies_due=now if spec.depends_on else None,
        array=ArrayState(count=spec.tasks.size) if spec.tasks is not None else None,
        trace=current_traceparent(),
        owner=owner,
        team=spec.labels.get(TEAM_LABEL),
    )


def _store_inline(services: Services, found: Versioned[JobRecord], submitted: JobSpec) -> Versioned[JobRecord]:
    """Write the submission's inline values under the names the record reserved, then record their versions.

    Setting a name again only adds a version, so a repeat after a crash converges; the record keeps the latest.
    """
    record = found.value
    stored: dict[str, SecretRef] = {}
    for (path, ref), name in zip(inline_refs(submitted), record.owned_secrets, strict=True):
        assert ref.value is not None
        version = services.job_secrets.set(name, ref.value.get_secret_value(), tags={"dispatcher-job": record.id})
        stored[path] = SecretRef(secret=name, version=version)
    ready = record.model_copy(update={"spec": with_references(record.job_spec, stored), "secrets_pending": False})
    return commit(services, found, ready)


def record_job(
    services: Services,
    spec: JobSpec,
    rerun_of: str | None = None,
    *,
    owner: Actor | None = None,
    publish_now: bool = True,
) -> Submitted:
    """Record an accepted spec once: a new job, the same job again, or a conflict with the job that has its id.
    ``owner`` submitted it; its team is the ``team`` label policy set (:func:`~dispatcher.domain.policy.apply_policy`).
    Without ``publish_now`` a new job's events stay in the outbox, listed in :attr:`Submitted.pending`.

    A job with dependencies is then registered with them (:func:`~dispatcher.service.dependencies.check`); should
    that fail, its intent has the sweep do it.
    """
    record = new_record(spec, services, rerun_of, owner=owner)
    if record.array is not None:
        services.cursors.arrays = True  # this process's next runs advance it (Cursors.arrays)
    pending: list[CloudEvent] = []
    try:
        found, pending = insert(services, record)
        if publish_now:
            publish(services, pending)
            pending = []
        outcome = "recorded"
    except AlreadyExists:
        existing = services.records.get(record.id)
        if existing is None:  # purged between the insert and the read: a redelivery will record it anew
            raise CloudError(f"job {record.id} vanished during intake", transient=True) from None
        if existing.value.spec_hash != record.spec_hash:
            return _conflict(services, record, existing.value)
        found, outcome = existing, "duplicate"
    if found.value.secrets_pending:
        try:
            found = _store_inline(services, found, spec)
        except Conflict:
            found = services.records.get(record.id) or found  # cancelled meanwhile, or a concurrent delivery did it
    if found.value.status is Status.WAITING and found.value.dependencies_due is not None:
        try:
            check_dependencies(services, found)
            found = services.records.get(record.id) or found
        except Exception as exc:  # the intent stays open: the sweep registers it
            log.warning("job %s recorded; registering its dependencies failed: %s", record.id, exc)
    return Submitted(found.value.id, found.value.status, outcome, found.value, pending=pending)


def _conflict(services: Services, record: JobRecord, original: JobRecord) -> Submitted:
    """A second submission of an id with a different spec: kept beside the original, which is unchanged."""
    reason = (
        f"a job with id {record.id!r} already exists with a different spec "
        f"(hash {original.spec_hash[:12]}, this one {record.spec_hash[:12]}); the original is unchanged"
    )
    conflict = record.model_copy(
        update={
            "status": Status.REJECTED,
            "spec": None,
            "reason": reason,
            "errors": [FieldError("id", reason)],
            "owned_secrets": [],
            "secrets_pending": False,
        }
    )
    event = status_event(conflict, instance=services.settings.instance)
    services.records.add_conflict(conflict, [event])
    publish(services, [event])
    log.warning("rejected a conflicting submission of job %s", record.id)
    return Submitted(record.id, Status.REJECTED, "conflict", original, conflict.errors)


def _record_key(candidate: str | None, body: bytes) -> tuple[str, str | None]:
    """The key of a rejected submission, and the id it claimed when that id cannot be a key.

    A claimed id that is a usable record key is kept; anything else (``pool:local``, a NUL, 300 characters) is
    recorded under a hash of what identifies the submission, with the claim kept for people to read.
    """
    if candidate and RECORD_KEY.match(candidate):
        return candidate, None
    digest = hashlib.sha256((candidate or "").encode(errors="replace") + b"\0" + body).hexdigest()[:24]
    return f"rejected-{digest}", ascii(candidate)[:200] if candidate else None


def _claimed_id(data: Any) -> str | None:
    return data["id"] if isinstance(data, dict) and isinstance(data.get("id"), str) else None


def reject(
    services: Services,
    body: bytes,
    data: Any,
    message_id: str | None,
    exc: JobError,
    *,
    owner: Actor | None = None,
    team: str | None = None,
) -> Submitted:
    """Record an invalid or policy-violating submission as Rejected, with every field error, in ``team``."""
    key, claimed = _record_key(_claimed_id(data) or message_id, body)
    now = services.clock.now()
    kind = "breaks the operator's policy" if exc.kind == "policy" else "is not a valid job spec"
    record = JobRecord(
        id=key,
        spec=None,
        spec_hash=hashlib.sha256(body).hexdigest(),
        status=Status.REJECTED,
        submitted_at=now,
        updated_at=now,
        reason=f"the job {kind}: {exc}",
        errors=bounded(exc.errors),
        claimed_id=claimed,
        owner=owner,
        team=team,
    )
    try:
        create(services, record)
    except AlreadyExists:
        existing = services.records.get(key)
        if existing is not None and existing.value.spec_hash == record.spec_hash:
            return Submitted(key, Status.REJECTED, "duplicate", existing.value, exc.errors)
        event = status_event(record, instance=services.settings.instance)
        services.records.add_conflict(record, [event])
        publish(services, [event])
    log.info("rejected job %s: %s", key, exc)
    return Submitted(key, Status.REJECTED, "rejected", record, exc.errors)


def reference(job_id: str) -> bytes:
    """The body of a message that refers to recorded job ``job_id``."""
    return json.dumps({"jobRef": job_id}).encode()


def _referenced(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    job_id = data.get("jobRef") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) and RECORD_KEY.match(job_id) else None


def accept_message(
    services: Services,
    body: bytes,
    message_id: str | None,
    content_type: str | None,
    job_id: str | None = None,
    *,
    traceparent: str | None = None,
) -> Submitted:
    """Intake of one Service Bus message: a job document, or a reference to a job the HTTP API recorded.

    A spec without an id is the job ``job_id`` (the message's ``dispatcher-job-id`` property, which a replayed
    dead letter carries), else the job named by the message id. ``traceparent`` (the message's) continues the
    sender's trace; without one, intake starts the job's trace.

    Recording is retried through transient errors for ``intake_retry_seconds`` (:mod:`.retry`): only an outage
    longer than that raises, and the message goes back to the queue. The launch that follows never raises.
    """
    attributes = {"messaging.message.id": message_id or ""}
    with span("dispatcher.intake", parent=traceparent, attributes=attributes) as current:
        submitted = _intake(services, body, message_id, content_type, job_id)
        current.set_attribute("dispatcher.job_id", submitted.job_id)
        current.set_attribute("dispatcher.outcome", submitted.outcome)
        return submitted


def _intake(
    services: Services, body: bytes, message_id: str | None, content_type: str | None, job_id: str | None
) -> Submitted:
    if (content_type or "").split(";")[0].strip().lower() == REFERENCE:
        submitted = retrying(
            services.clock,
            services.settings.intake_retry_seconds,
            f"read the job a reference message ({message_id}) names",
            lambda: _referenced_job(services, body, message_id),
        )
    else:
        submitted = retrying(
            services.clock,
            services.settings.intake_retry_seconds,
            f"record the submission in message {message_id}",
            lambda: _record_message(services, body, job_id or message_id),
        )
    if submitted.outcome in ("recorded", "duplicate", "reference") and submitted.record is not None:
        return _with_launch(services, submitted)
    return submitted


def _record_message(services: Services, body: bytes, message_id: str | None) -> Submitted:
    """A submission through Service Bus carries no verified caller: it counts against the team the queue is
    attributed to (whoever may send there is trusted as that team), or no team."""
    queue = services.settings.jobs_queue
    team, owner = services.settings.queue_teams.get(queue), queue_actor(queue)
    data: Any = None
    try:
        data = load_document(body)
        spec = check(data, message_id, services, team)
    except JobError as exc:
        return reject(services, body, data, message_id, exc, owner=owner, team=team)
    return record_job(services, spec, owner=owner, publish_now=False)  # _with_launch publishes, if it launches


def _referenced_job(services: Services, body: bytes, message_id: str | None) -> Submitted:
    job_id = _referenced(body)
    found = services.records.get(job_id) if job_id else None
    if found is None:
        log.warning("a job reference message (%s) names no recorded job; nothing to do", message_id)
        return Submitted(job_id or "", Status.REJECTED, "reference")
    return Submitted(found.value.id, found.value.status, "reference", found.value)


def _with_launch(services: Services, submitted: Submitted) -> Submitted:
    """Try a first launch of a recorded job; any failure is logged, since the record is durable and the scheduler
    launches it anyway.

    When no pool has room for it now but one could (read from the pools' ledger rows, one point read each, or as
    this process read them within a reconciler interval: :class:`~dispatcher.service.services.RecentStates`), that
    is all: its ``queued`` event stays in the outbox for the reconciler's next drain, and the queue is not read.
    Otherwise the job's pending events are published first, so that they precede those of its launch.
    """
    try:
        record = submitted.record
        capacity = Capacity(services)
        if record is not None and record.array is None and record.status is Status.QUEUED:
            now, demand = services.clock.now(), Demand.of(record.job_spec)
            states = services.recent_states.within(services.settings.reconcile_interval_seconds, now.timestamp())
            if states is None or place(demand, states, now) is not None:
                states = capacity.states()  # room is only ever seen in states read now
                services.recent_states.keep(states, now.timestamp())
            if place(demand, states, now) is None and can_ever_fit(demand, services.settings.pools):
                waits = LaunchResult(Outcome.NO_CAPACITY, why_not(demand, states, now))
                return Submitted(submitted.job_id, submitted.status, submitted.outcome, record, launch=waits)
        publish(services, submitted.pending)
        if record is not None and record.array is not None:
            result = _first_groups(services, submitted.job_id)
        else:
            result = launch_if_first(
                services, submitted.job_id, record.team if record is not None else None, capacity=capacity
            )
    except Exception as exc:  # the job is recorded and queued: the next reconciler run launches it
        log.warning("job %s recorded; its first launch try failed: %s", submitted.job_id, exc)
        result = LaunchResult(Outcome.REQUEUED, str(exc))
    if result.outcome in (Outcome.LAUNCHED, Outcome.REQUEUED):  # to see it Running soon, or to launch it soon
        wake_soon(services, AFTER_LAUNCH_SECONDS)
    return Submitted(submitted.job_id, submitted.status, submitted.outcome, submitted.record, launch=result)


def _first_groups(services: Services, job_id: str) -> LaunchResult:
    """Pack an array job's first groups now, and launch those that are first in line."""
    capacity = Capacity(services)
    advance(services, job_id, capacity)
    result = LaunchResult(Outcome.IN_LINE, "the array job's groups are packed; the scheduler launches them in order")
    found = services.records.get(job_id)
    team = found.value.team if found is not None else None
    for group in services.records.array_groups(job_id, ended=False, limit=MAX_NEW_GROUPS):
        launched = launch_if_first(services, group, team)
        if launched.outcome is not Outcome.LAUNCHED:
            break
        result = launched
    return result


def launch_if_first(
    services: Services, job_id: str, team: str | None = None, *, capacity: Capacity | None = None
) -> LaunchResult:
    """Launch the job now if no older due job is waiting, in its team's queue or at the head of another; otherwise
    leave it to the scheduler, which keeps order and fair share.

    Without this check a new arrival could take capacity that ACI's create window frees between two reconciler
    runs ahead of jobs that have waited longer.
    """
    now = services.clock.now()
    for entry in services.queue.queued(LOOKAHEAD, team):
        if entry.job_id == job_id:
            if _older_elsewhere(services, entry, team, now):
                break
            found = services.records.get(job_id)
            if found is None:
                break
            return try_launch(services, found, capacity or Capacity(services))
        if is_due(entry, now):
            break
    return LaunchResult(Outcome.IN_LINE, "older jobs are waiting; the scheduler launches in order")


def _older_elsewhere(services: Services, mine: QueueEntry, team: str | None, now: dt.datetime) -> bool:
    """Whether another queue's head is a due job submitted before ``mine`` (one read per other queue)."""
    others = [q for q in queues(services.settings) if q != team]
    return any(
        is_due(head, now) and order_key(head) < order_key(mine)
        for other in others
        for head in services.queue.queued(1, other)
    )


def submit_http(
    services: Services, body: bytes, generated_id: str, owner: Actor | None = None, team: str | None = None
) -> Submitted:
    """``POST /api/jobs`` by ``owner`` for ``team``: validate and apply policy now (raising :class:`JobError`),
    record the job, then enqueue a reference to it. The job is durable before the message: if the message is lost,
    the scheduler launches it."""
    with span("dispatcher.submit") as current:
        spec = check(load_document(body), generated_id, services, team)
        submitted = record_job(services, spec, owner=owner)
        current.set_attribute("dispatcher.job_id", submitted.job_id)
        current.set_attribute("dispatcher.outcome", submitted.outcome)
        if submitted.outcome != "conflict":
            enqueue(services, submitted.job_id, submitted.record.trace if submitted.record else None)
        return submitted


def enqueue(services: Services, job_id: str, trace: str | None) -> None:
    """Send the jobs queue a reference to recorded job ``job_id``, so intake tries its first launch now, in the job's
    ``trace``; best effort, since the job is durable and indexed and the scheduler launches it anyway."""
    try:
        services.jobs_queue.send(reference(job_id), job_id, REFERENCE, trace_properties(trace))
    except Exception as exc:  # durable and indexed: the reconciler launches it anyway
        log.warning("job %s recorded but not enqueued (%s); the scheduler will launch it", job_id, exc)

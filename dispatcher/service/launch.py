"""Launch the next attempt of a queued job: admission, secrets, workspace, and the PUT of its group.

The order makes every crash recoverable and every race converge:

1. The record moves Queued → Launching with the new attempt (group name and pool), conditional on its
   ETag. Of two launchers of one job, exactly one wins; the other stops.
2. Capacity is reserved in that pool, atomically with the pool's counters; a lost race re-reads the pool.
3. Secrets are resolved and the workspace share is ensured.
4. The group is PUT under its deterministic name, so a repeated PUT converges on the same group.
5. The attempt is marked launched and the queue index entry removed.

A crash after 1 leaves a Launching attempt that was never launched; the reconciler launches it again
through :func:`launch_attempt`, under the same name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from dispatcher.adapters.azure.mapping import build_container_group, group_name, required_secrets, workspace_share
from dispatcher.domain.errors import CloudError, InvalidJob, SecretNotFound
from dispatcher.domain.events import EVENT_TYPES, job_event
from dispatcher.domain.jobs import Attempt, JobRecord, Status
from dispatcher.domain.placement import Demand, PoolState, Reservation, can_ever_fit, place, refusals
from dispatcher.domain.spec import JobSpec, validate_job
from dispatcher.ports import Conflict, Versioned
from dispatcher.service.services import Services
from dispatcher.settings import Pool

log = logging.getLogger(__name__)

QUOTA_REACHED = "ContainerGroupQuotaReached"
MAX_RACES = 8


class Outcome(StrEnum):
    """What a launch try ended in."""

    LAUNCHED = "launched"
    NO_CAPACITY = "no-capacity"
    FILLED_UP = "filled-up"  # a pool had room, but another launcher took it first
    NOT_DUE = "not-due"
    IN_LINE = "in-line"
    REQUEUED = "requeued"
    FAILED = "failed"
    NOT_QUEUED = "not-queued"


@dataclass(frozen=True)
class LaunchResult:
    outcome: Outcome
    detail: str = ""
    state: PoolState | None = None
    """After a launch, the pool's state as its reservation wrote it, so that a caller launching more jobs need not
    read it again."""


def _pool(services: Services, name: str) -> Pool:
    pool = services.settings.pool(name)
    if pool is not None:
        return pool
    raise CloudError(f"pool {name!r} is not configured", code="PoolNotConfigured", transient=False)


def spec_of(record: JobRecord) -> JobSpec:
    """The spec a record was accepted with."""
    return validate_job(record.spec)


def try_launch(
    services: Services,
    job_id: str,
    *,
    known: Versioned[JobRecord] | None = None,
    spec: JobSpec | None = None,
    states: Sequence[PoolState] | None = None,
) -> LaunchResult:
    """Launch the next attempt of queued job ``job_id`` if a pool has room now. Safe to call concurrently.

    ``known`` is the record as the caller just wrote it (and ``spec`` its spec), and ``states`` the pools'
    states as the caller just read them; each saves reads. A lost race re-reads both.
    """
    store, clock = services.store, services.clock
    for _ in range(MAX_RACES):
        found = known or store.get(job_id)
        known = None
        if found is None:
            return LaunchResult(Outcome.NOT_QUEUED, "no such job")
        record = found.value
        if record.status is not Status.QUEUED:
            if not record.status.launched:
                store.dequeue(record)
            return LaunchResult(Outcome.NOT_QUEUED, record.status.value)
        now = clock.now()
        if record.not_before is not None and now < record.not_before:
            return LaunchResult(Outcome.NOT_DUE, f"retry due at {record.not_before.isoformat()}")
        spec = spec or spec_of(record)
        demand = Demand.of(spec)
        pools = services.settings.pools
        states = states or [store.pool_state(p) for p in pools]
        if not can_ever_fit(demand, pools):
            reason = "no capacity pool can ever run this job: " + (
                "; ".join(f"{p}: {r}" for p, r in refusals(demand, states, now).items()) or "no pools are configured"
            )
            _finish(services, found, Status.FAILED, reason)
            return LaunchResult(Outcome.FAILED, reason)
        chosen = place(demand, states, now)
        if chosen is None:
            detail = "; ".join(f"{p}: {r}" for p, r in refusals(demand, states, now).items())
            return LaunchResult(Outcome.NO_CAPACITY, detail)
        number = record.next_attempt
        attempt = Attempt(
            number=number,
            group=group_name(record.id, number),
            pool=chosen.pool.name,
            location=chosen.pool.location,
            subscription_id=chosen.pool.subscription_id,
            resource_group=chosen.pool.resource_group,
            cores=demand.cores,
            memory_gb=demand.memory_gb,
            reserved_at=now,
        )
        claimed = record.with_attempt(attempt).transition(Status.LAUNCHING, now, not_before=None)
        try:
            claimed_version = store.replace(claimed, found.etag)
        except Conflict:
            states = None
            continue  # another launcher, a cancel or a redelivery changed the job: re-read and re-decide
        reservation = _reservation(services, record.id, attempt, spec)
        reserved, after = _reserve(services, chosen.pool, reservation, demand, chosen)
        if not reserved:
            _unclaim(services, claimed_version, demand, None)
            return LaunchResult(Outcome.FILLED_UP, f"pool {chosen.pool.name} filled up")
        result = launch_attempt(services, claimed_version, spec)
        return dataclasses.replace(result, state=after) if result.outcome is Outcome.LAUNCHED else result
    return LaunchResult(Outcome.REQUEUED, "too many concurrent changes; the scheduler will retry")


def _reservation(
    services: Services, job_id: str, attempt: Attempt, spec: JobSpec, *, cancel_requested: bool = False
) -> Reservation:
    return Reservation(
        group=attempt.group,
        job_id=job_id,
        attempt=attempt.number,
        cores=attempt.cores,
        created_at=attempt.reserved_at,
        spread_group=spec.placement.spread_group,
        timeout_seconds=services.settings.timeout_for(spec.timeout_seconds),
        cancel_requested=cancel_requested,
    )


def resume(services: Services, job_id: str) -> LaunchResult:
    """Finish what a stopped launcher left: a stale claimed attempt is launched, a stale index entry dropped."""
    found = services.store.get(job_id)
    if found is None:
        return LaunchResult(Outcome.NOT_QUEUED, "no such job")
    record = found.value
    attempt = record.current
    if record.status is Status.QUEUED:
        return LaunchResult(Outcome.NOT_QUEUED, "queued")
    if record.status is not Status.LAUNCHING or attempt is None or attempt.launched_at is not None:
        services.store.dequeue(record)
        return LaunchResult(Outcome.NOT_QUEUED, record.status.value)
    if services.clock.now() - attempt.reserved_at < dt.timedelta(seconds=services.settings.launch_grace_seconds):
        return LaunchResult(Outcome.NOT_QUEUED, "being launched")
    spec = spec_of(record)
    reservation = _reservation(services, record.id, attempt, spec, cancel_requested=record.cancel_requested)
    if not _reserve(services, _pool(services, attempt.pool), reservation, Demand.of(spec))[0]:
        _unclaim(services, found, Demand.of(spec), None)
        return LaunchResult(Outcome.FILLED_UP, f"pool {attempt.pool} filled up")
    return launch_attempt(services, found, spec)


def _reserve(
    services: Services, pool: Pool, reservation: Reservation, demand: Demand, state: PoolState | None = None
) -> tuple[bool, PoolState | None]:
    """Take capacity for ``reservation``, starting from ``state`` if the caller has just read it; re-read and
    re-check on every lost race. Returns whether the group holds its reservation (also when it held it already)
    and, when this call took it, the pool's state as it wrote it."""
    store, clock = services.store, services.clock
    for _ in range(MAX_RACES):
        state = state or store.pool_state(pool)
        now = clock.now()
        if state.refusal(demand, now) is None:
            after = store.reserve(state, reservation, now)
            if after is not None:
                return True, after
        if store.find_reservation([pool], reservation.group) is not None:
            return True, None  # taken before a crash, by this attempt
        if state.refusal(demand, now) is not None:
            return False, None
        state = None
    return False, None


def launch_attempt(services: Services, claimed: Versioned[JobRecord], spec: JobSpec | None = None) -> LaunchResult:
    """Create the group of a claimed (Launching, not yet launched) attempt, and record the outcome.

    Idempotent: a repeated call PUTs the same group name again, which ARM treats as create-or-update.
    """
    record = claimed.value
    attempt = record.current
    if attempt is None or record.status is not Status.LAUNCHING:
        return LaunchResult(Outcome.NOT_QUEUED, record.status.value)
    spec = spec or spec_of(record)
    settings, now = services.settings, services.clock.now()
    pool = _pool(services, attempt.pool)
    if record.cancel_requested:  # asked while the launch was in doubt: nothing to create
        services.store.release(pool, attempt.group, now)
        _finish(services, claimed, Status.CANCELLED, "cancelled on request")
        return LaunchResult(Outcome.NOT_QUEUED, Status.CANCELLED.value)
    try:
        values = {key: services.secrets.get(key) for key in required_secrets(spec, settings)}
        if spec.workspace_volume is not None:
            services.shares.ensure(workspace_share(record.id))
        group = build_container_group(spec, attempt.number, values, settings, location=pool.location, now=now)
        created = services.groups.create(pool, attempt.group, group)
    except SecretNotFound as exc:
        services.store.release(pool, attempt.group, now)
        _finish(services, claimed, Status.FAILED, f"secret reference {exc.reference!r} was not found in Key Vault")
        return LaunchResult(Outcome.FAILED, str(exc))
    except InvalidJob as exc:
        services.store.release(pool, attempt.group, now)
        _finish(services, claimed, Status.FAILED, str(exc))
        return LaunchResult(Outcome.FAILED, str(exc))
    except CloudError as exc:
        services.store.release(pool, attempt.group, now)
        if exc.code == QUOTA_REACHED:
            until = now + dt.timedelta(seconds=settings.saturation_cooldown_seconds)
            services.store.mark_saturated(pool, until)
            _unclaim(services, claimed, Demand.of(spec), f"pool {pool.name}: {exc}")
            return LaunchResult(Outcome.REQUEUED, str(exc))
        if exc.transient:
            _unclaim(services, claimed, Demand.of(spec), f"pool {pool.name}: {exc}")
            return LaunchResult(Outcome.REQUEUED, str(exc))
        _finish(services, claimed, Status.FAILED, f"ACI refused the container group: {exc}")
        return LaunchResult(Outcome.FAILED, str(exc))

    launched = attempt.model_copy(update={"launched_at": now})
    status = Status.RUNNING if created.provisioning_state == "Succeeded" else Status.LAUNCHING
    updated = record.with_attempt(launched)
    if status is Status.RUNNING:
        updated = updated.transition(Status.RUNNING, now, last_error=None)
    else:
        updated = updated.model_copy(update={"updated_at": now, "last_error": None})
    try:
        services.store.replace(updated, claimed.etag)
    except Conflict:
        # A cancel or the reconciler changed the record meanwhile; the group exists under its
        # deterministic name and the reconciler adopts or deletes it from the record it reads.
        log.info("job %s changed while its group %s was created", record.id, attempt.group)
    else:
        if status is Status.RUNNING:
            services.store.mark_reservation(pool, attempt.group, started=True)
            services.events.publish(job_event(updated, "started", instance=settings.instance))
    services.store.dequeue(updated)
    return LaunchResult(Outcome.LAUNCHED, attempt.group)


def _unclaim(services: Services, claimed: Versioned[JobRecord], demand: Demand, error: str | None) -> None:
    """Return a claimed, unlaunched attempt's job to the queue; the attempt number is free again."""
    record = claimed.value
    attempt = record.current
    if attempt is None:
        return
    attempts = [a for a in record.attempts if a.number != attempt.number]
    back = record.transition(Status.QUEUED, services.clock.now(), attempts=attempts, last_error=error)
    try:
        services.store.replace(back, claimed.etag)
    except Conflict:
        log.info("job %s changed before its unlaunched attempt was returned to the queue", record.id)
        return
    services.store.enqueue(back, demand)


def _finish(services: Services, found: Versioned[JobRecord], status: Status, reason: str) -> None:
    """Move a job to a terminal status with a reason, drop it from the queue and publish the event."""
    record = found.value
    now = services.clock.now()
    attempt = record.current
    if attempt is not None and attempt.outcome is None:
        record = record.with_attempt(
            attempt.model_copy(update={"outcome": status, "reason": reason, "finished_at": now})
        )
    final = record.transition(status, now, reason=reason)
    try:
        services.store.replace(final, found.etag)
    except Conflict:
        log.info("job %s changed before it could be marked %s", record.id, status)
        return
    services.store.dequeue(final)
    services.events.publish(job_event(final, EVENT_TYPES[status], instance=services.settings.instance))

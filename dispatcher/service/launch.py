"""Launch the next attempt of a queued job: claim, admission, secrets, workspace, and the create of its group.

The order makes every crash recoverable and every race converge:

1. The record moves Queued → Launching with the new attempt (group name, pool, claim time), conditional on its
   ETag. Of two launchers of one job, exactly one wins. The claim opens a launch intent in the same write, so a
   launcher that stops after it leaves a trace the reconciler's sweep finds (:mod:`dispatcher.service.recovery`).
2. Capacity is reserved in that pool, atomically with the pool's counts; a lost race reads the pool again.
3. Secrets are resolved and the workspace share is ensured; a failure here created nothing, and is undone.
4. The group is created under its deterministic name from inputs fixed at the claim, once, with no transport
   retry, and only while the claim is younger than half the launch grace: past that, the reconciler may be
   resolving the claim, and two creates of one name would restart its containers. A create whose outcome is
   unknown keeps its claim and reservation; the reconciler resolves it by reading the group, never blind.
5. The attempt is recorded launched, which closes the intent in the same write.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from dispatcher.core.arrays import task_output_folder
from dispatcher.core.scheduling import can_ever_fit, place, refusals
from dispatcher.domain.errors import CloudError, Conflict, InvalidJob, SecretNotFound
from dispatcher.domain.jobs import Attempt, JobRecord, Status
from dispatcher.domain.naming import group_name, workspace_share
from dispatcher.domain.placement import Demand, PoolState, Reservation, TeamState
from dispatcher.domain.policy import identity_of
from dispatcher.domain.secrets import dispatcher_secret_keys, job_secret_keys
from dispatcher.ports import GroupRequest, Versioned
from dispatcher.service.records import commit, note_error
from dispatcher.service.services import Services
from dispatcher.service.telemetry import span
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
    IN_DOUBT = "in-doubt"  # the create's outcome is unknown: the reconciler reads the group to find out
    FAILED = "failed"
    NOT_QUEUED = "not-queued"


@dataclass(frozen=True)
class LaunchResult:
    outcome: Outcome
    detail: str = ""


class Capacity:
    """The pools' states as this caller last read or wrote them, so a run of launches reads each pool once.

    A launch that reserves or releases records the state it wrote; a lost race forgets the pool's state so that it
    is read again before the next launch.
    """

    def __init__(self, services: Services, known: Mapping[str, PoolState] | None = None) -> None:
        self._services = services
        self._states: dict[str, PoolState] = dict(known or {})
        self._teams: dict[str, TeamState] = {}

    def team(self, name: str) -> TeamState:
        """What team ``name`` holds, as last read; a reservation of the team forgets it (its row moved on)."""
        if name not in self._teams:
            self._teams[name] = self._services.ledger.team_state(name)
        return self._teams[name]

    def of(self, pool: Pool) -> PoolState:
        """The pool's state, with what its region holds outside it as last read (:mod:`.regions`)."""
        if pool.name not in self._states:
            self._states[pool.name] = self._services.ledger.state(pool)
        state = self._states[pool.name]
        elsewhere = self._services.regions.elsewhere(pool.name, self._services.clock.now().timestamp())
        return replace(state, elsewhere=elsewhere) if elsewhere is not None else state

    def states(self) -> list[PoolState]:
        return [self.of(p) for p in self._services.settings.pools]

    def wrote(self, state: PoolState) -> None:
        self._states[state.pool.name] = state

    def forget_team(self, name: str | None) -> None:
        self._teams.pop(name or "", None)

    def forget(self, pool: str | None = None) -> None:
        self._teams.clear()
        if pool is None:
            self._states.clear()
        else:
            self._states.pop(pool, None)


def why_not(demand: Demand, states: Sequence[PoolState], now: dt.datetime) -> str:
    """Why no pool takes ``demand`` now, pool by pool."""
    return "; ".join(f"{pool}: {reason}" for pool, reason in refusals(demand, states, now).items())


def team_refusal(services: Services, record: JobRecord, demand: Demand, capacity: Capacity) -> str | None:
    """Why the job's team may not take ``demand`` now (its limits in settings), or ``None``."""
    limits = services.settings.teams.get(record.team) if record.team is not None else None
    if record.team is None or limits is None or (limits.max_cores is None and limits.max_groups is None):
        return None  # no limits to check: the team's row is not read
    return capacity.team(record.team).refusal(demand, limits)


def new_attempt(record: JobRecord, pool: Pool, demand: Demand, now: dt.datetime) -> Attempt:
    """The next attempt of ``record``, claimed now in ``pool``."""
    number = record.next_attempt
    return Attempt(
        number=number,
        group=record.id if record.group_of is not None else group_name(record.id, number),
        pool=pool.name,
        location=pool.location,
        subscription_id=pool.subscription_id,
        resource_group=pool.resource_group,
        cores=demand.cores,
        memory_gb=demand.memory_gb,
        reserved_at=now,
    )


def reservation_for(services: Services, record: JobRecord, attempt: Attempt) -> Reservation:
    """The reservation an attempt holds: derived from the record alone, so any caller can rebuild it."""
    spec = record.job_spec
    return Reservation(
        group=attempt.group,
        job_id=record.id,
        attempt=attempt.number,
        cores=attempt.cores,
        created_at=attempt.reserved_at,
        timeout_seconds=services.settings.timeout_for(spec.timeout_seconds),
        spread_group=spec.placement.spread_group,
        cancel_requested=record.cancel_requested,
        team=record.team if record.team in services.settings.teams else None,
    )


def launch_grace(services: Services) -> dt.timedelta:
    """How long a claim belongs to its launcher; past it, the reconciler resolves the claim."""
    return dt.timedelta(seconds=services.settings.launch_grace_seconds)


def _previous_group(services: Services, record: JobRecord) -> str | None:
    """The group of a retried job's last attempt while it still holds its reservation (its delete failed, or
    waits for ACI's delete quota): the next attempt waits for it, so a job never has two groups at once."""
    last = record.current
    pool = services.settings.pool(last.pool) if last is not None else None
    if last is None or pool is None or services.ledger.find(pool, last.group) is None:
        return None
    return last.group


def try_launch(services: Services, found: Versioned[JobRecord], capacity: Capacity) -> LaunchResult:
    """Launch the next attempt of queued job ``found`` if a pool has room now. Safe to call concurrently."""
    for _ in range(MAX_RACES):
        record = found.value
        if record.status is not Status.QUEUED or record.secrets_pending:
            return LaunchResult(Outcome.NOT_QUEUED, record.status.value)
        now = services.clock.now()
        if record.not_before is not None and now < record.not_before:
            return LaunchResult(Outcome.NOT_DUE, f"retry due at {record.not_before.isoformat()}")
        previous = _previous_group(services, record)
        if previous is not None:
            return LaunchResult(Outcome.NOT_DUE, f"the previous attempt's group {previous} is not deleted yet")
        demand = Demand.of(record.job_spec)
        states = capacity.states()
        if not can_ever_fit(demand, services.settings.pools):
            reason = "no capacity pool can ever run this job: " + (
                why_not(demand, states, now) or "no pools are configured"
            )
            finish_unlaunched(services, found, Status.FAILED, reason)
            return LaunchResult(Outcome.FAILED, reason)
        chosen = place(demand, states, now)
        if chosen is None:
            detail = why_not(demand, states, now)
            return LaunchResult(Outcome.NO_CAPACITY, detail)
        held = team_refusal(services, record, demand, capacity)
        if held is not None:
            return LaunchResult(Outcome.NO_CAPACITY, held)
        attempt = new_attempt(record, chosen.pool, demand, now)
        claim = record.with_attempt(attempt).transition(Status.LAUNCHING, now, not_before=None)
        try:
            claimed = commit(services, found, claim)
        except Conflict:
            capacity.forget()
            again = services.records.get(record.id)
            if again is None:
                return LaunchResult(Outcome.NOT_QUEUED, "no such job")
            found = again
            continue  # another launcher, a cancel or a redelivery changed the job: re-read and re-decide
        return reserve_and_launch(services, claimed, capacity, owner=True)
    return LaunchResult(Outcome.REQUEUED, "too many concurrent changes; the scheduler will retry")


def reserve_and_launch(
    services: Services, claimed: Versioned[JobRecord], capacity: Capacity, *, owner: bool
) -> LaunchResult:
    """Reserve the claimed attempt's capacity (or find it reserved) and create its group. ``owner`` is the
    launcher that made the claim, which may create only while the claim is young (module docstring, step 4)."""
    record = claimed.value
    attempt = record.current
    pool = services.settings.pool(attempt.pool) if attempt is not None else None
    if attempt is None or pool is None:
        finish_unlaunched(services, claimed, Status.FAILED, "the attempt's pool is not configured")
        return LaunchResult(Outcome.FAILED, "pool not configured")
    reservation = reservation_for(services, record, attempt)
    team = capacity.team(reservation.team) if reservation.team is not None else None
    after = _reserve(services, capacity.of(pool), team, reservation, Demand.of(record.job_spec))
    capacity.forget_team(reservation.team)  # taken or refused, its row is read again before the next use
    if after is None:
        capacity.forget(pool.name)
        unclaim(services, claimed, None)
        return LaunchResult(Outcome.FILLED_UP, f"pool {pool.name} or team {record.team} filled up")
    capacity.wrote(after)
    return launch_attempt(services, claimed, capacity, owner=owner)


def _reserve(
    services: Services, state: PoolState, team: TeamState | None, reservation: Reservation, demand: Demand
) -> PoolState | None:
    """Take capacity for ``reservation`` starting from ``state`` and, for a reservation of a team, from ``team``
    (within the team's limits); re-read both and re-check on every lost race.

    Returns the state as written, ``state`` itself when the group held its reservation already (a crash after
    the reservation), or ``None`` when the pool or the team has no room."""
    ledger, clock = services.ledger, services.clock
    limits = services.settings.teams.get(team.team) if team is not None else None
    current: PoolState | None = state
    for attempt in range(MAX_RACES):
        current = current or ledger.state(state.pool)
        if team is not None and attempt > 0:
            team = ledger.team_state(team.team)
        now = clock.now()
        refused = current.refusal(demand, now) is not None or (
            team is not None and limits is not None and team.refusal(demand, limits) is not None
        )
        if not refused:
            after = ledger.reserve(current, reservation, now, team)
            if after is not None:
                return after
        if ledger.find(state.pool, reservation.group) is not None:
            return current
        if refused:
            return None
        current = None
    return None


def group_request(services: Services, record: JobRecord, attempt: Attempt, pool: Pool) -> GroupRequest:
    """Resolve the attempt's secrets and ensure its workspace; raises before anything is created."""
    spec, settings = record.job_spec, services.settings
    job_values = {key: services.job_secrets.get(key) for key in job_secret_keys(spec)}
    own_keys = dispatcher_secret_keys(spec, settings)
    if pool.container_logs is not None:
        own_keys.append(pool.container_logs.key_secret)
    own_values = {key: services.secrets.get(key) for key in own_keys}
    share = workspace_share(record.group_of or record.id) if spec.workspace_volume is not None else None
    if share is not None:
        services.shares.ensure(share)
        for run in record.task_runs:  # each task of a group writes to a folder of its own
            services.shares.ensure_folder(share, task_output_folder(run.index))
    return GroupRequest(
        job_id=record.id,
        attempt=attempt.number,
        spec=spec,
        location=pool.location,
        created=attempt.reserved_at,
        timeout_seconds=settings.timeout_for(spec.timeout_seconds),
        job_secrets=job_values,
        dispatcher_secrets=own_values,
        workspace=share,
        container_logs=pool.container_logs,
        identity=identity_of(spec, record.team, settings),
        labels=spec.labels,
    )


def launch_attempt(
    services: Services, claimed: Versioned[JobRecord], capacity: Capacity, *, owner: bool
) -> LaunchResult:
    """Create the group of a claimed and reserved (Launching, not yet launched) attempt, and record the outcome.

    A failure before the create, or a create refused for sure, releases the reservation and tells ``capacity``.
    The launch is a span of the job's trace, with ARM's create in it.
    """
    record = claimed.value
    attempt = record.current
    attributes: dict[str, str | int] = {"dispatcher.job_id": record.id}
    if attempt is not None:
        attributes |= {"dispatcher.attempt": attempt.number, "dispatcher.group": attempt.group}
        attributes["dispatcher.pool"] = attempt.pool
    with span("dispatcher.launch", parent=record.trace, attributes=attributes) as current:
        result = _launch_attempt(services, claimed, capacity, owner=owner)
        current.set_attribute("dispatcher.outcome", result.outcome.value)
        return result


def _launch_attempt(
    services: Services, claimed: Versioned[JobRecord], capacity: Capacity, *, owner: bool
) -> LaunchResult:
    record = claimed.value
    attempt = record.current
    pool = services.settings.pool(attempt.pool) if attempt is not None else None
    if attempt is None or record.status is not Status.LAUNCHING or attempt.launched_at is not None or pool is None:
        return LaunchResult(Outcome.NOT_QUEUED, record.status.value)
    reservation = reservation_for(services, record, attempt)

    def release() -> None:
        capacity.wrote(services.ledger.release(capacity.of(pool), reservation, services.clock.now()))

    if record.cancel_requested:  # asked while the launch was in doubt: nothing to create
        release()
        finish_unlaunched(services, claimed, Status.CANCELLED, "cancelled on request")
        return LaunchResult(Outcome.NOT_QUEUED, Status.CANCELLED.value)
    try:
        request = group_request(services, record, attempt, pool)
    except (SecretNotFound, InvalidJob, CloudError) as exc:
        release()
        if isinstance(exc, CloudError) and exc.transient:
            unclaim(services, claimed, str(exc))
            return LaunchResult(Outcome.REQUEUED, str(exc))
        finish_unlaunched(services, claimed, Status.FAILED, _cannot_launch(exc))
        return LaunchResult(Outcome.FAILED, str(exc))
    if owner and services.clock.now() - attempt.reserved_at >= launch_grace(services) / 2:
        note_error(services, claimed, "the launch took longer than half its grace; the reconciler resolves it")
        return LaunchResult(Outcome.IN_DOUBT, "the claim is too old for its launcher to create the group")
    try:
        created = services.groups.create(pool, attempt.group, request)
    except (SecretNotFound, InvalidJob) as exc:  # the group cannot be built from the spec: nothing was sent
        release()
        finish_unlaunched(services, claimed, Status.FAILED, _cannot_launch(exc))
        return LaunchResult(Outcome.FAILED, str(exc))
    except CloudError as exc:
        return _refused(services, claimed, exc, release, pool)
    record_launched(services, claimed, created.provisioning_state, at=services.clock.now())
    return LaunchResult(Outcome.LAUNCHED, attempt.group)


def _cannot_launch(exc: Exception) -> str:
    if isinstance(exc, SecretNotFound):
        return f"secret {exc.reference!r} was not found in Key Vault"
    return f"the job cannot be launched: {exc}"


def _refused(
    services: Services, claimed: Versioned[JobRecord], exc: CloudError, release: Callable[[], None], pool: Pool
) -> LaunchResult:
    """A create that failed: refused for sure (an ARM 4xx), or of unknown outcome (5xx, timeout, connection)."""
    settings, now = services.settings, services.clock.now()
    if exc.status is None or exc.status >= 500:
        note_error(services, claimed, f"the create's outcome is unknown, to be read: {exc}")
        return LaunchResult(Outcome.IN_DOUBT, str(exc))
    release()
    if exc.code == QUOTA_REACHED or exc.status == 429:
        if exc.code == QUOTA_REACHED:
            services.ledger.saturate(pool, now + dt.timedelta(seconds=settings.saturation_cooldown_seconds))
        unclaim(services, claimed, f"pool {pool.name}: {exc}")
        return LaunchResult(Outcome.REQUEUED, str(exc))
    finish_unlaunched(services, claimed, Status.FAILED, f"ACI refused the container group: {exc}")
    return LaunchResult(Outcome.FAILED, str(exc))


def record_launched(
    services: Services, claimed: Versioned[JobRecord], provisioning_state: str, *, at: dt.datetime
) -> None:
    """Record the claimed attempt's group as created (at ``at``); Running when ARM said it already runs.

    When the record changed meanwhile in a way that leaves the attempt as claimed (a note of an error, a dependant
    registering), the confirmation is written over the new version. When a cancel came or the job ended, the group
    just made belongs to no live attempt any more: it is deleted at once rather than left to the orphan sweep.
    """
    attempt = claimed.value.current
    assert attempt is not None
    pool = services.settings.pool(attempt.pool)
    running = provisioning_state == "Succeeded"
    found: Versioned[JobRecord] | None = claimed
    for _ in range(MAX_RACES):
        assert found is not None
        record = found.value
        current = record.current or attempt
        updated = record.with_attempt(current.model_copy(update={"launched_at": at}))
        updated = updated.transition(
            Status.RUNNING if running else Status.LAUNCHING, services.clock.now(), last_error=None
        )
        try:
            commit(services, found, updated)
        except Conflict:
            found = services.records.get(record.id)
            latest = found.value if found is not None else None
            ours = latest is not None and latest.current is not None and latest.current.group == attempt.group
            if not ours or latest is None or latest.status.terminal or latest.cancel_requested:
                if pool is not None:
                    log.info(
                        "job %s ended while its group %s was created; deleting the group", record.id, attempt.group
                    )
                    services.groups.delete(pool, attempt.group)
                return
            if (
                latest.status is not Status.LAUNCHING
                or latest.current is None
                or latest.current.launched_at is not None
            ):
                return  # another writer confirmed it already
            continue
        if running and pool is not None:
            services.ledger.mark(pool, attempt.group, started=True)
        return
    log.info(
        "job %s kept changing while its group %s was created; the reconciler adopts it", claimed.value.id, attempt.group
    )


def unclaim(services: Services, claimed: Versioned[JobRecord], error: str | None) -> None:
    """Return a claimed, unlaunched attempt's job to the queue (the attempt number is free again), or end it
    Cancelled when a cancel was asked meanwhile."""
    record = claimed.value
    attempt = record.current
    if attempt is None:
        return
    if record.cancel_requested:
        finish_unlaunched(services, claimed, Status.CANCELLED, "cancelled on request")
        return
    back = record.transition(
        Status.QUEUED, services.clock.now(), attempts=record.without_attempt(attempt.number), last_error=error
    )
    try:
        commit(services, claimed, back)
    except Conflict:
        log.info("job %s changed before its unlaunched attempt was returned to the queue", record.id)


def finish_unlaunched(services: Services, found: Versioned[JobRecord], status: Status, reason: str) -> None:
    """End a job whose current attempt never ran (or that has none) in ``status``, with a reason."""
    record = found.value
    now = services.clock.now()
    attempt = record.current
    if attempt is not None and attempt.outcome is None:
        record = record.with_attempt(
            attempt.model_copy(update={"outcome": status, "reason": reason, "finished_at": now})
        )
    try:
        commit(services, found, record.transition(status, now, reason=reason))
    except Conflict:
        log.info("job %s changed before it could be marked %s", record.id, status)

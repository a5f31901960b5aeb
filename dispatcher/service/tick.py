"""One reconciler run: per pool gather facts, decide, apply; then launch queued jobs; all within a budget.

Every action is idempotent and every record write is conditional on its ETag, so two overlapping runs,
or a run racing intake, stay correct: the loser of a race re-reads and re-decides, or finds the work
done. Work stops at the budget and resumes on the next run.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dispatcher.core.reconcile import (
    Action,
    Cleanup,
    DeleteOrphan,
    Finish,
    MarkStarted,
    NoteStarted,
    Relaunch,
    decide,
    groups_to_inspect,
    needs_record,
)
from dispatcher.domain.errors import CloudError
from dispatcher.domain.events import EVENT_TYPES, job_event
from dispatcher.domain.jobs import Attempt, ContainerResult, JobRecord, Status
from dispatcher.domain.observed import GroupView
from dispatcher.domain.placement import Demand, PoolState, Reservation, can_ever_fit, place
from dispatcher.ports import Conflict, Versioned
from dispatcher.service.launch import Outcome, launch_attempt, resume, spec_of, try_launch
from dispatcher.service.services import Services
from dispatcher.settings import Pool

log = logging.getLogger(__name__)

LOG_TAIL_BYTES = 16 * 1024
MAX_RACES = 5
SCHEDULE_BATCH = 200
PURGE_BATCH = 50
_CURSORS: dict[str, int] = {}
"""Per pool, where the next run's inspection of running groups starts: the round over them (more than the read
budget) goes on from run to run in this instance; a new instance starts over, which only delays a round."""


@dataclass
class TickReport:
    """What one run did, for logs and benchmarks."""

    actions: dict[str, int] = field(default_factory=dict)
    launched: int = 0
    reads: int = 0
    errors: list[str] = field(default_factory=list)
    out_of_budget: bool = False

    def count(self, name: str) -> None:
        self.actions[name] = self.actions.get(name, 0) + 1


class Budget:
    """Wall-clock budget of one run."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    @property
    def spent(self) -> bool:
        return time.monotonic() >= self._deadline


def run_tick(services: Services, *, budget_seconds: float | None = None) -> TickReport:
    """Reconcile every pool, then launch queued jobs while capacity allows."""
    report = TickReport()
    budget = Budget(budget_seconds if budget_seconds is not None else services.settings.tick_budget_seconds)
    states: dict[str, PoolState] = {}
    for pool in services.settings.pools:
        if budget.spent:
            report.out_of_budget = True
            return report
        try:
            states[pool.name] = reconcile_pool(services, pool, report, budget)
        except CloudError as exc:
            report.errors.append(f"{pool.name}: {exc}")
            log.warning("reconciling pool %s failed: %s", pool.name, exc)
    for step in (functools.partial(schedule, known=states), purge_expired):
        if budget.spent:
            report.out_of_budget = True
            break
        step(services, report, budget)
    return report


def reconcile_pool(services: Services, pool: Pool, report: TickReport, budget: Budget) -> PoolState:
    """Gather the pool's facts, decide, and apply each action; returns the pool's state as last read or written."""
    store, groups, settings = services.store, services.groups, services.settings
    state, held = store.reservations(pool)
    listed = groups.list(pool)
    now = services.clock.now()
    views: dict[str, GroupView] = {}
    inspect, _CURSORS[pool.name] = groups_to_inspect(
        held, listed, now, limit=settings.arm_reads_per_tick, cursor=_CURSORS.get(pool.name, 0)
    )
    for name in inspect:
        view = groups.get(pool, name)
        report.reads += 1
        if view is not None:
            views[name] = view
    read = {r.job_id: store.get(r.job_id) for r in held if needs_record(r, listed, views, now)}
    records = {job_id: found.value if found is not None else None for job_id, found in read.items()}
    versions = {job_id: found for job_id, found in read.items() if found is not None}  # an action writes on these
    report.reads += 2 + len(records)  # the pool's partition, the list of groups, the records
    actions = decide(
        held,
        records,
        listed,
        views,
        now,
        instance=settings.instance,
        default_timeout=settings.default_timeout_seconds,
        stuck_grace=dt.timedelta(seconds=settings.stuck_grace_seconds),
        orphan_grace=dt.timedelta(seconds=settings.orphan_grace_seconds),
        launch_grace=dt.timedelta(seconds=settings.launch_grace_seconds),
    )
    run = PoolRun(pool, state, held)
    for action in actions:
        if budget.spent:
            report.out_of_budget = True
            break
        try:
            apply(services, run, action, views, versions=versions)
            report.count(type(action).__name__)
        except CloudError as exc:
            report.errors.append(f"{type(action).__name__} {getattr(action, 'group', '')}: {exc}")
            log.warning("action %s failed: %s", action, exc)
    return run.stored


class PoolRun:
    """One pool as this run sees it.

    - Its state as stored, as this run last read or wrote it, and the reservations it read: a release writes
      on them without reading them again (if someone else wrote the state meanwhile, the ETag refuses the
      write and the release reads).
    - ACI's delete quota: the pool's delete windows as read, plus the deletes made since. A delete that would
      exceed the quota is not asked for; the group keeps its reservation, and a later run deletes it once the
      window has room.
    """

    def __init__(self, pool: Pool, state: PoolState, held: Sequence[Reservation]) -> None:
        self.pool = pool
        self.stored = state
        self._held = {r.group: r for r in held}
        self._quota = state

    def delete_refusal(self, now: dt.datetime) -> str | None:
        return self._quota.delete_refusal(now)

    def count_delete(self, now: dt.datetime) -> None:
        self._quota = self._quota.with_delete(now)

    def release(self, services: Services, group: str, *, deleted: bool = False) -> None:
        held = self._held.pop(group, None)
        known = (self.stored, held) if held is not None else None
        written = services.store.release(self.pool, group, services.clock.now(), deleted=deleted, known=known)
        if written is not None:
            self.stored = written


def apply(
    services: Services,
    run: PoolRun,
    action: Action,
    views: dict[str, GroupView],
    *,
    versions: dict[str, Versioned[JobRecord]],
) -> None:
    """Carry out one action, idempotently. ``versions`` are records as this run read them: an action on one of
    those jobs starts from its record (each at most once) instead of reading it again; a stale one loses its
    write to the ETag and is read again."""
    pool = run.pool
    if isinstance(action, Cleanup):
        if not action.delete_group or _delete(services, run, action.group):
            run.release(services, action.group, deleted=action.delete_group)
    elif isinstance(action, DeleteOrphan):
        log.info("deleting orphan group %s in %s", action.group, pool.name)
        _delete(services, run, action.group)
    elif isinstance(action, MarkStarted):
        _mark_started(services, pool, action, versions.pop(action.job_id, None))
    elif isinstance(action, NoteStarted):
        services.store.mark_reservation(pool, action.group, started=True)
    elif isinstance(action, Relaunch):
        found = versions.pop(action.job_id, None) or services.store.get(action.job_id)
        if found is not None:
            launch_attempt(services, found)
    else:
        finish(services, run, action, views.get(action.group), known=versions.pop(action.job_id, None))


def _delete(services: Services, run: PoolRun, group: str) -> bool:
    """Delete ``group`` unless ACI's delete quota is used up; ``False`` leaves it for a later run."""
    now = services.clock.now()
    refusal = run.delete_refusal(now)
    if refusal is not None:
        log.info("not deleting %s in %s yet: %s", group, run.pool.name, refusal)
        return False
    services.groups.delete(run.pool, group)
    run.count_delete(now)
    return True


def _mark_started(
    services: Services, pool: Pool, action: MarkStarted, known: Versioned[JobRecord] | None = None
) -> None:
    for _ in range(MAX_RACES):
        found = known or services.store.get(action.job_id)
        known = None
        if found is None or found.value.status is not Status.LAUNCHING:
            return
        record = found.value
        attempt = record.current
        if attempt is None or attempt.group != action.group:
            return
        started = record.with_attempt(attempt.model_copy(update={"started_at": action.started_at}))
        running = started.transition(Status.RUNNING, services.clock.now())
        try:
            services.store.replace(running, found.etag)
        except Conflict:
            continue
        services.store.mark_reservation(pool, action.group, started=True)
        services.events.publish(job_event(running, "started", instance=services.settings.instance))
        return


def _tail(text: str) -> str:
    data = text.encode()
    return data[-LOG_TAIL_BYTES:].decode(errors="ignore") if len(data) > LOG_TAIL_BYTES else text


def harvest(services: Services, pool: Pool, record: JobRecord, attempt: Attempt, view: GroupView | None) -> Attempt:
    """Exit codes, times, events and logs of every container, before the group is deleted."""
    if view is None:
        return attempt
    results: list[ContainerResult] = []
    for container in (*view.init_containers, *view.containers):
        text = services.groups.logs(pool, attempt.group, container.name)
        blob = services.logs.put(f"{record.id}/{attempt.number}/{container.name}.log", text)
        results.append(
            ContainerResult(
                name=container.name,
                state=container.state,
                exit_code=container.exit_code,
                start_time=container.start_time,
                finish_time=container.finish_time,
                restart_count=container.restart_count,
                detail_status=container.detail_status,
                events=[f"{e.name}: {e.message}" for e in container.events][-20:],
                log_tail=_tail(text),
                log_blob=blob,
            )
        )
    return attempt.model_copy(
        update={
            "containers": results,
            "started_at": attempt.started_at or view.started_at,
            "finished_at": view.finished_at,
        }
    )


def _cost(services: Services, record: JobRecord, attempt: Attempt, end: dt.datetime) -> tuple[float, float]:
    """Billed seconds, from the create until the group stopped, and their price."""
    start = attempt.launched_at or attempt.reserved_at
    seconds = max((end - start).total_seconds(), 0.0)
    prices = services.settings.prices
    rate = attempt.cores * prices.vcpu_second + attempt.memory_gb * prices.gb_second
    if record.spec.get("priority") == "Spot":
        rate *= 1 - prices.spot_discount
    return round(seconds, 3), round(seconds * rate, 6)


def finish(
    services: Services,
    run: PoolRun,
    action: Finish,
    view: GroupView | None,
    *,
    known: Versioned[JobRecord] | None = None,
) -> None:
    """End an attempt: stop if asked, harvest, record the outcome or a retry, delete the group, release it.

    ``known`` is the record as the caller just read it; a lost race re-reads it."""
    groups, store, clock, pool = services.groups, services.store, services.clock, run.pool
    if action.stop_first:
        groups.stop(pool, action.group)
        view = groups.get(pool, action.group) or view
    elif view is not None and not view.finished:
        view = groups.get(pool, action.group) or view
    final: JobRecord | None = None
    harvested: Attempt | None = None
    for _ in range(MAX_RACES):
        found = known or store.get(action.job_id)
        known = None
        if found is None:
            break
        record = found.value
        attempt = record.current
        if attempt is None or attempt.group != action.group or attempt.outcome is not None:
            break  # another run finished this attempt already
        outcome = Status.CANCELLED if record.cancel_requested else action.outcome
        reason = "cancelled on request" if record.cancel_requested else action.reason
        if harvested is None:  # logs are read once, even if the record write races
            harvested = harvest(services, pool, record, attempt, view)
        end = harvested.finished_at or clock.now()
        billed, cost = _cost(services, record, harvested, end)
        done = harvested.model_copy(
            update={"outcome": outcome, "reason": reason, "billed_seconds": billed, "cost": cost, "finished_at": end}
        )
        final = _next_state(services, _without_old_tails(record.with_attempt(done)), outcome, reason)
        if final.status is Status.QUEUED:
            store.enqueue(final, Demand.of(spec_of(final)))  # the index entry first, so a crash cannot lose the retry
        try:
            store.replace(final, found.etag)
        except Conflict:
            final = None
            continue
        break
    else:
        return  # the record kept changing: keep the group and its reservation, so the next run sees it again
    if not action.exists:
        run.release(services, action.group)
    elif _delete(services, run, action.group):  # else a later run deletes it once ACI's quota allows
        run.release(services, action.group, deleted=True)
    if final is not None and final.status.terminal:
        links = {"self": f"/api/jobs/{final.id}", "logs": f"/api/jobs/{final.id}/logs"}
        services.events.publish(
            job_event(final, EVENT_TYPES[final.status], instance=services.settings.instance, links=links)
        )


def _without_old_tails(record: JobRecord) -> JobRecord:
    """Keep log tails for the latest attempt only, so the record stays small; every full log is in Blob storage."""
    latest = record.current
    attempts = [
        a
        if a is latest
        else a.model_copy(update={"containers": [c.model_copy(update={"log_tail": ""}) for c in a.containers]})
        for a in record.attempts
    ]
    return record.model_copy(update={"attempts": attempts})


def _next_state(services: Services, record: JobRecord, outcome: Status, reason: str) -> JobRecord:
    """The job's status after an attempt ended: a retry after backoff when the policy allows, else final."""
    now = services.clock.now()
    spec = spec_of(record)
    retryable = outcome is Status.FAILED or (outcome is Status.TIMED_OUT and spec.retries.on_timeout)
    attempts_left = spec.retries.count + 1 - len(record.attempts)
    outputs = services.shares.files(record.workspace) if record.workspace else record.outputs
    if retryable and attempts_left > 0 and not record.cancel_requested:
        delay = dt.timedelta(seconds=spec.retries.delay(len(record.attempts)))
        return record.transition(
            Status.QUEUED,
            now,
            not_before=now + delay,
            reason=f"attempt {len(record.attempts)}: {reason}; retrying",
            outputs=outputs,
        )
    return record.transition(outcome, now, reason=reason, outputs=outputs)


def schedule(
    services: Services, report: TickReport, budget: Budget, *, known: dict[str, PoolState] | None = None
) -> None:
    """Launch queued jobs in priority, then arrival order, while some pool has room.

    The pools' states come first (``known``, as the reconciler just read or wrote them, else read), so a run
    with every pool full reads nothing else. A launch returns the state its reservation wrote, so they are
    read again only after some other write. A state that another writer has changed since loses its write to
    the ETag, and is read again. A queued job whose demand (kept in its index entry) fits no pool now is passed
    over without reading its record, so a long queue of jobs that do not fit costs one query.
    """
    pools = services.settings.pools
    now = services.clock.now()
    known = known or {}
    states = _with_room([known.get(p.name) or services.store.pool_state(p) for p in pools], now)
    if states is None:
        return  # every pool is full or rate-limited for any job: the queue is not read
    for entry in services.store.queued(SCHEDULE_BATCH):
        if budget.spent:
            report.out_of_budget = True
            return
        if entry.not_before is not None and entry.not_before > now:
            continue
        if states is None:
            states = _with_room([services.store.pool_state(p) for p in pools], now)
            if states is None:
                return
        demand = entry.demand
        if demand is not None and can_ever_fit(demand, pools) and place(demand, states, now) is None:
            continue  # does not fit now; one that can never fit is tried, so that it fails with a reason
        result = try_launch(services, entry.job_id, states=states)
        if result.outcome is Outcome.LAUNCHED:
            report.launched += 1
        elif result.outcome is Outcome.NOT_QUEUED:
            resume(services, entry.job_id)
        if result.state is not None:
            written = result.state
            states = _with_room([written if s.pool.name == written.pool.name else s for s in states], now)
            if states is None:
                return
        elif result.outcome not in (Outcome.NO_CAPACITY, Outcome.NOT_DUE):
            states = None  # something else was written: read the pools again before the next job


def _with_room(states: list[PoolState], now: dt.datetime) -> list[PoolState] | None:
    """``states``, or ``None`` when every pool is full or rate-limited for any job."""
    smallest = Demand(cores=0.0, memory_gb=0.0)
    if all(s.refusal(smallest, now) is not None for s in states):
        return None
    return states


def purge_expired(services: Services, report: TickReport, budget: Budget) -> None:
    """Delete terminal jobs older than the retention period: their logs, workspace share and records."""
    cutoff = services.clock.now() - dt.timedelta(days=services.settings.retention_days)
    for job_id, index_key in services.store.expired(cutoff, PURGE_BATCH):
        if budget.spent:
            report.out_of_budget = True
            return
        found = services.store.get(job_id)
        if found is not None and found.value.status.terminal:
            services.logs.delete_job(job_id)
            if found.value.workspace:
                services.shares.delete(found.value.workspace)
            services.store.purge(job_id)
            report.count("Purge")
        services.store.forget(index_key)

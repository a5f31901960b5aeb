"""Advance array jobs: take their ended groups' results in, stop what must stop, pack the next groups, end the job.

Each reconciler run walks the ``array|`` rows (array jobs still running) before the scheduler, so the groups it packs
are launched in the same run. Per job, and each step one conditional write of the job's record:

1. **Absorb.** Every ended group not yet taken in (a ``groupend|`` row) is read, once; its containers' exit codes
   become its tasks' results (:func:`dispatcher.core.arrays.run_results`), and the job's record, the group's record
   (marked absorbed) and the tasks' rows are written together, with a ``task.failed`` event per task failed for good.
2. **Stop.** On a cancel, or once more tasks failed than ``maxFailedTasks`` allows, the tasks not running are
   cancelled and every open group is cancelled (the reconciler stops and deletes those that run).
3. **Pack.** The next groups are chosen (:func:`dispatcher.core.arrays.plan_groups`) and each is recorded, Queued,
   with its tasks' rows in the same write, before the scheduler creates it under its recorded name.
4. **Report.** One ``tasks.progress`` event when tasks ended in this run, and the job's end once every task has.

Only running tasks and those due next are read: never-run tasks have no row, and the job's record keeps the tasks
due for a retry. A run that stops between two writes leaves a state the next run continues from.
"""

from __future__ import annotations

import logging

from dispatcher.core.arrays import (
    Room,
    absorb,
    array_tasks,
    group_capacity,
    group_record,
    outcome,
    packed,
    plan_groups,
    run_results,
    running_rows,
    stop_reason,
    stopped,
)
from dispatcher.core.scheduling import place
from dispatcher.domain.errors import Conflict
from dispatcher.domain.events import CloudEvent, progress_event, task_failed_event, transition_events
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.placement import Demand
from dispatcher.domain.tasks import TaskRecord, array_group_name
from dispatcher.ports import Versioned
from dispatcher.service.cancel import cancel
from dispatcher.service.finish import OUTPUT_SCAN_LIMIT
from dispatcher.service.launch import Capacity
from dispatcher.service.outbox import publish
from dispatcher.service.records import note_error_of
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services

log = logging.getLogger(__name__)

ARRAY_BATCH = 100
"""Array jobs advanced per run; the rest wait for the next."""
ABSORB_BATCH = 30
"""Ended groups taken into one job per run."""
MAX_NEW_GROUPS = 20
"""Groups one job packs per run at most."""
LOOKAHEAD = 1
"""Groups one job keeps waiting in the queue beyond what the pools can take now (the fairness policy)."""
MAX_RACES = 5


def advance_arrays(services: Services, report: RunReport, capacity: Capacity) -> None:
    """Advance every running array job, each contained: one that fails is noted on its record. Between upkeeps, only
    while this process knows of one (:attr:`~dispatcher.service.services.Cursors.arrays`)."""
    if not report.upkeep and not services.cursors.arrays:
        return
    running = services.queue.arrays(ARRAY_BATCH)
    services.cursors.arrays = bool(running)
    for job_id in running:
        if report.out_of_time():
            return
        with report.contained(f"array {job_id}", on_error=note_error_of(services, job_id)):
            advance(services, job_id, capacity)


def advance(services: Services, job_id: str, capacity: Capacity) -> JobRecord | None:
    """One round of array job ``job_id``; a concurrent change of its record makes the round start again."""
    for _ in range(MAX_RACES):
        found = services.records.get(job_id)
        if found is None:
            return None
        record = found.value
        if record.array is None or record.status.terminal or record.status is Status.WAITING or record.secrets_pending:
            return record
        try:
            found = _absorb_ended(services, found)
            found = _stop(services, found)
            found = _pack(services, found, capacity)
            return _report(services, found).value
        except Conflict:
            capacity.forget()
            continue
    log.info("array job %s kept changing; the next run advances it", job_id)
    return None


def _write(
    services: Services,
    found: Versioned[JobRecord],
    new: JobRecord,
    *,
    groups: list[tuple[Versioned[JobRecord] | None, JobRecord]] | None = None,
    tasks: list[TaskRecord] | None = None,
    events: list[CloudEvent] | None = None,
) -> Versioned[JobRecord]:
    announced = [*transition_events(found.value, new, instance=services.settings.instance), *(events or [])]
    written = services.records.write_array(found, new, groups=groups or [], tasks=tasks or [], events=announced)
    publish(services, announced)
    return written


def _absorb_ended(services: Services, found: Versioned[JobRecord]) -> Versioned[JobRecord]:
    parent = found.value
    timeout = services.settings.timeout_for(parent.job_spec.timeout_seconds)
    for group_id in services.records.array_groups(parent.id, ended=True, limit=ABSORB_BATCH):
        group = services.records.get(group_id)
        if group is None or group.value.absorbed or not group.value.status.terminal:
            continue
        record, state = found.value, found.value.array
        assert state is not None
        marked = group.value.model_copy(update={"absorbed": True})
        if group_id not in state.open_groups:  # taken in before, its mark lost: mark it alone
            found = _write(services, found, record, groups=[(group, marked)])
            continue
        results = run_results(group.value, timeout, services.settings.prices)
        taken = absorb(state, record, group.value, results)
        now = services.clock.now()
        new = record.model_copy(
            update={"array": taken.state, "cost": round(record.cost + taken.cost, 6), "updated_at": now}
        )
        events = [task_failed_event(new, task, instance=services.settings.instance) for task in taken.failed_for_good]
        found = _write(services, found, new, groups=[(group, marked)], tasks=taken.rows, events=events)
    return found


def _stop(services: Services, found: Versioned[JobRecord]) -> Versioned[JobRecord]:
    record = found.value
    state = record.array
    assert state is not None
    if state.stopping is None:
        reason = stop_reason(state, array_tasks(record.job_spec), record.cancel_requested)
        if reason is None:
            return found
        state = stopped(state, reason)
        found = _write(services, found, record.model_copy(update={"array": state, "updated_at": services.clock.now()}))
    for group_id in state.open_groups:  # idempotent: a group already cancelled or ended is left as it is
        cancel(services, group_id)
    return found


def _room(services: Services, record: JobRecord, capacity: Capacity) -> tuple[Room, int]:
    """What the best pool for one of the job's tasks can take now, and how many tasks one group holds there."""
    spec = record.job_spec
    main = spec.containers[0]
    demand = Demand(
        cores=main.cpu,
        memory_gb=main.memory_gb,
        spot=spec.priority == "Spot",
        region=spec.placement.region,
        pool=spec.placement.pool,
        spread_group=spec.placement.spread_group,
    )
    now = services.clock.now()
    states = capacity.states()
    chosen = place(demand, states, now)
    if chosen is None:
        fitting = [s for s in states if group_capacity(spec, s.pool) > 0]
        return Room(0, 0.0), max((group_capacity(spec, s.pool) for s in fitting), default=0)
    limits = chosen.pool
    return Room(chosen.groups_room(now), max(limits.max_cores - chosen.cores, 0.0)), group_capacity(spec, limits)


def _pack(services: Services, found: Versioned[JobRecord], capacity: Capacity) -> Versioned[JobRecord]:
    record = found.value
    state = record.array
    assert state is not None
    now = services.clock.now()
    if state.stopping is not None or record.cancel_requested:
        return found
    if state.next_index >= state.count and not any(r.due <= now for r in state.retry):
        return found
    room, per_group = _room(services, record, capacity)
    if per_group < 1:
        reason = "no capacity pool can hold one group of this job's tasks"
        return _write(services, found, record.model_copy(update={"array": stopped(state, reason), "updated_at": now}))
    queued = len(services.records.array_groups(record.id, ended=False, limit=MAX_NEW_GROUPS + LOOKAHEAD))
    plans = plan_groups(
        state,
        record.job_spec,
        now,
        per_group=per_group,
        room=room,
        queued=queued,
        lookahead=LOOKAHEAD,
        max_groups=MAX_NEW_GROUPS,
    )
    for runs in plans:
        record, state = found.value, found.value.array
        assert state is not None
        name = array_group_name(record.id, state.next_group)
        group = group_record(record, state.next_group, runs, now)
        new = record.model_copy(update={"array": packed(state, name, runs), "updated_at": now})
        if new.status is Status.QUEUED:
            new = new.transition(Status.RUNNING, now, reason="its first tasks are packed into groups")
        found = _write(services, found, new, groups=[(None, group)], tasks=running_rows(record, name, runs))
    return found


def _report(services: Services, found: Versioned[JobRecord]) -> Versioned[JobRecord]:
    record = found.value
    state = record.array
    assert state is not None
    now = services.clock.now()
    ended = outcome(state, record.cancel_requested)
    if ended is None and state.ended == state.reported:
        return found
    reported = state.model_copy(update={"reported": state.ended})
    new = record.model_copy(update={"array": reported, "updated_at": now})
    if ended is not None:
        status, reason = ended
        outputs = services.shares.summary(record.workspace, OUTPUT_SCAN_LIMIT) if record.workspace else None
        new = new.transition(status, now, reason=reason, outputs=outputs or record.outputs)
    events = [progress_event(new, instance=services.settings.instance)] if state.ended != state.reported else []
    return _write(services, found, new, events=events)

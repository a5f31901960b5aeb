"""One pool's part of a reconciler run: gather its facts, decide (:func:`~dispatcher.core.reconcile.decide`), and
carry out each action, each on its own.

Every action is idempotent and every record write is conditional on its ETag, so two overlapping runs, or a run
racing intake, stay correct: the loser of a race re-reads and re-decides, or finds the work done. An action that
fails, expectedly or not, is recorded on its job (``lastError``) and counted, and the run goes on with the rest.
"""

from __future__ import annotations

import datetime as dt
import logging

from dispatcher.core.reconcile import (
    Action,
    Cleanup,
    DeleteOrphan,
    Inspection,
    MarkStarted,
    NoteStarted,
    Relaunch,
    decide,
    groups_to_inspect,
    needs_record,
)
from dispatcher.domain.errors import Conflict
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.observed import GroupView
from dispatcher.domain.placement import PoolState
from dispatcher.ports import Versioned
from dispatcher.service.finish import PoolRun, ReadBudget, delete_group, finish, harvest_reads
from dispatcher.service.records import commit, note_error_of
from dispatcher.service.recovery import relaunch
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services
from dispatcher.service.telemetry import span
from dispatcher.settings import Pool

log = logging.getLogger(__name__)

MAX_RACES = 5


def reconcile_pool(services: Services, pool: Pool, report: RunReport) -> PoolState:
    """Reconcile one pool; returns its state as this run last read or wrote it."""
    ledger, groups, settings = services.ledger, services.groups, services.settings
    state, held = ledger.active(pool)
    report.held.update("Running" if r.started else "Launching" for r in held)
    listed = groups.list(pool)
    report.reads += 2
    now = services.clock.now()
    budget = settings.reads_per_run(pool)
    run = PoolRun(pool, state, held, ReadBudget(budget))
    inspection = groups_to_inspect(
        held,
        listed,
        now,
        limit=budget,
        cursor=services.cursors.by_pool.get(pool.name, 0),
        share=settings.reconcile_interval_seconds / settings.sweep_seconds,
    )
    views = _inspect(services, run, inspection, report)
    records: dict[str, JobRecord | None] = {}
    versions: dict[str, Versioned[JobRecord]] = {}
    for reservation in held:
        if not needs_record(reservation, listed, views, now):
            continue
        report.reads += 1
        with report.contained(f"read job {reservation.job_id}"):
            found = services.records.get(reservation.job_id)
            records[reservation.job_id] = found.value if found is not None else None
            if found is not None:
                versions[reservation.job_id] = found
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
    for action in actions:
        if report.out_of_time():
            break
        job_id = getattr(action, "job_id", None)
        noter = note_error_of(services, job_id) if job_id else None
        found = versions.pop(job_id, None) if job_id else None
        name = type(action).__name__
        attributes = {"dispatcher.group": action.group, "dispatcher.pool": pool.name, "dispatcher.job_id": job_id or ""}
        with (
            report.contained(f"{name} {action.group}", on_error=noter),
            span(f"dispatcher.{name}", parent=found.value.trace if found else None, attributes=attributes),
        ):
            done = apply(services, run, action, views, found)
            report.count(name if done else "Deferred")
    return run.stored


def _inspect(services: Services, run: PoolRun, inspection: Inspection, report: RunReport) -> dict[str, GroupView]:
    """``get`` the groups of ``inspection`` in turn while the run's ARM reads last, a finished group's harvest
    paid for with its ``get``; the round resumes next run at the first group not seen."""
    views: dict[str, GroupView] = {}
    seen = 0
    for name in inspection.names:
        if not run.reads.take(1):
            break
        report.reads += 1
        with report.contained(f"get {name}"):
            view = services.groups.get(run.pool, name)
            if view is not None:
                if view.finished:
                    if not run.reads.take(harvest_reads(view), harvest=True):
                        break  # seen ended, but its logs wait for the next run, which gets it again first
                    run.paid.add(name)
                views[name] = view
        seen += 1
    services.cursors.by_pool[run.pool.name] = inspection.cursor(seen)
    return views


def apply(
    services: Services, run: PoolRun, action: Action, views: dict[str, GroupView], found: Versioned[JobRecord] | None
) -> bool:
    """Carry out one action, idempotently. ``found`` is the action's job record as this run read it, if it did; a
    stale one loses its write to the ETag and is read again. ``False``: it waits for a later run."""
    pool = run.pool
    if isinstance(action, Cleanup):
        if not action.delete_group or delete_group(services, run, action.group):
            run.release(services, action.group, deleted=action.delete_group)
    elif isinstance(action, DeleteOrphan):
        log.info("deleting orphan group %s in %s", action.group, pool.name)
        delete_group(services, run, action.group)
    elif isinstance(action, MarkStarted):
        _mark_started(services, pool, action, found)
    elif isinstance(action, NoteStarted):
        services.ledger.mark(pool, action.group, started=True)
    elif isinstance(action, Relaunch):
        found = found or services.records.get(action.job_id)
        if found is not None:
            relaunch(services, found)
    else:
        return finish(services, run, action, views.get(action.group), found)
    return True


def _mark_started(services: Services, pool: Pool, action: MarkStarted, found: Versioned[JobRecord] | None) -> None:
    for _ in range(MAX_RACES):
        found = found or services.records.get(action.job_id)
        if found is None or found.value.status is not Status.LAUNCHING:
            return
        record = found.value
        attempt = record.current
        if attempt is None or attempt.group != action.group:
            return
        started = record.with_attempt(attempt.model_copy(update={"started_at": action.started_at}))
        try:
            commit(services, found, started.transition(Status.RUNNING, services.clock.now()))
        except Conflict:
            found = None
            continue
        services.ledger.mark(pool, action.group, started=True)
        return

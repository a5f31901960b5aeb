"""One reconciler run: reconcile every pool, publish the outbox, advance array jobs and launch queued jobs; and,
every ``upkeep_seconds``, finish what stopped writers left, decide the dependants of jobs that ended, fire due
schedules, fold usage and purge expired jobs.

Each part, each pool and each action is contained (:meth:`~dispatcher.service.report.RunReport.contained`): a
failure is counted and recorded, and the run goes on. Work stops at the run's budget and resumes on the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dispatcher.core.scheduling import queues
from dispatcher.domain.jobs import Status
from dispatcher.domain.placement import PoolState
from dispatcher.service.arrays import advance_arrays
from dispatcher.service.dependencies import release_ended
from dispatcher.service.launch import Capacity
from dispatcher.service.outbox import drain
from dispatcher.service.purge import purge_expired
from dispatcher.service.reconciler import reconcile_pool
from dispatcher.service.recovery import sweep
from dispatcher.service.regions import refresh_regions
from dispatcher.service.report import RunReport
from dispatcher.service.schedule import schedule
from dispatcher.service.schedules import fire_due
from dispatcher.service.services import Services
from dispatcher.service.telemetry import RunMetrics, record_run, span
from dispatcher.service.usage import fold_usage
from dispatcher.service.wake import active, wake_soon


def run_tick(services: Services, *, budget_seconds: float | None = None) -> RunReport:
    """Reconcile every pool, drain the outbox, then launch queued jobs while capacity allows, then purge; record
    the run's metrics, and while work is active ask for the next run soon (:mod:`.wake`). The run is a trace of its
    own; each job's actions in it are spans of the job's trace."""
    report = RunReport.within(budget_seconds if budget_seconds is not None else services.settings.tick_budget_seconds)
    report.upkeep = _upkeep_due(services)
    started = time.monotonic()
    states: dict[str, PoolState] = {}
    with span("dispatcher.reconcile", root=True) as current:
        capacity = _run(services, report, states)
        current.set_attribute("dispatcher.failures", report.failures)
        current.set_attribute("dispatcher.launched", report.launched)
        busy = True  # unless the run's figures show otherwise, it is followed by another soon
        with report.contained("metrics"):
            left = capacity.states() if capacity is not None else list(states.values())
            services.recent_states.keep(left, services.clock.now().timestamp())  # intake's view, as the run left it
            measured = _measured(services, report, left, time.monotonic() - started)
            record_run(measured)
            busy = active(left, measured.queue_depth, report.launched)
        if busy:
            wake_soon(services)
    return report


def _run(services: Services, report: RunReport, states: dict[str, PoolState]) -> Capacity | None:
    """The run's steps; the pools' capacity as its launches left it, or ``None`` when it ran out of time first."""
    for pool in services.settings.pools:
        if report.out_of_time():
            return None
        with report.contained(f"pool {pool.name}"):
            states[pool.name] = reconcile_pool(services, pool, report)
    with report.contained("outbox"):
        report.published, _ = drain(services)
    with report.contained("regions"):
        refresh_regions(services, report, states)
    capacity = Capacity(services, states)
    steps: tuple[tuple[str, bool, Callable[[], object]], ...] = (  # (name, upkeep only, step)
        ("sweep", True, lambda: sweep(services, report, capacity)),
        ("dependants", True, lambda: release_ended(services, report)),
        ("schedules", True, lambda: fire_due(services, report)),
        ("arrays", False, lambda: advance_arrays(services, report, capacity)),
        ("schedule", False, lambda: schedule(services, report, capacity)),
        ("usage", True, lambda: fold_usage(services, report)),
        ("purge", True, lambda: purge_expired(services, report)),
    )
    for name, upkeep_only, step in steps:
        if (report.upkeep or not upkeep_only) and not report.out_of_time():
            with report.contained(name):
                step()
    return capacity


def _upkeep_due(services: Services) -> bool:
    """Whether this run does the upkeep too: the first run of a process, then one every ``upkeep_seconds``."""
    now = services.clock.now().timestamp()
    last = services.cursors.upkeep_at
    if last is not None and 0 <= now - last < services.settings.upkeep_seconds:
        return False
    services.cursors.upkeep_at = now
    return True


QUEUE_DEPTH_COUNTED = 1000
DEAD_LETTERS_PEEKED = 100


def _measured(services: Services, report: RunReport, states: list[PoolState], seconds: float) -> RunMetrics:
    """The run's metrics: its own figures, the pools as it left them, and cheap reads (each queue of the index, up
    to :data:`QUEUE_DEPTH_COUNTED` entries; the dead letters, peeked up to :data:`DEAD_LETTERS_PEEKED`)."""
    held = {status: report.held[status] for status in (Status.LAUNCHING.value, Status.RUNNING.value)}
    measured = RunMetrics(seconds=seconds, failures=report.failures, statuses=held)
    if not report.upkeep:
        return measured  # the queue and the dead letters are counted with the upkeep
    with report.contained("count the queue"):
        measured.queue_depth = sum(
            services.queue.depth(QUEUE_DEPTH_COUNTED, team) for team in queues(services.settings)
        )
        measured.statuses[Status.QUEUED.value] = measured.queue_depth
    with report.contained("count the dead letters"):
        measured.dead_letters = services.jobs_queue.dead_letter_count(DEAD_LETTERS_PEEKED)
    for state in states:
        pool = state.pool
        measured.pools[pool.name] = (state.groups / max(pool.max_groups, 1), state.cores / max(pool.max_cores, 1))
    return measured

"""One reconciler run: reconcile every pool, publish the outbox, finish what stopped writers left, decide the
dependants of jobs that ended, fire due schedules, advance array jobs, launch queued jobs, purge expired ones.

Each part, each pool and each action is contained (:meth:`~dispatcher.service.report.RunReport.contained`): a
failure is counted and recorded, and the run goes on. Work stops at the run's budget and resumes on the next run.
"""

from __future__ import annotations

from dispatcher.domain.placement import PoolState
from dispatcher.service.arrays import advance_arrays
from dispatcher.service.dependencies import release_ended
from dispatcher.service.launch import Capacity
from dispatcher.service.outbox import drain
from dispatcher.service.purge import purge_expired
from dispatcher.service.reconciler import reconcile_pool
from dispatcher.service.recovery import sweep
from dispatcher.service.report import RunReport
from dispatcher.service.schedule import schedule
from dispatcher.service.schedules import fire_due
from dispatcher.service.services import Services


def run_tick(services: Services, *, budget_seconds: float | None = None) -> RunReport:
    """Reconcile every pool, drain the outbox, then launch queued jobs while capacity allows, then purge."""
    report = RunReport.within(budget_seconds if budget_seconds is not None else services.settings.tick_budget_seconds)
    states: dict[str, PoolState] = {}
    for pool in services.settings.pools:
        if report.out_of_time():
            return report
        with report.contained(f"pool {pool.name}"):
            states[pool.name] = reconcile_pool(services, pool, report)
    with report.contained("outbox"):
        report.published, _ = drain(services)
    capacity = Capacity(services, states)
    if not report.out_of_time():
        with report.contained("sweep"):
            sweep(services, report, capacity)
    if not report.out_of_time():
        with report.contained("dependants"):
            release_ended(services, report)
    if not report.out_of_time():
        with report.contained("schedules"):
            fire_due(services, report)
    if not report.out_of_time():
        with report.contained("arrays"):
            advance_arrays(services, report, capacity)
    if not report.out_of_time():
        with report.contained("schedule"):
            schedule(services, report, capacity)
    if not report.out_of_time():
        with report.contained("purge"):
            purge_expired(services, report)
    return report

"""Finishing what a stopped writer left: claimed attempts whose group is not confirmed, and inline values never
stored. Found through the intents index, never by scanning.

- A claim without a reservation (its launcher stopped between the claim and the reservation): :func:`resume`
  reserves and creates, or gives the claim back to the queue, or ends it Cancelled if a cancel came.
- A claim with a reservation (the create was never confirmed): the reconciler's ``Relaunch`` calls
  :func:`relaunch`, which reads the group first and creates it only if it does not exist.
- A waiting job whose dependencies were not all recorded, or that is still to be checked for a cycle:
  :func:`~dispatcher.service.dependencies.check` again.
- A record whose inline values were never stored (its submission's delivery gave up, or an HTTP client did not
  retry) ends Failed after ten launch graces, with the reason.
"""

from __future__ import annotations

import logging

from dispatcher.domain.jobs import IntentKind, JobRecord, Status
from dispatcher.ports import Versioned
from dispatcher.service.dependencies import check as check_dependencies
from dispatcher.service.launch import (
    Capacity,
    LaunchResult,
    Outcome,
    finish_unlaunched,
    launch_attempt,
    launch_grace,
    record_launched,
    reserve_and_launch,
)
from dispatcher.service.records import note_error_of
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services

log = logging.getLogger(__name__)

SWEEP_BATCH = 100
SECRETS_GRACES = 10


def sweep(services: Services, report: RunReport, capacity: Capacity) -> None:
    """Resolve every intent older than the launch grace, each on its own."""
    now = services.clock.now()
    for intent in services.intents.stale(now - launch_grace(services), SWEEP_BATCH):
        if report.out_of_time():
            return
        with report.contained(
            f"resolve the {intent.kind} intent of {intent.job_id}", on_error=note_error_of(services, intent.job_id)
        ):
            found = services.records.get(intent.job_id)
            if found is None:
                continue
            if intent.kind is IntentKind.LAUNCH:
                if resume(services, found, capacity).outcome is Outcome.LAUNCHED:
                    report.launched += 1
            elif intent.kind is IntentKind.DEPENDENCIES:
                check_dependencies(services, found)
            elif now - intent.since >= launch_grace(services) * SECRETS_GRACES:
                finish_unlaunched(
                    services,
                    found,
                    Status.FAILED,
                    "the job's inline secret values were never stored in the job-secrets vault: its submission "
                    "was not completed; submit it again",
                )
            report.count(f"Resolve{intent.kind.value.capitalize()}")


def resume(services: Services, found: Versioned[JobRecord], capacity: Capacity) -> LaunchResult:
    """Finish a claim whose launcher stopped between the claim and the reservation (older than the grace).

    A claim whose group holds a reservation is the reconciler's (:func:`relaunch`). Otherwise a cancel ends it
    now; else the reservation is taken and the group created, or, when the pool is full, the claim goes back to
    the queue.
    """
    record = found.value
    attempt = record.current
    if record.status is not Status.LAUNCHING or attempt is None or attempt.launched_at is not None:
        return LaunchResult(Outcome.NOT_QUEUED, record.status.value)
    if services.clock.now() - attempt.reserved_at < launch_grace(services):
        return LaunchResult(Outcome.NOT_QUEUED, "being launched")
    pool = services.settings.pool(attempt.pool)
    if pool is not None and services.ledger.find(pool, attempt.group) is not None:
        return LaunchResult(Outcome.NOT_QUEUED, "reserved; the reconciler resolves it")
    if record.cancel_requested:
        finish_unlaunched(services, found, Status.CANCELLED, "cancelled on request")
        return LaunchResult(Outcome.NOT_QUEUED, Status.CANCELLED.value)
    return reserve_and_launch(services, found, capacity, owner=False)


def relaunch(services: Services, found: Versioned[JobRecord]) -> LaunchResult:
    """Resolve a reserved attempt whose create was not confirmed: read the group first, and create it only when it
    does not exist (a create of an existing group restarts its containers). An existing group is adopted, with the
    claim's time as its launch, so that its timeout is never later than the real one."""
    record = found.value
    attempt = record.current
    if record.status is not Status.LAUNCHING or attempt is None or attempt.launched_at is not None:
        return LaunchResult(Outcome.NOT_QUEUED, record.status.value)
    pool = services.settings.pool(attempt.pool)
    if pool is not None and services.groups.get(pool, attempt.group) is not None:
        record_launched(services, found, "", at=attempt.reserved_at)  # a pending cancel then stops it as any other
        return LaunchResult(Outcome.LAUNCHED, f"adopted {attempt.group}")
    return launch_attempt(services, found, Capacity(services), owner=False)

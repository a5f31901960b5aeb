"""End an attempt: stop its group if asked, harvest exit codes and logs, record the outcome (or a retry), delete the
group and release its reservation.

The record's write comes before the delete: the outcome and its event are durable (the event in the outbox) before
anything is removed. A delete or a release that fails leaves the reservation, and the next run's
:class:`~dispatcher.core.reconcile.Cleanup` finishes it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from dispatcher.core.lifecycle import after_attempt, cost
from dispatcher.core.reconcile import Finish
from dispatcher.domain.errors import Conflict
from dispatcher.domain.jobs import Attempt, ContainerResult, Ending, JobRecord, OutputSummary, Status
from dispatcher.domain.logs import plain
from dispatcher.domain.naming import log_path
from dispatcher.domain.observed import GroupView
from dispatcher.domain.placement import PoolState, Reservation
from dispatcher.ports import Versioned
from dispatcher.service.records import commit
from dispatcher.service.services import Services
from dispatcher.settings import Pool

log = logging.getLogger(__name__)

LOG_TAIL_BYTES = 16 * 1024
"""A container's log tail kept in the record; the whole log is in the log store."""
RECORD_TAILS_BYTES = 64 * 1024
"""All tails of one attempt together, so that a group of 60 containers still fits one record."""
MAX_RACES = 5
OUTPUT_SCAN_LIMIT = 10_000
"""Workspace entries a summary visits at most; the API lists beyond that page by page."""


class ReadBudget:
    """The ARM reads one pool's run may make, its ``get``s and its log reads together, so that a burst of groups
    ending at once stays inside ARM's read bucket (250, refilled at 25 a second) rather than drawing 429s.

    A read that does not fit waits for the next run. The run's first harvest always fits, so a group with more
    containers than the whole budget still ends.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self._harvested = False

    def take(self, reads: int, *, harvest: bool = False) -> bool:
        """Spend ``reads`` if they fit; ``harvest``: they read a finished group's logs."""
        if self.spent + reads > self.limit and not (harvest and not self._harvested):
            return False
        self.spent += reads
        self._harvested = self._harvested or harvest
        return True

    def charge(self, reads: int) -> None:
        """Count reads made whether or not they fit (a group that turned out larger than its earlier view)."""
        self.spent += reads


def harvest_reads(view: GroupView | None) -> int:
    """The log reads :func:`harvest` makes for ``view``: one per container."""
    return 0 if view is None else len(view.init_containers) + len(view.containers)


class PoolRun:
    """One pool as this reconciler run sees it.

    - Its state as stored, as this run last read or wrote it, and the reservations it read: a release writes on
      them without reading them again (if someone else wrote the state meanwhile, the ledger reads it again).
    - ACI's delete quota: the pool's delete windows as read, plus the deletes made since. A delete that would
      exceed the quota is not asked for; the group keeps its reservation, and a later run deletes it once the
      window has room.
    - Its ARM read budget, and the groups whose harvest was paid for when they were inspected.
    """

    def __init__(self, pool: Pool, state: PoolState, held: Sequence[Reservation], reads: ReadBudget) -> None:
        self.pool = pool
        self.stored = state
        self.reads = reads
        self.paid: set[str] = set()
        self._held = {r.group: r for r in held}
        self._quota = state

    def delete_refusal(self, now: dt.datetime) -> str | None:
        return self._quota.delete_refusal(now)

    def count_delete(self, now: dt.datetime) -> None:
        self._quota = self._quota.with_delete(now)

    def release(self, services: Services, group: str, *, deleted: bool = False) -> None:
        held = self._held.pop(group, None)
        if held is not None:
            self.stored = services.ledger.release(self.stored, held, services.clock.now(), deleted=deleted)


def delete_group(services: Services, run: PoolRun, group: str) -> bool:
    """Delete ``group`` unless ACI's delete quota is used up; ``False`` leaves it for a later run."""
    now = services.clock.now()
    refusal = run.delete_refusal(now)
    if refusal is not None:
        log.info("not deleting %s in %s yet: %s", group, run.pool.name, refusal)
        return False
    services.groups.delete(run.pool, group)
    run.count_delete(now)
    return True


def _tail(text: str, limit: int) -> str:
    data = text.encode()
    return data[-limit:].decode(errors="ignore") if len(data) > limit else text


def harvest(services: Services, pool: Pool, record: JobRecord, attempt: Attempt, view: GroupView | None) -> Attempt:
    """Exit codes, times, events and logs of every container, before the group is deleted. A log is kept with the
    times ACI gives its lines, so that a follower's cursor goes on in it where the live log left off."""
    if view is None:
        return attempt
    containers = (*view.init_containers, *view.containers)
    limit = min(LOG_TAIL_BYTES, RECORD_TAILS_BYTES // max(len(containers), 1))
    results: list[ContainerResult] = []
    for container in containers:
        timed = services.groups.logs(pool, attempt.group, container.name, timestamps=True)
        blob = services.logs.put(log_path(record.id, attempt.number, container.name), timed)
        text = plain(timed)
        results.append(
            ContainerResult(
                name=container.name,
                state=container.state,
                exit_code=container.exit_code,
                start_time=container.start_time,
                finish_time=container.finish_time,
                restart_count=container.restart_count,
                detail_status=container.detail_status,
                events=[f"{e.name}: {e.message}"[:500] for e in container.events][-20:],
                log_tail=_tail(text, limit),
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


def _outputs(services: Services, record: JobRecord) -> OutputSummary | None:
    return services.shares.summary(record.workspace, OUTPUT_SCAN_LIMIT) if record.workspace else None


def _decided(services: Services, action: Finish, found: Versioned[JobRecord] | None) -> Versioned[JobRecord] | None:
    """Record the decision to end the attempt before its group is stopped (:class:`Ending`); ``None`` when the
    attempt is no longer this action's to end. A cancel is recorded already, as the record's request."""
    for _ in range(MAX_RACES):
        found = found or services.records.get(action.job_id)
        if found is None:
            return None
        record = found.value
        attempt = record.current
        if attempt is None or attempt.group != action.group or attempt.outcome is not None:
            return None
        if record.cancel_requested or attempt.ending is not None:
            return found
        ending = Ending(outcome=action.outcome, reason=action.reason, at=services.clock.now(), lost=action.lost)
        try:
            return commit(services, found, record.with_attempt(attempt.model_copy(update={"ending": ending})))
        except Conflict:
            found = None
    return None


def finish(
    services: Services, run: PoolRun, action: Finish, view: GroupView | None, found: Versioned[JobRecord] | None
) -> bool:
    """End an attempt. ``found`` is the record as this run read it (``None``: read it); a lost race reads again.
    ``False``: its reads do not fit the run's budget, and a later run ends it."""
    groups, records, clock, pool = services.groups, services.records, services.clock, run.pool
    get_again = action.stop_first or (view is not None and not view.finished)
    unpaid = 0 if action.group in run.paid else harvest_reads(view)
    if (get_again or unpaid) and not run.reads.take(int(get_again) + unpaid, harvest=True):
        log.info("harvest of %s in %s waits for a later run: the run's ARM reads are spent", action.group, pool.name)
        return False
    if get_again:
        if action.stop_first:
            found = _decided(services, action, found)
            if found is None:
                return True
            groups.stop(pool, action.group)
        before = harvest_reads(view)
        view = groups.get(pool, action.group) or view
        run.reads.charge(max(harvest_reads(view) - before, 0))
    harvested: Attempt | None = None
    outputs: OutputSummary | None = None
    for _ in range(MAX_RACES):
        found = found or records.get(action.job_id)
        if found is None:
            break
        record = found.value
        attempt = record.current
        if attempt is None or attempt.group != action.group or attempt.outcome is not None:
            break  # another run finished this attempt already
        outcome = Status.CANCELLED if record.cancel_requested else action.outcome
        reason = "cancelled on request" if record.cancel_requested else action.reason
        if harvested is None:  # logs and outputs are read once, even if the record write races
            harvested = harvest(services, pool, record, attempt, view)
            outputs = _outputs(services, record)
        end = harvested.finished_at or clock.now()
        billed, price = cost(harvested, end, services.settings.prices, spot=record.job_spec.priority == "Spot")
        done = harvested.model_copy(
            update={
                "outcome": outcome,
                "reason": reason,
                "lost": action.lost and not record.cancel_requested,
                "billed_seconds": billed,
                "cost": price,
                "finished_at": end,
            }
        )
        try:
            commit(services, found, after_attempt(record.with_attempt(done), outcome, reason, clock.now(), outputs))
        except Conflict:
            found = None
            continue
        break
    else:
        return True  # the record kept changing: keep the group and its reservation, so the next run sees it again
    if not action.exists:
        run.release(services, action.group)
    elif delete_group(services, run, action.group):  # else a later run deletes it once ACI's quota allows
        run.release(services, action.group, deleted=True)
    return True

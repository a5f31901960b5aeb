"""Job dependencies: a job that names others in ``dependsOn`` waits until they meet their conditions.

Found through indexes, never by scanning (:mod:`dispatcher.adapters.azure.tables.layout`):

- a waiting job's record implies one ``wait|{dependency}|{job}`` row per dependency, in the same write;
- :func:`check` marks each dependency ``has_dependants``; when such a job ends, its record implies a
  ``release|{job}`` row in the same write as its end, and :func:`release_ended` (each reconciler run) decides its
  waiters and then marks it released, which removes the row. A crash in between leaves the row for the next run.
- until a waiting job has found all its dependencies and no cycle, its record holds an intent the sweep
  resolves by calling :func:`check` again (ids not recorded yet wait ``dependency_grace_seconds``).

Marking a dependency is conditional on its ETag: it lands before the dependency's end (so the end writes the
release row) or fails and is read again, after which the waiter sees the end itself.
"""

from __future__ import annotations

import datetime as dt
import logging

from dispatcher.core.dependencies import Verdict, cycle_reason, cycle_through, decide, in_cycle
from dispatcher.domain.errors import Conflict
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.ports import Versioned
from dispatcher.service.records import commit
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services

log = logging.getLogger(__name__)

RELEASE_BATCH = 100
MAX_WAITERS = 1000
MAX_GRAPH = 200
"""Jobs read at most to look for a cycle."""
MAX_RACES = 5


def _mark(services: Services, job_id: str) -> JobRecord | None:
    """Mark ``job_id`` as having dependants (and not yet released); its record, or ``None`` if not recorded."""
    for _ in range(MAX_RACES):
        found = services.records.get(job_id)
        if found is None:
            return None
        record = found.value
        if record.has_dependants and not record.dependants_released:
            return record
        try:
            commit(services, found, record.model_copy(update={"has_dependants": True, "dependants_released": False}))
        except Conflict:
            continue
        return record
    raise Conflict(job_id)


def _cycle(services: Services, record: JobRecord) -> list[str] | None:
    """A cycle of waiting jobs through ``record``, read job by job (at most :data:`MAX_GRAPH`)."""
    edges: dict[str, list[str]] = {}
    frontier = [record]
    while frontier and len(edges) < MAX_GRAPH:
        job = frontier.pop()
        if job.id in edges:
            continue
        edges[job.id] = [d.job for d in job.job_spec.depends_on] if job.status is Status.WAITING else []
        for dependency in edges[job.id]:
            if dependency not in edges:
                found = services.records.get(dependency)
                if found is not None and found.value.status is Status.WAITING:
                    frontier.append(found.value)
    return cycle_through(record.id, edges)


def _fail(services: Services, found: Versioned[JobRecord], reason: str) -> None:
    now = services.clock.now()
    commit(services, found, found.value.transition(Status.FAILED, now, reason=reason, dependencies_due=None))
    log.info("job %s failed: %s", found.value.id, reason)


def _dependencies(services: Services, record: JobRecord) -> dict[str, JobRecord | None]:
    found = {d.job: services.records.get(d.job) for d in record.job_spec.depends_on}
    return {job: f.value if f is not None else None for job, f in found.items()}


def evaluate(services: Services, found: Versioned[JobRecord], dependencies: dict[str, JobRecord | None]) -> Verdict:
    """Queue or fail a waiting job by its ``dependencies``' statuses; it keeps waiting otherwise."""
    record = found.value
    if record.status is not Status.WAITING:
        return Verdict.WAIT
    statuses = {job: dependency.status if dependency else None for job, dependency in dependencies.items()}
    decision = decide(record.job_spec.depends_on, statuses)
    if decision.verdict is Verdict.FAIL:
        failed = dependencies.get(decision.failed or "")
        cause = failed.reason if failed is not None else None
        _fail(services, found, cause if cause is not None and in_cycle(cause, record.id) else decision.reason)
    elif decision.verdict is Verdict.READY:
        queued = record.transition(Status.QUEUED, services.clock.now(), reason=None, dependencies_due=None)
        commit(services, found, queued)
    return decision.verdict


def check(services: Services, found: Versioned[JobRecord]) -> Verdict:
    """Register a waiting job with its dependencies and decide it if it can be decided now.

    Called when the job is recorded and again by the sweep while it has dependencies not yet recorded, or until
    it has been checked for a cycle. A dependency unknown for longer than the grace fails the job naming the
    missing ids; a cycle fails every job in it, naming the cycle.
    """
    record = found.value
    if record.status is not Status.WAITING:
        return Verdict.WAIT
    dependencies = {d.job: _mark(services, d.job) for d in record.job_spec.depends_on}  # never this record
    verdict = evaluate(services, found, dependencies)
    if verdict is not Verdict.WAIT:
        return verdict
    now = services.clock.now()
    missing = [job for job, dependency in dependencies.items() if dependency is None]
    if missing:
        grace = dt.timedelta(seconds=services.settings.dependency_grace_seconds)
        if now - record.submitted_at >= grace:
            _fail(services, found, f"dependencies {', '.join(missing)} were not submitted within {grace}")
            return Verdict.FAIL
        commit(services, found, found.value.model_copy(update={"dependencies_due": now}))
        return Verdict.WAIT
    cycle = _cycle(services, found.value)
    if cycle is not None:
        reason = cycle_reason(cycle)
        for job_id in dict.fromkeys(cycle):
            member = services.records.get(job_id)
            if member is not None and member.value.status is Status.WAITING:
                _fail(services, member, reason)
        return Verdict.FAIL
    commit(services, found, found.value.model_copy(update={"dependencies_due": None}))
    return Verdict.WAIT


def release_ended(services: Services, report: RunReport) -> None:
    """Decide the waiters of every job that ended with dependants, then mark it released; each on its own."""
    for job_id in services.dependencies.released(RELEASE_BATCH):
        if report.out_of_time():
            return
        with report.contained(f"release the dependants of {job_id}"):
            for waiter in services.dependencies.waiters(job_id, MAX_WAITERS):
                with report.contained(f"decide {waiter}, a dependant of {job_id}"):
                    found = services.records.get(waiter)
                    if found is not None and found.value.status is Status.WAITING:
                        evaluate(services, found, _dependencies(services, found.value))
            ended = services.records.get(job_id)
            if ended is not None:
                commit(services, ended, ended.value.model_copy(update={"dependants_released": True}))
            report.count("ReleaseDependants")

"""What the API reads: jobs, their outputs, their tasks, and the dependencies' health (logs: :mod:`.logs`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from dispatcher.domain.jobs import JobRecord
from dispatcher.domain.tasks import TaskRecord, TaskStatus
from dispatcher.ports import JobQuery, OutputPage
from dispatcher.service.logs import job_logs
from dispatcher.service.services import Services


def outputs_page(
    services: Services, record: JobRecord, folder: str, continuation: str | None, limit: int
) -> OutputPage:
    """One page of one folder of the job's workspace; an empty page for a job without one."""
    if not record.workspace:
        return OutputPage(entries=[])
    return services.shares.page(record.workspace, folder, continuation, limit)


def output_file(services: Services, record: JobRecord, path: str) -> bytes | None:
    """One file of the job's workspace, or ``None``."""
    return services.shares.read(record.workspace, path) if record.workspace else None


def list_jobs(services: Services, query: JobQuery) -> tuple[list[JobRecord], str | None]:
    return services.records.list(query)


@dataclass(frozen=True)
class Probe:
    """One dependency's health."""

    ok: bool
    detail: str | None
    latency_ms: float


def _probe(action: Callable[[], object]) -> Probe:
    started = time.perf_counter()
    try:
        action()
    except Exception as exc:  # report any failure, never raise from a health check
        return Probe(False, type(exc).__name__, round((time.perf_counter() - started) * 1000, 1))
    return Probe(True, None, round((time.perf_counter() - started) * 1000, 1))


def health(services: Services) -> dict[str, Probe]:
    """The store, Service Bus and ARM (per pool), each checked with one cheap read."""
    checks = {
        "store": _probe(lambda: services.records.get("health-probe")),
        "serviceBus": _probe(services.jobs_queue.probe),
    }
    for pool in services.settings.pools:
        checks[f"arm:{pool.name}"] = _probe(functools.partial(services.groups.get, pool, "health-probe"))
    return checks


TASK_SCAN_PAGES = 10
"""Pages of task rows one filtered listing reads at most before it answers with what it found and a continuation."""


def task_page(
    services: Services, record: JobRecord, status: TaskStatus | None, start: int, limit: int
) -> tuple[list[TaskRecord], int | None]:
    """The tasks of an array job from position ``start`` on (the task index, unless the job runs only some tasks),
    at most ``limit`` of status ``status`` (any if ``None``), and the position the next page starts at (``None``
    after the last). A task that never ran has no row: it is shown Pending."""
    state, spec = record.array, record.spec
    if state is None or spec is None or spec.tasks is None:
        return [], None
    tasks = spec.tasks
    found: list[TaskRecord] = []
    at = max(start, 0)  # a position among the tasks the job runs
    for _ in range(TASK_SCAN_PAGES):
        if at >= state.count or len(found) >= limit:
            break
        span = min(limit, state.count - at)
        wanted = [tasks.index_at(p) for p in range(at, at + span)]
        rows = {t.index: t for t in services.records.tasks(record.id, wanted[0], span) if t.index <= wanted[-1]}
        for index in wanted:
            task = rows.get(index) or TaskRecord(
                job_id=record.id, index=index, status=TaskStatus.PENDING, item=tasks.item(index)
            )
            at += 1
            if status is None or task.status is status:
                found.append(task)
                if len(found) >= limit:
                    break
    return found, (at if at < state.count else None)


def task_of(services: Services, record: JobRecord, index: int) -> TaskRecord | None:
    """Task ``index`` of an array job (Pending when it never ran), or ``None`` when it runs no such task."""
    tasks = record.spec.tasks if record.spec is not None else None
    position = tasks.position_of(index) if tasks is not None else None
    if position is None:
        return None
    page, _ = task_page(services, record, None, position, 1)
    return page[0] if page and page[0].index == index else None


def task_logs(services: Services, task: TaskRecord, run: int | None, tail: int | None) -> str | None:
    """The log of one run of a task (1-based; the latest if ``None``) from its group, live or harvested; ``None``
    when that run has no group (yet)."""
    groups = task.groups
    if not groups or (run is not None and not 1 <= run <= len(groups)):
        return None
    found = services.records.get(groups[-1] if run is None else groups[run - 1])
    if found is None:
        return None
    return job_logs(services, found.value, task.container, tail).get(task.container, "")

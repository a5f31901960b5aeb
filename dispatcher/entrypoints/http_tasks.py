"""The HTTP API's view of array jobs' tasks (see :mod:`dispatcher.entrypoints.http` for the conventions)."""

from __future__ import annotations

from dispatcher.domain.jobs import JobRecord
from dispatcher.domain.tasks import TaskRecord, TaskStatus
from dispatcher.entrypoints.api_models import TaskList, task_out
from dispatcher.entrypoints.http import (
    MAX_TAIL,
    BadRequest,
    Request,
    Response,
    find_job,
    handler,
    job_not_found,
    json_response,
    number_param,
    problem,
    text_param,
)
from dispatcher.service import queries
from dispatcher.service.services import Services

MAX_PAGE = 1000
DEFAULT_PAGE = 100
STATUSES = {s.value.lower(): s for s in TaskStatus}


def _array(services: Services, job_id: str, request: Request) -> JobRecord | Response:
    record = find_job(services, job_id, request.who)
    if record is None:
        return job_not_found(job_id)
    if record.array is None:
        return problem(404, "Not an array job", f"job {job_id!r} has no tasks")
    return record


def _index(record: JobRecord, text: str) -> int | Response:
    tasks = record.spec.tasks if record.spec is not None else None
    if tasks is None or not text.isascii() or not text.isdigit() or tasks.position_of(int(text)) is None:
        return problem(404, "Task not found", f"job {record.id!r} runs no task {ascii(text)[:40]}")
    return int(text)


@handler
def list_tasks(services: Services, job_id: str, request: Request) -> Response:
    """``GET /api/jobs/{id}/tasks``: an array job's tasks in index order, filtered by ``?status=``, a page at a time."""
    wanted = text_param(request, "status")
    status = STATUSES.get(wanted.lower()) if wanted is not None else None
    if wanted is not None and status is None:
        raise BadRequest("status", f"{ascii(wanted)[:40]} is not one of {', '.join(s.value for s in TaskStatus)}")
    limit = number_param(request, "limit", 1, MAX_PAGE) or DEFAULT_PAGE
    start = number_param(request, "continuation", 0, 10**9) or 0
    record = _array(services, job_id, request)
    if isinstance(record, Response):
        return record
    tasks, after = queries.task_page(services, record, status, start, limit)
    body = TaskList(
        job_id=record.id, items=[task_out(t) for t in tasks], continuation_token=str(after) if after else None
    )
    return json_response(body)


def _task(services: Services, job_id: str, index: str, request: Request) -> tuple[int, TaskRecord | None] | Response:
    """The task ``index`` of array job ``job_id`` (``None`` while it has no row yet), or the 404 to answer."""
    record = _array(services, job_id, request)
    if isinstance(record, Response):
        return record
    number = _index(record, index)
    if isinstance(number, Response):
        return number
    return number, queries.task_of(services, record, number)


@handler
def get_task(services: Services, job_id: str, index: str, request: Request) -> Response:
    """``GET /api/jobs/{id}/tasks/{index}``: one task."""
    found = _task(services, job_id, index, request)
    if isinstance(found, Response):
        return found
    number, task = found
    return json_response(task_out(task)) if task is not None else problem(404, "Task not found", f"no task {number}")


@handler
def task_logs(services: Services, job_id: str, index: str, request: Request) -> Response:
    """``GET /api/jobs/{id}/tasks/{index}/logs``: the log of a task's latest run (or ``?run=N``), live or harvested."""
    tail = number_param(request, "tail", 0, MAX_TAIL)
    run = number_param(request, "run", 1, 1000)
    found = _task(services, job_id, index, request)
    if isinstance(found, Response):
        return found
    number, task = found
    text = queries.task_logs(services, task, run, tail) if task is not None else None
    if text is None:
        detail = f"task {number} has no run {run}" if run else f"task {number} has not run yet"
        return problem(404, "No log", detail)
    return Response(200, text.encode(), "text/plain; charset=utf-8")

"""An array job's tasks in the CLI: ``dispatcher tasks``, the counts ``status`` shows, and the progress bar of
``submit --wait``."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from dispatcher.domain.tasks import TaskStatus
from dispatcher.entrypoints.api_models import JobOut, TaskList, TaskOut
from dispatcher.entrypoints.cli_common import AsJson, Key, Url, api, print_json
from dispatcher.entrypoints.cli_views import duration, err, money, out, when
from dispatcher.entrypoints.client import ClientError, DispatcherClient

TASK_STYLES = {
    TaskStatus.PENDING: "dim",
    TaskStatus.RUNNING: "blue",
    TaskStatus.SUCCEEDED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.TIMED_OUT: "red",
    TaskStatus.CANCELLED: "yellow",
}


def _seconds(task: TaskOut) -> float | None:
    if task.started_at and task.finished_at:
        return (task.finished_at - task.started_at).total_seconds()
    return None


def tasks_table(tasks: list[TaskOut], currency: str = "USD") -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2, 0, 0))
    for column in ("task", "status", "runs", "exit", "started", "ran", "cost", "reason"):
        table.add_column(column, justify="right" if column in ("task", "runs", "exit", "cost") else "left")
    for task in tasks:
        style = TASK_STYLES[task.status]
        table.add_row(
            str(task.index),
            f"[{style}]{task.status.value}[/{style}]",
            str(task.runs),
            "" if task.exit_code is None else str(task.exit_code),
            when(task.started_at, "%H:%M:%S") if task.started_at else "",
            duration(_seconds(task)) if task.finished_at else "",
            money(task.cost, currency) if task.cost else "",
            escape(task.reason or ""),
        )
    return table


def tasks(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The array job's id.")],
    *,
    status_filter: Annotated[
        TaskStatus | None, typer.Option("--status", case_sensitive=False, help="Only tasks in this status.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Tasks per page.")] = 100,
    continuation: Annotated[str | None, typer.Option(help="Start at this page token.")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Follow continuation tokens to the last task.", metavar="")
    ] = False,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """List an array job's tasks: status, runs, exit code, times, cost and reason, filtered by status."""
    wanted = status_filter.value if status_filter else None
    with api(url, key, as_json) as client:
        if every:
            page = TaskList(job_id=job_id, items=list(client.all_tasks(job_id, status=wanted)))
        else:
            page = client.tasks(job_id, status=wanted, limit=limit, continuation=continuation)
    if as_json:
        print_json(page)
        return
    if not page.items:
        out.print("No tasks." if wanted is None else f"No {wanted} tasks.")
    else:
        out.print(tasks_table(page.items))
    if page.continuation_token:
        err.print(f"More tasks: --all, or --continuation {page.continuation_token}", markup=False)


def wait_with_progress(client: DispatcherClient, first: JobOut, interval: float) -> JobOut:
    """Poll an array job until it ends, with a progress bar on stderr: done, failed, running and pending of the
    total, the rate of tasks ended, and an estimate of the time left. An outage is said once and ridden out."""
    counts = first.tasks
    assert counts is not None
    started, ended_at_start = time.monotonic(), counts.succeeded + counts.failed + counts.cancelled
    failing = False
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task(first.id, total=counts.total, detail="")

        def show(job: JobOut) -> None:
            nonlocal failing
            if failing:
                err.print(f"the API answers again; {job.id} is {job.status.value}", markup=False)
                failing = False
            now = job.tasks
            if now is None:
                return
            done = now.succeeded + now.failed + now.cancelled
            elapsed = time.monotonic() - started
            rate = (done - ended_at_start) / elapsed if elapsed > 0 else 0.0
            eta = f" · ETA {duration((now.total - done) / rate)}" if rate > 0 and done < now.total else ""
            detail = (
                f"[green]{now.succeeded} done[/green] · [red]{now.failed} failed[/red] · "
                f"[blue]{now.running} running[/blue] · {now.pending} pending · {rate:.1f}/s{eta}"
            )
            progress.update(bar, completed=done, detail=detail)

        def trouble(exc: ClientError) -> None:
            nonlocal failing
            if not failing:
                err.print(f"the API did not answer ({exc}); still waiting for {first.id}", markup=False)
                failing = True

        show(first)
        return client.wait(first.id, interval=interval, on_poll=show, on_error=trouble)

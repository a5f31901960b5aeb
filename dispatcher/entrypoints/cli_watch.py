"""How the CLI waits for a job and follows its logs, until the job ends."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from rich.markup import escape

from dispatcher.domain.tasks import task_container
from dispatcher.entrypoints.api_models import JobOut, LogPageOut, TaskOut
from dispatcher.entrypoints.cli_tasks import wait_with_progress
from dispatcher.entrypoints.cli_views import duration, err, exit_codes, styled, when
from dispatcher.entrypoints.client import ClientError, DispatcherClient, NotFound, transient


def appear(client: DispatcherClient, job_id: str, timeout: float, interval: float) -> JobOut:
    """The job once the API knows it: a job sent over Service Bus appears only after intake records it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.job(job_id)
        except NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def wait(client: DispatcherClient, job_id: str, interval: float) -> JobOut:
    """Poll until the job is terminal, with a live status line (on stderr, so ``--json`` stays clean).

    An outage longer than one call's own retries does not end the wait: it is said once on stderr, and so is the
    API's answering again.
    """
    first = _first_look(client, job_id, interval)
    if first.tasks is not None and not first.status.terminal:
        return wait_with_progress(client, first, interval)
    started = time.monotonic()
    failing = False
    with err.status(f"{job_id}: waiting") as line:

        def show(job: JobOut) -> None:
            nonlocal failing
            if failing:
                err.print(f"the API answers again; {job_id} is {job.status.value}", markup=False)
                failing = False
            line.update(f"{job_id}: {progress_text(job)}  [dim]{duration(time.monotonic() - started)}[/dim]")

        def trouble(exc: ClientError) -> None:
            nonlocal failing
            if not failing:
                err.print(f"the API did not answer ({exc}); still waiting for {job_id}", markup=False)
                failing = True
            line.update(f"{job_id}: the API did not answer; still waiting")

        return client.wait(job_id, interval=interval, on_poll=show, on_error=trouble)


def progress_text(job: JobOut) -> str:
    """The status line of a waited job: its status and attempt, and while a retry waits, how the last attempt
    ended and when the next one is due."""
    last = job.attempts[-1] if job.attempts else None
    text = styled(job.status) + (f", attempt {last.number}" if last else "")
    if last is not None and last.outcome is not None and not job.status.terminal:
        due = f"; retry at {when(job.not_before, '%H:%M:%S')}" if job.not_before else "; retrying"
        codes = exit_codes(last)
        why = f"exit {codes}" if codes != "-" else (last.reason or "no exit code")
        text += f" {escape(last.outcome.value)} ({escape(why)}){due}"
    return text


_T = TypeVar("_T")


def _ridden_out(call: Callable[[], _T], doing: str, interval: float) -> _T:
    """``call()``, made again through an outage (said once on stderr) until it answers; any other error raises."""
    said = False
    while True:
        try:
            return call()
        except ClientError as exc:
            if not transient(exc):
                raise
            if not said:
                err.print(f"the API did not answer ({exc}); {doing}", markup=False)
                said = True
            time.sleep(max(interval, 1.0))


def _first_look(client: DispatcherClient, job_id: str, interval: float) -> JobOut:
    """The job as it is now, an outage ridden out."""
    return _ridden_out(lambda: client.job(job_id), f"still waiting for {job_id}", interval)


def _print_page(page: LogPageOut) -> None:
    """A page's lines on stdout verbatim (a ``[container]`` prefix when several are followed), its gaps on stderr."""
    prefix = len(page.containers) > 1
    for gap in page.gaps:
        err.print(
            f"[{gap.container}] lines between {gap.after or 'the start'} and {gap.before} are gone: ACI keeps "
            "the last 4 MB of a container's log",
            markup=False,
        )
    for line in page.lines:
        print(f"[{line.container}] {line.text}" if prefix else line.text, flush=True)  # verbatim: no markup


def follow_logs(
    client: DispatcherClient, job_id: str, container: str | None, tail: int | None, interval: float
) -> JobOut:
    """Print a job's log lines as they appear, each once, by walking the API's cursor (``GET .../logs?after=``)
    from the current attempt's start (or its last ``tail`` lines) through every later attempt, until the job ended
    and its last attempt's harvested log is printed; returns the final job.

    An attempt's start goes to stderr (``── attempt 2 ──``). An outage is said once and ridden out.
    """
    after, shown = "", None
    while True:
        read = functools.partial(client.log_page, job_id, after, container=container, tail=tail)
        page = _ridden_out(read, f"still following {job_id}", interval)
        if page.attempt is not None and page.attempt != shown:
            if page.attempt > 1:
                err.print(f"[dim]── attempt {page.attempt} ──[/dim]")
            shown = page.attempt
        _print_page(page)
        if not page.more:
            return client.job(job_id)
        handed_on = page.next is not None and page.complete
        after = page.next or after
        if not handed_on:
            time.sleep(interval)


def follow_task_logs(client: DispatcherClient, job_id: str, index: int, tail: int | None, interval: float) -> TaskOut:
    """Print an array job's task's log lines as they appear, each once, through each of its runs (a failed task
    runs again in a later group: ``── run 2 ──``), until the task has ended and its last run's log is printed;
    returns the task. Each run is its group's log of the task's container, walked with the same cursor."""
    container = task_container(index)
    group: str | None = None
    after, first = "", True
    while True:
        doing = f"still following task {index} of {job_id}"
        task = _ridden_out(functools.partial(client.task, job_id, index), doing, interval)
        if task.group is not None and task.group != group:
            if group is not None:
                err.print(f"[dim]── run {task.runs} ──[/dim]")
                first = False
            group, after = task.group, ""
        page = None
        if group is not None:
            read = functools.partial(client.log_page, group, after, container=container, tail=tail if first else None)
            page = _ridden_out(read, doing, interval)
            _print_page(page)
            after = page.next or after
        if task.status.ended and (page is None or not page.more):
            return task
        time.sleep(interval)


@contextmanager
def watching(job_id: str) -> Iterator[None]:
    """Ctrl-C stops watching, not the job: say so, and exit 130 as an interrupted command does."""
    try:
        yield
    except KeyboardInterrupt:
        hint = f"the job carries on (dispatcher cancel {job_id} stops it)"
        err.print(f"\nStopped watching {job_id}; {hint}.", markup=False)
        raise typer.Exit(130) from None

"""``dispatcher schedule …`` and ``dispatcher rerun``: schedules managed and jobs run again, through the API."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dispatcher.domain.document import load_document
from dispatcher.domain.errors import JobError
from dispatcher.entrypoints import cli_watch
from dispatcher.entrypoints.api_models import ScheduleOut
from dispatcher.entrypoints.cli_common import USAGE, AsJson, Interval, Key, Url, api, finish, pairs, print_json
from dispatcher.entrypoints.cli_views import err, out, styled

app = typer.Typer(help="Schedules: job templates run on a cron expression.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")]


def _when(moment: dt.datetime | None) -> str:
    """A UTC time as people read it: to the minute."""
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M}Z" if moment is not None else "-"


def _print_schedule(schedule: ScheduleOut) -> None:
    spec = schedule.schedule
    state = "[yellow]suspended[/yellow]" if spec.suspend else "active"
    out.print(f"[bold]{escape(spec.name)}[/bold]  {escape(spec.cron)} ({escape(spec.time_zone)})  {state}")
    out.print(
        f"  concurrency {spec.concurrency_policy}, starting deadline "
        f"{spec.starting_deadline_seconds or '-'} s, missed {schedule.missed}"
    )
    if schedule.next_due:
        out.print("  next: " + ", ".join(_when(d) for d in schedule.next_due), highlight=False)
    if schedule.last_skipped:
        out.print(f"  last skipped {_when(schedule.last_skipped.due)}: {escape(schedule.last_skipped.reason)}")
    for title, runs in (("active", schedule.active), ("succeeded", schedule.succeeded), ("failed", schedule.failed)):
        for run in runs:
            due = _when(run.due) if run.due else "triggered"
            out.print(f"  {title:9} {escape(run.job_id)}  {due}  {escape(run.status)}", highlight=False)


def _read(file: Path) -> object:
    try:
        return load_document(file.read_bytes())
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror}") from None
    except JobError as exc:
        for problem in exc.errors:
            err.print(f"{file}: {problem}", markup=False)
        raise typer.Exit(USAGE) from None


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="A schedule file: schedule and job, YAML or JSON.")],
    *,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Create a schedule, or replace it keeping what it has run."""
    document = _read(file)
    schedule = document.get("schedule") if isinstance(document, dict) else None
    name = schedule.get("name") if isinstance(schedule, dict) else None
    if not isinstance(name, str):
        err.print(f"{file}: schedule.name: is required", markup=False)
        raise typer.Exit(USAGE)
    with api(url, key, as_json) as client:
        schedule, created = client.apply_schedule(name, document)
    if as_json:
        print_json(schedule)
        return
    out.print(f"Schedule [bold]{escape(name)}[/bold] {'created' if created else 'updated'}.")
    _print_schedule(schedule)


@app.command("list")
def list_schedules(*, url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """List schedules with their next due time."""
    with api(url, key, as_json) as client:
        page = client.schedules()
    if as_json:
        print_json(page)
        return
    if not page.items:
        out.print("No schedules.")
        return
    table = Table("NAME", "CRON", "ZONE", "POLICY", "NEXT", "ACTIVE", box=None, pad_edge=False)
    for s in page.items:
        spec = s.schedule
        following = "suspended" if spec.suspend else (_when(s.next_due[0]) if s.next_due else "-")
        table.add_row(spec.name, spec.cron, spec.time_zone, spec.concurrency_policy, following, str(len(s.active)))
    out.print(table)


@app.command()
def show(name: Name, *, url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Show a schedule: next due times, active jobs and history."""
    with api(url, key, as_json) as client:
        schedule = client.schedule(name)
    if as_json:
        print_json(schedule)
    else:
        _print_schedule(schedule)


@app.command()
def trigger(name: Name, *, url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Run a schedule's job now (whatever its concurrency policy)."""
    with api(url, key, as_json) as client:
        accepted = client.trigger_schedule(name, str(uuid.uuid4()))
    if as_json:
        print_json(accepted)
    else:
        out.print(f"Triggered [bold]{escape(name)}[/bold]: job [bold]{accepted.id}[/bold] {styled(accepted.status)}.")


def _toggle(name: str, suspend: bool, url: str | None, key: str | None, as_json: bool) -> None:
    with api(url, key, as_json) as client:
        schedule = client.suspend_schedule(name, suspend)
    if as_json:
        print_json(schedule)
    else:
        out.print(f"Schedule [bold]{escape(name)}[/bold] {'suspended' if suspend else 'resumed'}.")


@app.command()
def suspend(name: Name, *, url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Stop firing; active jobs go on."""
    _toggle(name, True, url, key, as_json)


@app.command()
def resume(name: Name, *, url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Fire again; the latest due time missed while suspended runs if within the starting deadline."""
    _toggle(name, False, url, key, as_json)


@app.command()
def delete(
    name: Name,
    *,
    cancel_active: Annotated[
        bool, typer.Option("--cancel-active", help="Cancel the schedule's active jobs.", metavar="")
    ] = False,
    url: Url = None,
    key: Key = None,
) -> None:
    """Delete a schedule; its active jobs go on unless --cancel-active."""
    with api(url, key) as client:
        cancelled = client.delete_schedule(name, cancel_active)
    out.print(
        f"Schedule [bold]{escape(name)}[/bold] deleted" + (f"; cancelled {', '.join(cancelled)}." if cancelled else ".")
    )


def rerun(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job to run again.")],
    *,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="KEY=VALUE for the first container; repeatable.")
    ] = None,
    image: Annotated[str | None, typer.Option(help="Another image for the first container.")] = None,
    command: Annotated[str | None, typer.Option(help="Another command, as a JSON array or one word.")] = None,
    cpu: Annotated[float | None, typer.Option(help="vCPU for the first container.")] = None,
    memory_gb: Annotated[
        float | None, typer.Option("--memory-gb", help="Memory in GB for the first container.")
    ] = None,
    timeout: Annotated[int | None, typer.Option("--timeout", help="Timeout in seconds.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="key=value labels merged over the old; repeatable.")] = None,
    failed_tasks: Annotated[
        bool, typer.Option("--failed-tasks", help="Only an array job's failed tasks.", metavar="")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the new job ends; exit 1 unless it Succeeded.", metavar="")
    ] = False,
    interval: Interval = 1.0,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Run a job again from its spec, with overrides; the new job records what it re-runs."""
    overrides: dict[str, object] = {}
    if env:
        overrides["env"] = pairs(env, "--env")
    if label:
        overrides["labels"] = pairs(label, "--label")
    if command is not None:
        try:
            parsed = json.loads(command)
        except ValueError:
            parsed = [command]
        overrides["command"] = parsed if isinstance(parsed, list) else [str(parsed)]
    for name, value in (("image", image), ("cpu", cpu), ("memoryGB", memory_gb), ("timeoutSeconds", timeout)):
        if value is not None:
            overrides[name] = value
    if failed_tasks:
        overrides["onlyFailedTasks"] = True
    with api(url, key, as_json) as client:
        job = client.rerun(job_id, overrides, str(uuid.uuid4()))
        if not wait:
            if as_json:
                print_json(job)
            else:
                out.print(
                    f"Re-running [bold]{escape(job_id)}[/bold] as job [bold]{job.id}[/bold]: {styled(job.status)}."
                )
            return
        if not as_json:
            err.print(f"Re-running {escape(job_id)} as job [bold]{job.id}[/bold].")
        with cli_watch.watching(job.id):
            job = cli_watch.wait(client, job.id, interval)
    finish(job, as_json)

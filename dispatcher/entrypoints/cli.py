"""The ``dispatcher`` command line: check specs locally, and submit, watch and manage jobs through the API.

Exit codes (:data:`~dispatcher.entrypoints.cli_common.EXIT_CODES`, also in ``--help``): 0 ok; 1 an awaited job
ended other than Succeeded; 2 invalid input (a spec, an option); 3 the server or the network failed (the problem
is printed, as JSON on stdout with ``--json``); 4 not found.
"""

from __future__ import annotations

import json
import sys
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dispatcher import __version__
from dispatcher.cli_bootstrap import ServiceBusAccess, enqueue_submission
from dispatcher.domain.errors import JobError
from dispatcher.domain.jobs import Status
from dispatcher.domain.tasks import TaskStatus
from dispatcher.entrypoints import cli_dlq, cli_runs, cli_setup, cli_specs, cli_tasks, cli_watch
from dispatcher.entrypoints.api_models import JobList
from dispatcher.entrypoints.cli_common import (
    API_ERROR,
    EXIT_CODES,
    JOB_NOT_SUCCEEDED,
    USAGE,
    AsJson,
    Interval,
    Key,
    Queue,
    ServiceBusConnection,
    ServiceBusNamespace,
    Url,
    api,
    client_config,
    fail,
    finish,
    jobs_queue,
    moment,
    pairs,
    print_json,
    servicebus_access,
    servicebus_failures,
)
from dispatcher.entrypoints.cli_views import err, jobs_table, out, print_job, styled
from dispatcher.entrypoints.submission import Submission, prepare_submission

app = typer.Typer(help="Run containers as jobs on Azure Container Instances.\n\n" + EXIT_CODES, no_args_is_help=True)


def _version(shown: bool) -> None:
    if shown:
        print(f"dispatcher {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.", metavar=""),
    ] = False,
) -> None:
    """Run containers as jobs on Azure Container Instances."""


app.add_typer(cli_dlq.app, name="dlq")
app.add_typer(cli_runs.app, name="schedule")
app.command("rerun")(cli_runs.rerun)
app.command("tasks")(cli_tasks.tasks)
app.command()(cli_specs.validate)
app.command()(cli_specs.schema)
app.command()(cli_specs.render)
app.command()(cli_setup.configure)
app.command()(cli_setup.login)
app.command()(cli_setup.whoami)


# --- talking to the API ------------------------------------------------------------------------------------


class Order(StrEnum):
    """How ``list`` orders jobs: both are indexes by submission time."""

    NEWEST = "newest"
    OLDEST = "oldest"


class Via(StrEnum):
    """How ``submit`` delivers a job."""

    HTTP = "http"
    SERVICEBUS = "servicebus"


# --- commands -----------------------------------------------------------------------------------------------


def _enqueue(access: ServiceBusAccess, queue: str, submission: Submission, message_id: str) -> None:
    """Send a submission straight to the jobs queue."""
    with servicebus_failures():
        enqueue_submission(access, queue, submission.body, message_id, submission.content_type)


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="A job spec file, YAML or JSON.")],
    *,
    job_id: Annotated[str | None, typer.Option("--id", help="The job id (overrides the spec's id).")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the job ends; exit 1 unless it Succeeded.", metavar="")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Stream the job's logs until it ends (implies --wait).", metavar="")
    ] = False,
    container: Annotated[str | None, typer.Option(help="With --follow: the container whose log to stream.")] = None,
    via: Annotated[
        Via, typer.Option("--via", help="Submit through the HTTP API or straight to Service Bus.")
    ] = Via.HTTP,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Have the server validate it against its policy; record nothing.", metavar=""),
    ] = False,
    servicebus: ServiceBusConnection = None,
    namespace: ServiceBusNamespace = None,
    queue: Queue = None,
    interval: Interval = 1.0,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Validate a job spec locally, then submit it; optionally wait for it or stream its logs."""
    try:
        text = file.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror}") from None
    try:
        submission = prepare_submission(text, file.name, job_id)
        if submission.job_id is None:  # chosen here, so that a retried submission is the same job
            submission = prepare_submission(text, file.name, str(uuid.uuid4()))
    except JobError as exc:
        err.print(f"[red]✗[/red] {escape(str(file))} is invalid:")
        for problem in exc.errors:
            err.print(f"    {problem.loc or '(document)'}: {problem.message}", markup=False)
        raise typer.Exit(USAGE) from None

    if dry_run:
        if wait or follow or via is Via.SERVICEBUS:
            fail(USAGE, "--dry-run records nothing: it takes no --wait, --follow or --via servicebus")
        with api(url, key, as_json) as client:
            checked = client.dry_run(submission.body, submission.content_type)
        if as_json:
            print_json(checked)
        else:
            out.print(f"[green]✓[/green] {escape(str(file))} is valid here; nothing was submitted.")
        return

    if via is Via.SERVICEBUS:
        access = servicebus_access(servicebus, namespace)
        if wait or follow:
            client_config(url, key)  # before sending: watching needs the API
        chosen = str(submission.job_id)
        target = jobs_queue(queue)
        _enqueue(access, target, submission, chosen)
        if not (wait or follow):
            if as_json:
                print(json.dumps({"id": chosen, "queue": target, "messageId": chosen}))
            else:
                out.print(f"Enqueued job [bold]{chosen}[/bold] on Service Bus queue {target!r}.")
            return
        with api(url, key, as_json) as client, cli_watch.watching(chosen):
            cli_watch.appear(client, chosen, timeout=60.0, interval=interval)
            job = (
                cli_watch.follow_logs(client, chosen, container, None, interval)
                if follow
                else cli_watch.wait(client, chosen, interval)
            )
        finish(job, as_json)
        return

    with api(url, key, as_json) as client:
        accepted = client.submit(submission.body, submission.content_type, has_id=True)
        if not (wait or follow):
            if as_json:
                print_json(accepted)
            elif accepted.duplicate:
                when = f" at {accepted.updated_at:%Y-%m-%d %H:%M:%S %Z}" if accepted.updated_at else ""
                out.print(
                    f"Job [bold]{accepted.id}[/bold] was already submitted ({styled(accepted.status)}{when}); "
                    f"to run it again: dispatcher rerun {accepted.id}"
                )
            else:
                out.print(f"Submitted job [bold]{accepted.id}[/bold]: {styled(accepted.status)}.")
            return
        if not as_json:
            err.print(f"Submitted job [bold]{accepted.id}[/bold].")
        with cli_watch.watching(accepted.id):
            if follow:
                job = cli_watch.follow_logs(client, accepted.id, container, None, interval)
            else:
                job = cli_watch.wait(client, accepted.id, interval)
    finish(job, as_json)


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    *,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Show a job: status, attempts with exit codes, durations, pools and reasons, and cost."""
    with api(url, key, as_json) as client:
        job = client.job(job_id)
    if as_json:
        print_json(job)
    else:
        print_job(job)


@app.command("list")
def list_jobs(
    *,
    status_filter: Annotated[
        Status | None, typer.Option("--status", case_sensitive=False, help="Only jobs in this status.")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="Only jobs with this label, as key=value; repeatable.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Submitted at or after this time: 90m, 1h, 2d ago, or ISO 8601 with a zone.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Submitted before this time: relative or ISO 8601 with a zone.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Jobs per page.")] = 50,
    continuation: Annotated[str | None, typer.Option(help="Start at this page token.")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Follow continuation tokens to the last page.", metavar="")
    ] = False,
    sort: Annotated[
        Order, typer.Option("--sort", case_sensitive=False, help="By submission time: newest or oldest first.")
    ] = Order.NEWEST,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first, filtered by status, labels and submission time."""
    oldest = sort is Order.OLDEST
    wanted = status_filter.value if status_filter else None
    since, until = moment(since, "--since"), moment(until, "--until")
    labels = pairs(label or [], "--label")
    with api(url, key, as_json) as client:
        if every:
            found = client.all_jobs(
                status=wanted, labels=labels, since=since, until=until, limit=limit, oldest_first=oldest
            )
            page = JobList(items=list(found), continuation_token=None)
        else:
            page = client.jobs(
                status=wanted,
                labels=labels,
                since=since,
                until=until,
                limit=limit,
                continuation=continuation,
                oldest_first=oldest,
            )
    if as_json:
        print_json(page)
        return
    if not page.items:
        out.print("No jobs.")
    else:
        out.print(jobs_table(page.items))
    if page.continuation_token:
        err.print(f"More jobs: --all, or --continuation {page.continuation_token}", markup=False)


@app.command()
def logs(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    *,
    container: Annotated[str | None, typer.Option(help="Only this container's log.")] = None,
    task: Annotated[int | None, typer.Option(min=0, help="An array job's task: its latest run's log.")] = None,
    run: Annotated[int | None, typer.Option(min=1, help="With --task: that run's log (1 is the first).")] = None,
    attempt: Annotated[int | None, typer.Option(min=1, help="That attempt's log (1 is the first).")] = None,
    tail: Annotated[
        int | None, typer.Option(min=0, help="Only the last N lines (with --follow: begin at them).")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Print new lines until the job (or --task) ends; exit 1 unless it Succeeded.",
            metavar="",
        ),
    ] = False,
    interval: Interval = 1.0,
    url: Url = None,
    key: Key = None,
) -> None:
    """Print a job's log: live from ACI while it runs, the harvested log after it ended."""
    if run is not None and task is None:
        fail(USAGE, "--run needs --task")
    if task is not None and (container or attempt):
        fail(USAGE, "--task shows one task's log: it takes --run or --follow, not --container or --attempt")
    if (attempt is not None or run is not None) and follow:
        fail(USAGE, "--attempt and --run show a log as it is: they take no --follow")
    with api(url, key) as client:
        if task is not None and follow:
            with cli_watch.watching(job_id):
                followed = cli_watch.follow_task_logs(client, job_id, task, tail, interval)
            if followed.status is not TaskStatus.SUCCEEDED:
                why = f" ({escape(followed.reason)})" if followed.reason else ""
                err.print(f"{escape(job_id)} task {task}: {escape(followed.status.value)}{why}")
                raise typer.Exit(JOB_NOT_SUCCEEDED)
            return
        if task is not None:
            text = client.task_logs(job_id, task, run=run, tail=tail)
            sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
            return
        if not follow:
            text = client.logs(job_id, container=container, tail=tail, attempt=attempt)
            sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
            return
        with cli_watch.watching(job_id):
            job = cli_watch.follow_logs(client, job_id, container, tail, interval)
    if job.status is not Status.SUCCEEDED:
        err.print(f"{escape(job_id)}: {styled(job.status)}" + (f" ({escape(job.reason)})" if job.reason else ""))
        raise typer.Exit(JOB_NOT_SUCCEEDED)


@app.command()
def cancel(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    *,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a job: a queued one at once, a running one when the reconciler next runs. Safe to repeat."""
    with api(url, key, as_json) as client:
        job = client.cancel(job_id)
    if as_json:
        print_json(job)
    elif job.status is Status.CANCELLED:
        out.print(f"Job [bold]{job.id}[/bold] is {styled(job.status)}.")
    elif job.status.terminal:
        out.print(f"Job [bold]{job.id}[/bold] had already ended: {styled(job.status)}.")
    else:
        out.print(f"Cancellation of [bold]{job.id}[/bold] requested ({styled(job.status)}); the reconciler stops it.")


@app.command()
def outputs(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    *,
    download: Annotated[
        Path | None, typer.Option(help="Fetch every output into this folder (paths may not leave it).")
    ] = None,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """List the files a job left in its workspace, or download them all."""
    with api(url, key, as_json) as client:
        files = client.output_files(job_id)
        written = client.download_outputs(job_id, download, files) if download is not None else []
    if as_json:
        print(json.dumps({"jobId": job_id, "files": files}))
        return
    if not files:
        out.print(f"Job {escape(job_id)} has no outputs.")
    if download is None:
        for name in files:
            out.print(name, markup=False, highlight=False)
        return
    for name, path in zip(files, written, strict=True):
        shown = Path(download, name)  # as the user named the folder, not resolved
        out.print(f"downloaded {shown} ({path.stat().st_size} bytes)", markup=False, highlight=False)


@app.command()
def usage(
    *,
    since: Annotated[
        str | None, typer.Option("--since", help="From this day (30d, 2026-11-01T00:00Z); 31 days.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="To this day, included. Default: today (UTC).")] = None,
    by: Annotated[str, typer.Option("--by", help="team, or label:NAME for one label's values.")] = "team",
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Jobs, vCPU-seconds, GB-seconds and estimated cost per team (yours, or every team's for an admin) or label."""
    with api(url, key, as_json) as client:
        report = client.usage(since=moment(since, "--since"), until=moment(until, "--until"), by=by)
    if as_json:
        print_json(report)
        return
    table = Table(title=f"Usage {report.since} to {report.until} (UTC) by {escape(report.by)}")
    for column in ("key", "jobs", "vCPU-s", "GB-s", f"cost ({report.currency})"):
        table.add_column(column, justify="left" if column == "key" else "right")
    for item in report.items:
        table.add_row(
            escape(item.key), str(item.jobs), f"{item.vcpu_seconds:,.0f}", f"{item.gb_seconds:,.0f}", f"{item.cost:.4f}"
        )
    out.print(table)


@app.command()
def health(*, url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Check the service's dependencies; exit 3 when it is degraded."""
    with api(url, key, as_json) as client:
        report = client.health()
    if as_json:
        print_json(report)
    else:
        for name, check in report.checks.items():
            mark = "[green]✓[/green]" if check.status == "ok" else "[red]✗[/red]"
            out.print(
                f"{mark} {escape(name)}  {check.latency_ms:.0f}ms"
                + (f"  {escape(check.detail)}" if check.detail else "")
            )
    if report.status != "ok":
        raise typer.Exit(API_ERROR)


def main() -> None:
    """Entry point of the ``dispatcher`` console script."""
    app()


if __name__ == "__main__":
    main()

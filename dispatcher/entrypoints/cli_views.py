"""How the CLI shows jobs: coloured statuses, durations, exit codes, money, the jobs table and a job's summary."""

from __future__ import annotations

import datetime as dt
import math

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dispatcher.domain.jobs import Status
from dispatcher.entrypoints.api_models import AttemptOut, JobOut, TaskCountsOut

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


STATUS_STYLE = {
    Status.QUEUED: "cyan",
    Status.LAUNCHING: "cyan",
    Status.RUNNING: "blue",
    Status.SUCCEEDED: "green",
    Status.FAILED: "red",
    Status.TIMED_OUT: "red",
    Status.CANCELLED: "yellow",
    Status.REJECTED: "red",
}


def styled(status: Status) -> str:
    """The status as rich markup, coloured by outcome."""
    return f"[{STATUS_STYLE[status]}]{status.value}[/]"


def duration(seconds: float | None) -> str:
    """A short human duration: ``850ms``, ``12.3s``, ``4m 05s``, ``2h 03m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def attempt_seconds(attempt: AttemptOut) -> float | None:
    """How long an attempt's group ran: start (or launch) to finish, or until now while it runs."""
    start = attempt.started_at or attempt.launched_at
    if start is None:
        return None
    end = attempt.finished_at or (None if attempt.outcome else dt.datetime.now(dt.UTC))
    return None if end is None else max(0.0, (end - start).total_seconds())


def run_seconds(job: JobOut) -> float | None:
    """The job's run time: the sum over its attempts."""
    spans = [s for s in map(attempt_seconds, job.attempts) if s is not None]
    return sum(spans) if spans else None


def exit_codes(attempt: AttemptOut | None) -> str:
    """An attempt's exit codes: one number when every container agrees, else ``name=code`` pairs."""
    if attempt is None or not attempt.exit_codes:
        return "-"
    codes = attempt.exit_codes
    if len(set(codes.values())) == 1:
        only = next(iter(codes.values()))
        return "-" if only is None else str(only)
    return " ".join(f"{name}={'-' if code is None else code}" for name, code in codes.items())


def money(amount: float | None, currency: str) -> str:
    """An amount with two significant digits below a cent (ACI bills per second): ``0.0000014 USD``."""
    if amount is None:
        return "-"
    if amount <= 0:
        return f"0 {currency}"
    decimals = min(10, max(2, 1 - math.floor(math.log10(amount))))
    return f"{amount:.{decimals}f} {currency}"


def when(moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M:%SZ") -> str:
    """A moment in UTC."""
    return "-" if moment is None else moment.astimezone(dt.UTC).strftime(fmt)


def jobs_table(jobs: list[JobOut], title: str | None = None) -> Table:
    """The table ``list`` prints: status, attempts, exit code, run time and cost per job."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in ("id", "name", "status", "attempts", "exit", "run time", "cost", "submitted (UTC)"):
        table.add_column(column, no_wrap=column != "name", justify="right" if column == "cost" else "left")
    for job in jobs:
        last = job.attempts[-1] if job.attempts else None
        status = styled(job.status) + (
            " [yellow](cancelling)[/]" if job.cancel_requested and not job.status.terminal else ""
        )
        tasks = job.tasks
        table.add_row(
            escape(job.id),
            escape(job.name or "-"),
            status,
            str(len(job.attempts)) if tasks is None else f"{tasks.succeeded + tasks.failed}/{tasks.total} tasks",
            exit_codes(last) if tasks is None else (f"{tasks.failed} failed" if tasks.failed else ""),
            duration(run_seconds(job)),
            money(job.cost, job.currency) if job.attempts or job.cost else "-",
            when(job.submitted_at, "%Y-%m-%d %H:%M"),
        )
    return table


def print_job(job: JobOut) -> None:
    """A human summary of one job: status, reason, attempts with exit codes, durations, pools, and cost."""
    out.print(f"[bold]{escape(job.id)}[/bold]" + (f"  {escape(job.name)}" if job.name else ""))
    out.print(f"  status     {styled(job.status)}" + (f"  ({escape(job.reason)})" if job.reason else ""))
    if job.cancel_requested and not job.status.terminal:
        out.print("  cancel     requested; the reconciler stops the running group")
    if job.labels:
        out.print("  labels     " + " ".join(f"{k}={v}" for k, v in sorted(job.labels.items())), markup=False)
    out.print(f"  submitted  {when(job.submitted_at)}   updated {when(job.updated_at)}")
    if job.not_before and not job.status.terminal:
        out.print(f"  next try   not before {when(job.not_before)}")
    out.print(f"  run time   {duration(run_seconds(job))}   cost {money(job.cost, job.currency)}")
    if job.last_error:
        out.print(f"  last error {job.last_error}", markup=False)
    for problem in job.errors:
        out.print(f"  [red]✗[/red] {escape(problem.loc or '(document)')}: {escape(problem.message)}", highlight=False)
    if job.tasks is not None:
        print_counts(job)
    if job.attempts:
        table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2, 0, 0))
        for column in ("#", "group", "pool", "outcome", "exit", "started", "ran", "cost", "reason"):
            table.add_column(column)
        for attempt in job.attempts:
            table.add_row(
                str(attempt.number),
                escape(attempt.group),
                escape(attempt.pool),
                styled(attempt.outcome) if attempt.outcome else "[blue]running[/]",
                exit_codes(attempt),
                when(attempt.started_at or attempt.launched_at, "%H:%M:%S"),
                duration(attempt_seconds(attempt)),
                money(attempt.cost, job.currency),
                escape(attempt.reason or ""),
            )
        out.print()
        out.print(table)
    if job.outputs and job.outputs.files:
        more = "" if job.outputs.complete else " or more"
        shown = ", ".join(job.outputs.first[:10]) + (", ..." if job.outputs.files > 10 else "")
        size = f"{job.outputs.bytes:,} bytes"
        files = f"{job.outputs.files}{more} file" + ("" if job.outputs.files == 1 and not more else "s")
        out.print(f"\n  outputs    {files}, {size}: {shown}", markup=False)


def counts_text(counts: TaskCountsOut) -> str:
    """``200 tasks: 180 succeeded, 3 failed, 10 running, 7 pending (92%)``, with markup."""
    parts = [
        f"[green]{counts.succeeded} succeeded[/green]",
        f"[red]{counts.failed} failed[/red]" if counts.failed else "0 failed",
        f"[blue]{counts.running} running[/blue]",
        f"{counts.pending} pending",
    ]
    if counts.cancelled:
        parts.append(f"[yellow]{counts.cancelled} cancelled[/yellow]")
    return f"{counts.total} tasks: " + ", ".join(parts) + f" ({counts.progress:.0%})"


def print_counts(job: JobOut) -> None:
    """What ``status`` adds for an array job: its counts, and the tasks that failed for good."""
    counts = job.tasks
    if counts is None:
        return
    out.print(f"  tasks      {counts_text(counts)}")
    if counts.failed_indexes:
        shown = ", ".join(str(i) for i in counts.failed_indexes[:30])
        more = f" and {len(counts.failed_indexes) - 30} more" if len(counts.failed_indexes) > 30 else ""
        out.print(f"  failed     tasks {shown}{more}  (dispatcher tasks {job.id} --status Failed)", markup=False)
    if counts.stopping and not job.status.terminal:
        out.print(f"  stopping   {escape(counts.stopping)}")

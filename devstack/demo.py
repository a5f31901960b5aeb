"""``make demo``: the example jobs run end to end on the local stack, driven through the CLI over HTTP.

It starts devstack on random ports, submits every example with the ``dispatcher`` CLI (as a separate
process, configured through ``DISPATCHER_URL`` and ``DISPATCHER_KEY``), shows their progress live, prints
the final table, the array job's tasks and the report job's result file, applies a schedule and shows it firing
(moving the dispatcher's clock to its due time), re-runs the timed-out job with another command, checks that no
container group is left, and stops the stack. The exit status is 0 only if every job ended as expected.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from rich.console import Console
from rich.live import Live
from rich.text import Text

from devstack.identity import API_SCOPE
from devstack.stack import RESOURCE_GROUP, ROOT, SUBSCRIPTION, Stack, StackOptions
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.domain.jobs import Status
from dispatcher.entrypoints.api_models import JobOut
from dispatcher.entrypoints.cli import jobs_table
from dispatcher.entrypoints.client import ClientError, DispatcherClient

EXAMPLES = ROOT / "examples"
SCHEDULE = "nightly-report"
T = TypeVar("T")
RECONCILE_EVERY_2S = "*/2 * * * * *"


@dataclass(frozen=True)
class Expectation:
    """One example job: its file, the id the demo gives it, how it must end and with how many attempts."""

    file: str
    job_id: str
    status: Status
    attempts: int | None = None


JOBS = (
    Expectation("report.yaml", "demo-report", Status.SUCCEEDED, 1),
    Expectation("multi-container.yaml", "demo-multi-container", Status.SUCCEEDED, 1),
    Expectation("spot-retries.yaml", "demo-spot-retries", Status.SUCCEEDED, 2),
    Expectation("timeout.yaml", "demo-timeout", Status.TIMED_OUT, 1),
    Expectation("hello.yaml", "demo-hello", Status.SUCCEEDED, 1),
    Expectation("array-shards.yaml", "demo-shards", Status.SUCCEEDED, 0),
)


USER = "alice"
"""The development user the demo signs in as: team ml, allowed to submit and to manage schedules."""


class Demo:
    """One run of the demo against a started stack."""

    def __init__(self, stack: Stack, work: Path, console: Console, deadline_seconds: float) -> None:
        assert stack.runner is not None, "the demo needs the Functions runner"
        self.stack = stack
        self.work = work
        self.console = console
        self.deadline_seconds = deadline_seconds
        self.url = stack.runner.url
        self.failures: list[str] = []

    # -- the CLI, as a user runs it --

    def cli(self, *args: str, cwd: Path = ROOT) -> int:
        """Run ``dispatcher ARGS`` as its own process in ``cwd``, showing the command line and letting it print."""
        self.console.print(f"[bold]$ dispatcher {shlex.join(args)}[/bold]", highlight=False)
        env = {**os.environ, "DISPATCHER_URL": self.url, **self.sign_in()}
        env.pop("DISPATCHER_KEY", None)
        env.setdefault("COLUMNS", str(self.console.width))
        sys.stdout.flush()
        completed = subprocess.run(
            [sys.executable, "-m", "dispatcher.entrypoints.cli", *args], cwd=cwd, env=env, check=False, timeout=120
        )
        return completed.returncode

    def sign_in(self) -> dict[str, str]:
        """The CLI signs in as the demo's development user, through the stack's issuer."""
        return {
            "DISPATCHER_SCOPE": API_SCOPE,
            "DISPATCHER_AUTHORITY": self.stack.identity.authority,
            "DISPATCHER_CA_BUNDLE": str(self.stack.tls.ca),
            "DISPATCHER_DEV_USER": USER,
        }

    def check(self, ok: bool, what: str) -> None:
        self.console.print(f"  {'[green]✓[/green]' if ok else '[red]✗[/red]'} {what}", highlight=False)
        if not ok:
            self.failures.append(what)

    # -- the steps --

    def submit_all(self) -> None:
        self.console.rule(f"Signed in as the development user {USER} (team ml), through devstack's Entra ID issuer")
        self.check(self.cli("whoami") == 0, f"signed in as {USER}")
        self.console.rule("Submitting the examples through the CLI over HTTP")
        for job in JOBS:
            code = self.cli("submit", f"examples/{job.file}", "--id", job.job_id)
            if code != 0:
                self.failures.append(f"submit {job.file} exited {code}")

    def watch(self, client: DispatcherClient) -> list[JobOut]:
        """A live table of the jobs until every one is terminal (or the deadline passes)."""
        self.console.rule("Live progress (the reconciler runs every 2 s)")
        deadline = time.monotonic() + self.deadline_seconds
        jobs = self._poll(client)
        with Live(jobs_table(jobs), console=self.console, refresh_per_second=4) as live:
            while not all(j.status.terminal for j in jobs) and time.monotonic() < deadline:
                time.sleep(1.0)
                jobs = self._poll(client)
                live.update(jobs_table(jobs))
        if not self.console.is_terminal:
            self.console.print()  # Live leaves its last frame without a line end when not on a terminal
        if not all(j.status.terminal for j in jobs):
            self.failures.append(f"not every job ended within {self.deadline_seconds:g} s")
        return jobs

    def _poll(self, client: DispatcherClient) -> list[JobOut]:
        return [client.job(job.job_id) for job in JOBS]

    def show_results(self) -> None:
        self.console.rule("The final table")
        self.cli("list")
        self.console.rule("The Spot job: failed once, succeeded on its retry")
        self.cli("status", "demo-spot-retries")
        self.console.rule("The array job: 24 shards in two groups; shard 5 succeeded on its second run")
        self.cli("status", "demo-shards")
        self.cli("tasks", "demo-shards", "--limit", "8")
        self.cli("logs", "demo-shards", "--task", "5", "--run", "1")
        self.console.rule("The report job's result file, from its workspace")
        self.cli("outputs", "demo-report", "--download", "outputs", cwd=self.work)
        report = self.work / "outputs" / "report.txt"
        self.console.print("[bold]$ cat outputs/report.txt[/bold]")
        if report.is_file():
            self.console.print(report.read_text().rstrip("\n"), markup=False, highlight=False)
        else:
            self.failures.append("report.txt was not downloaded")

    def check_jobs(self, jobs: list[JobOut]) -> None:
        self.console.rule("Checks")
        found = {j.id: j for j in jobs}
        for job in JOBS:
            seen = found.get(job.job_id)
            status = seen.status if seen else None
            attempts = len(seen.attempts) if seen else 0
            ok = status is job.status and (job.attempts is None or attempts == job.attempts)
            if seen is not None and seen.tasks is not None:
                ok = ok and seen.tasks.succeeded == seen.tasks.total
            want = f"{job.status.value}" + (f", {_attempts(job.attempts)}" if job.attempts else "")
            got = f"{status.value if status else 'unknown'}, {_attempts(attempts)}"
            self.check(ok, f"{job.file}: {want}" + ("" if ok else f" (got {got})"))

    def check_no_groups_left(self) -> None:
        """Every group is deleted once its job ends; the reconciler may need a tick or two after the last one."""
        deadline = time.monotonic() + 60
        with ContainerInstanceManagementClient(
            DevstackCredential(), SUBSCRIPTION, base_url=self.stack.aci.url, connection_verify=str(self.stack.tls.ca)
        ) as aci:
            while True:
                groups = sorted(str(g.name) for g in aci.container_groups.list_by_resource_group(RESOURCE_GROUP))
                if not groups or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
        self.check(not groups, "no container group left in the ACI emulator" + (f": {groups}" if groups else ""))

    def schedule_and_rerun(self, client: DispatcherClient) -> None:
        """A schedule firing at its next due time, and a re-run of the timed-out job with another command."""
        self.console.rule("A schedule: every night at 02:30 in Amsterdam")
        self.cli("schedule", "apply", "examples/schedules/nightly-report.yaml")
        due = client.schedule(SCHEDULE).next_due[0]
        wait = (due - dt.datetime.now(dt.UTC)).total_seconds() + 1
        self.console.print(
            f"(the demo moves the dispatcher's clock {wait / 3600:.1f} h on, to {due:%Y-%m-%d %H:%M} UTC)"
        )
        self.stack.advance_clock(wait)
        fired = f"{SCHEDULE}-{due:%Y%m%d%H%M}"
        ended = self._until(lambda: client.schedule(SCHEDULE).succeeded, f"the schedule's job {fired} to succeed")
        self.check(bool(ended) and ended[0].job_id == fired, f"{SCHEDULE} fired {fired} once, at its due time")
        self.cli("schedule", "show", SCHEDULE)
        self.cli("schedule", "delete", SCHEDULE)
        self.console.rule("A re-run: the timed-out job again, with a command that ends in time")
        self.cli("rerun", "demo-timeout", "--command", '["sh", "-c", "echo a shorter run; sleep 1"]', "--wait")
        reruns = client.job("demo-timeout").reruns
        rerun = client.job(reruns[-1]) if reruns else None
        ok = rerun is not None and rerun.status is Status.SUCCEEDED and rerun.rerun_of == "demo-timeout"
        self.check(ok, "the re-run of demo-timeout succeeded and names what it re-runs")

    def _until(self, probe: Callable[[], T], what: str, timeout: float = 60) -> T:
        deadline = time.monotonic() + timeout
        while not (found := probe()) and time.monotonic() < deadline:
            time.sleep(1.0)
        if not found:
            self.failures.append(f"timed out waiting for {what}")
        return found

    def run(self) -> int:
        self.submit_all()
        with DispatcherClient(self.url, token=lambda: self.stack.token(USER)) as client:
            jobs = self.watch(client)
            self.show_results()
            self.check_jobs(jobs)
            self.schedule_and_rerun(client)
        self.check_no_groups_left()
        if self.failures:
            self.console.print(f"[red]The demo failed:[/red] {'; '.join(self.failures)}", highlight=False)
            return 1
        self.console.print("[green]Every example ended as expected.[/green]")
        return 0


def _attempts(count: int) -> str:
    return f"{count} attempt" + ("" if count == 1 else "s")


def _quiet_logs() -> None:
    """A clean transcript: only warnings and errors from the stack and the libraries."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("azure", "uamqp", "proton", "uvicorn", "devstack", "dispatcher"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the process exit status (0 when every example ended as expected)."""
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__)
    parser.add_argument("--state-dir", type=Path, help="Keep the stack's state here (default: a temporary folder).")
    parser.add_argument("--deadline", type=float, default=150.0, help="Seconds to wait for every job to end.")
    args = parser.parse_args(argv)
    _quiet_logs()
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=120)  # a transcript: wide enough for the tables
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dispatcher-demo-") as scratch:
        state = args.state_dir or Path(scratch) / "state"
        console.rule("Starting devstack: ACI, Files, Service Bus, Key Vault, Azurite and the Functions runner")
        try:
            stack = Stack(StackOptions(state_dir=state, http_port=0, reconcile_schedule=RECONCILE_EVERY_2S)).start()
        except Exception as exc:
            console.print(Text.assemble(("devstack did not start: ", "red"), f"{type(exc).__name__}: {exc}"))
            return 1
        try:
            assert stack.runner is not None
            console.print(f"API: {stack.runner.url}   (the CLI signs in as {USER} with $DISPATCHER_DEV_USER)")
            console.print(
                f"Dashboard: {stack.runner.url}/ui/   (sign in with the function key, in {stack.runner.keys_file}, "
                "while the stack runs; make dev keeps one running)"
            )
            code = Demo(stack, Path(scratch), console, args.deadline).run()
        except ClientError as exc:
            console.print(Text.assemble(("The API failed: ", "red"), str(exc)))
            code = 1
        finally:
            console.rule("Stopping devstack")
            logging.getLogger("proton").setLevel(logging.CRITICAL)  # connections reset as the emulators stop
            stack.stop()
    console.print(f"Done in {time.monotonic() - started:.0f} s.")
    return code


if __name__ == "__main__":
    sys.exit(main())

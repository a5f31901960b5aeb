"""End to end: CLI → HTTP API → Service Bus → intake → ACI emulator running real processes → reconciler → API.

One whole devstack for the module, with the reconciler's timer firing every second as in production
(nothing here invokes it by hand). The CLI runs in-process through typer's runner, configured the way a
user configures it: ``DISPATCHER_URL`` and ``DISPATCHER_KEY``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from devstack.stack import ROOT, Stack, StackOptions
from dispatcher.domain.jobs import Status
from dispatcher.entrypoints.cli import app
from tests.fixtures.aci import wait_for
from tests.fixtures.host_keys import azd_environment, host_keys_stub
from tests.fixtures.stack import StackClient

EVERY_SECOND = "*/1 * * * * *"
runner = CliRunner()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    options = StackOptions(state_dir=tmp_path_factory.mktemp("stack"), reconcile_schedule=EVERY_SECOND)
    started = Stack(options).start()
    client = StackClient(started)
    yield client
    client.close()
    started.stop()


@pytest.fixture(autouse=True)
def configured(stack: StackClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI finds the API through the environment, as a user would configure it."""
    assert stack.stack.runner is not None
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DISPATCHER_CONFIG", raising=False)
    monkeypatch.setenv("DISPATCHER_URL", stack.stack.runner.url)
    monkeypatch.setenv("DISPATCHER_KEY", stack.stack.runner.function_key)


def dispatcher(*args: str) -> Any:
    return runner.invoke(app, list(args))


def spec(tmp_path: Path, name: str, command: str, **extra: Any) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "image": "busybox", "command": ["sh", "-c", command], **extra}))
    return path


def test_the_report_example_succeeds_and_the_cli_shows_its_logs_and_result_file(tmp_path: Path) -> None:
    # Given the report example, which reads a share and a secret volume and writes to its workspace
    example = str(ROOT / "examples" / "report.yaml")
    # When it is submitted over HTTP and awaited
    submitted = dispatcher("submit", example, "--id", "e2e-report", "--wait")
    # Then it succeeded, its log and result file are visible through the CLI
    assert submitted.exit_code == 0, submitted.output
    status = json.loads(dispatcher("status", "e2e-report", "--json").stdout)
    assert status["status"] == "Succeeded"
    assert status["attempts"][0]["exitCodes"] == {"check-input": 0, "report": 0}
    logs = dispatcher("logs", "e2e-report", "--container", "report")
    assert "database password present: True" in logs.stdout
    downloaded = dispatcher("outputs", "e2e-report", "--download", str(tmp_path / "out"))
    assert downloaded.exit_code == 0, downloaded.output
    assert (tmp_path / "out" / "report.txt").read_text().startswith("report for 2026-11-22: 2 input files")


def test_a_job_enqueued_straight_on_service_bus_runs_and_the_cli_follows_it(stack: StackClient, tmp_path: Path) -> None:
    # Given a job that prints three lines
    path = spec(tmp_path, "via-bus", "for i in 1 2 3; do echo line $i; done")
    # When it is enqueued with the Service Bus SDK and followed through the API
    result = dispatcher(
        "submit",
        str(path),
        "--id",
        "e2e-via-bus",
        "--via",
        "servicebus",
        "--servicebus-connection",
        stack.stack.servicebus.connection_string,
        "--follow",
        "--interval",
        "0.3",
    )
    # Then intake picked it up, it ran, and its log lines were streamed once each
    assert result.exit_code == 0, result.output
    assert [line for line in result.stdout.splitlines() if line.startswith("line ")] == ["line 1", "line 2", "line 3"]
    assert stack.record("e2e-via-bus") is not None


def test_wait_exits_1_and_shows_the_exit_code_when_the_job_fails(tmp_path: Path) -> None:
    path = spec(tmp_path, "fails", "echo about to fail; exit 3")
    result = dispatcher("submit", str(path), "--id", "e2e-fails", "--wait", "--json")
    assert result.exit_code == 1, result.output
    job = json.loads(result.stdout)
    assert job["status"] == "Failed"
    assert job["attempts"][-1]["exitCodes"] == {"main": 3}


def test_cancel_stops_a_running_job_and_no_group_is_left(stack: StackClient, tmp_path: Path) -> None:
    # Given a job that is running
    path = spec(tmp_path, "sleeper", "echo sleeping; sleep 300")
    assert dispatcher("submit", str(path), "--id", "e2e-sleeper").exit_code == 0
    stack.wait_status("e2e-sleeper", Status.RUNNING, timeout=60)
    # When it is cancelled through the CLI
    cancelled = dispatcher("cancel", "e2e-sleeper")
    # Then the reconciler stops it, and its group is deleted
    assert cancelled.exit_code == 0, cancelled.output
    stack.wait_status("e2e-sleeper", Status.CANCELLED, timeout=60)
    wait_for(
        lambda: not any(g.startswith("e2e-sleeper-") for g in stack.groups()),
        timeout=60,
        interval=0.5,
        what="the group to be deleted",
    )
    assert "Cancelled" in dispatcher("status", "e2e-sleeper").stdout


def test_list_filters_by_label_and_status(tmp_path: Path) -> None:
    labelled = spec(tmp_path, "labelled", "true", labels={"project": "e2e-listing"})
    assert dispatcher("submit", str(labelled), "--id", "e2e-labelled", "--wait").exit_code == 0
    result = dispatcher("list", "--label", "project=e2e-listing", "--status", "Succeeded", "--all", "--json")
    assert result.exit_code == 0, result.output
    assert [item["id"] for item in json.loads(result.stdout)["items"]] == ["e2e-labelled"]


def test_an_unknown_job_exits_4_through_the_real_api() -> None:
    result = dispatcher("status", "e2e-no-such-job")
    assert result.exit_code == 4
    assert "404" in result.output


def test_a_spec_the_service_refuses_by_policy_exits_3_with_the_field(tmp_path: Path) -> None:
    # Given a well-formed spec that mounts a share the operator did not allow
    path = tmp_path / "forbidden.json"
    container = {"name": "main", "image": "busybox", "mounts": [{"volume": "data", "path": "/data"}]}
    path.write_text(json.dumps({"containers": [container], "volumes": {"data": {"kind": "share", "share": "payroll"}}}))
    # When it is submitted
    result = dispatcher("submit", str(path))
    # Then local validation passes, the service refuses it, and the CLI shows which field and why
    assert result.exit_code == 3, result.output
    assert "400 Policy violation" in result.output
    assert "volumes.data" in result.output


def test_health_reports_every_dependency_ok() -> None:
    result = dispatcher("health", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    assert {"store", "serviceBus"} <= set(report["checks"])


def test_the_same_job_again_says_so_and_rerun_runs_it_with_overrides(tmp_path: Path) -> None:
    path = spec(tmp_path, "greets", 'echo "hello ${WHO:-nobody}"')
    assert dispatcher("submit", str(path), "--id", "e2e-greets", "--wait").exit_code == 0
    again = dispatcher("submit", str(path), "--id", "e2e-greets")
    assert again.exit_code == 0, again.output
    assert "already submitted (Succeeded" in again.stdout
    assert "dispatcher rerun e2e-greets" in again.stdout
    rerun = dispatcher("rerun", "e2e-greets", "--env", "WHO=world", "--wait", "--json")
    assert rerun.exit_code == 0, rerun.output
    job = json.loads(rerun.stdout)
    assert job["rerunOf"] == "e2e-greets"
    assert "hello world" in dispatcher("logs", job["id"]).stdout
    assert json.loads(dispatcher("status", "e2e-greets", "--json").stdout)["reruns"] == [job["id"]]
    refused = dispatcher("rerun", "e2e-greets", "--failed-tasks")
    assert refused.exit_code == 3
    assert "onlyFailedTasks" in refused.stderr


def test_schedule_apply_show_trigger_suspend_and_delete(stack: StackClient, tmp_path: Path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text(
        "schedule:\n  name: e2e-nightly\n  cron: '30 2 * * *'\n  timeZone: Europe/Amsterdam\n"
        "  concurrencyPolicy: Forbid\njob:\n  image: busybox\n  command: [echo, nightly]\n"
    )
    applied = dispatcher("schedule", "apply", str(path))
    assert applied.exit_code == 0, applied.output
    assert "created" in applied.stdout
    shown = json.loads(dispatcher("schedule", "show", "e2e-nightly", "--json").stdout)
    due = shown["nextDue"][0]
    assert due.endswith(("01:30:00Z", "00:30:00Z"))  # 02:30 in Amsterdam, winter or summer
    triggered = dispatcher("schedule", "trigger", "e2e-nightly", "--json")
    assert triggered.exit_code == 0, triggered.output
    job_id = json.loads(triggered.stdout)["id"]
    stack.wait_status(job_id, Status.SUCCEEDED, timeout=60)
    assert "e2e-nightly" in dispatcher("schedule", "list").stdout
    assert dispatcher("schedule", "suspend", "e2e-nightly").exit_code == 0
    assert "suspended" in dispatcher("schedule", "list").stdout
    assert dispatcher("schedule", "resume", "e2e-nightly").exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule:\n  name: e2e-bad\n  cron: 'every night'\njob:\n  image: busybox\n")
    refused = dispatcher("schedule", "apply", str(bad))
    assert refused.exit_code == 3
    assert "schedule.cron" in refused.stderr
    assert dispatcher("schedule", "delete", "e2e-nightly").exit_code == 0
    assert dispatcher("schedule", "show", "e2e-nightly").exit_code == 4


def test_a_200_task_array_job_with_failing_tasks_through_the_cli(tmp_path: Path) -> None:
    # Given 200 tasks packed 16 to a group, of which the tasks 7, 57, 107 and 157 fail
    path = spec(
        tmp_path,
        "e2e-array",
        'echo "task $TASK_INDEX of $TASK_COUNT"; test $((TASK_INDEX % 50)) -ne 7',
        cpu=0.25,
        memoryGB=0.5,
        tasks={"count": 200},
    )
    # When it is submitted and awaited
    submitted = dispatcher("submit", str(path), "--id", "e2e-array", "--wait")
    # Then the wait showed progress and exits 1, the status and the task list name the failed tasks
    assert submitted.exit_code == 1, submitted.output
    assert "200/200" in submitted.stderr
    status = dispatcher("status", "e2e-array")
    assert "200 tasks: 196 succeeded, 4 failed" in status.stdout
    failed = json.loads(dispatcher("tasks", "e2e-array", "--status", "failed", "--json").stdout)
    assert [(t["index"], t["exitCode"]) for t in failed["items"]] == [(7, 1), (57, 1), (107, 1), (157, 1)]
    every = json.loads(dispatcher("tasks", "e2e-array", "--all", "--json").stdout)
    assert len(every["items"]) == 200
    assert len({t["group"] for t in every["items"]}) == 13  # 16 tasks of 0.25 vCPU to a group
    assert "task 57 of 200" in dispatcher("logs", "e2e-array", "--task", "57").stdout
    followed = dispatcher("logs", "e2e-array", "--task", "57", "--follow")
    assert (followed.exit_code, followed.stdout.splitlines()) == (1, ["task 57 of 200"])
    assert "task 57: Failed" in followed.stderr


def test_validate_uses_the_servers_policy_and_a_dry_run_records_nothing(stack: StackClient, tmp_path: Path) -> None:
    # Given every example, which the local stack's policy allows (its shares, its storage account)
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*.yaml"))
    # When validated against the configured server, Then every one passes (this machine's settings do not matter)
    checked = dispatcher("validate", *examples)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.count("✓") == len(examples)
    # And a dry run of a spec is answered valid, with nothing recorded
    path = spec(tmp_path, "dry", "true", id="e2e-dry-run")
    dry = dispatcher("submit", str(path), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["spec"]["timeoutSeconds"] > 0  # with the operator's default
    assert stack.record("e2e-dry-run") is None
    refused = dispatcher("submit", str(spec(tmp_path, "big", "true", cpu=3.5, tasks={"count": 20_000})), "--dry-run")
    assert refused.exit_code == 3
    assert "tasks.count" in refused.stderr


def test_logs_follow_prints_identical_lines_a_burst_and_a_trickle_each_once_as_harvested(tmp_path: Path) -> None:
    # Given a job printing 150 identical lines, then a burst of 300 (more than any tail), then a slow trickle
    script = (
        "for i in $(seq 150); do echo same; done; sleep 1; "
        'for i in $(seq 300); do echo "burst $i"; done; sleep 1; '
        'for i in 1 2 3 4 5; do echo "trickle $i"; sleep 0.4; done'
    )
    path = spec(tmp_path, "e2e-chatty", script)
    # When it is submitted and followed live
    followed = dispatcher("submit", str(path), "--id", "e2e-chatty", "--follow", "--interval", "0.3")
    # Then every line was printed once, in order, with no gap, and the follower's output is the harvested log
    assert followed.exit_code == 0, followed.output
    expected = ["same"] * 150 + [f"burst {i}" for i in range(1, 301)] + [f"trickle {i}" for i in range(1, 6)]
    printed = followed.stdout.splitlines()[: len(expected) + 1]
    assert printed[: len(expected)] == expected
    assert not printed[len(expected)].startswith(("same", "burst", "trickle"))  # the job summary follows
    assert "are gone" not in followed.stderr
    assert dispatcher("logs", "e2e-chatty").stdout.splitlines() == expected
    # And following the ended job again prints the harvested log once more, whole
    again = dispatcher("logs", "e2e-chatty", "--follow")
    assert (again.exit_code, again.stdout.splitlines()) == (0, expected)


def hook(name: str, environment: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """An azd hook of azure.yaml as azd runs it: from the project's root, the environment's values given."""
    command = yaml.safe_load((ROOT / "azure.yaml").read_text())["hooks"][name]["posix"]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "DISPATCHER_CONFIG": str(tmp_path / "config.toml"),
        "DISPATCHER_CLI": str(Path(sys.executable).parent / "dispatcher"),
        **environment,
    }
    return subprocess.run(
        [command["shell"], command["run"]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_azd_hooks_configure_the_cli_and_check_the_deployment_answers(stack: StackClient, tmp_path: Path) -> None:
    assert stack.stack.runner is not None
    with host_keys_stub() as keys:
        keys.default = None  # Given an app whose function key does not exist before its code first runs
        environment = azd_environment(keys, stack.stack.runner.url.removesuffix("/api"))
        # When azd runs postprovision, Then the CLI's configuration is written without the key
        provisioned = hook("postprovision", environment, tmp_path)
        assert provisioned.returncode == 0, provisioned.stderr
        assert "postdeploy adds it" in provisioned.stderr
        assert "key" not in tomllib.loads((tmp_path / "config.toml").read_text())
        # And once the code is deployed, postdeploy writes the key, and the health check passes against the app
        keys.default = stack.stack.runner.function_key
        deployed = hook("postdeploy", environment, tmp_path)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "The deployment answers" in deployed.stdout
        assert tomllib.loads((tmp_path / "config.toml").read_text())["key"] == stack.stack.runner.function_key
        assert stack.stack.runner.function_key not in deployed.stdout + deployed.stderr
        # And a deployment that never answers fails the hook once the wait is over
        gone = {**environment, "AZURE_FUNCTION_APP_URL": "http://127.0.0.1:9", "DISPATCHER_HEALTH_WAIT": "0"}
        failed = hook("postdeploy", gone, tmp_path)
        assert failed.returncode == 1
        assert "still fails" in failed.stderr

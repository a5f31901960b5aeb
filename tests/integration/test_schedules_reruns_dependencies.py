"""Schedules, re-runs and dependencies through the local Functions runner, with the dispatcher's clock moved by the
test (cron fires at most once a minute; the emulators keep real time)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dispatcher.bootstrap import build_services
from dispatcher.domain.jobs import Status
from dispatcher.entrypoints.client import ApiError, DispatcherClient
from dispatcher.service.services import Services
from dispatcher.service.tick import run_tick
from dispatcher.settings import DispatcherSettings
from tests.fixtures.stack import StackClient


@pytest.fixture(scope="module")
def api(shared_stack: StackClient) -> Iterator[DispatcherClient]:
    with shared_stack.api() as client:
        yield client


@pytest.fixture(scope="module")
def services(shared_stack: StackClient) -> Services:
    """The dispatcher's services in this process (the runner put the stack's settings in the environment)."""
    return build_services(DispatcherSettings())


def schedule(name: str, policy: str, command: list[str]) -> dict[str, Any]:
    return {
        "schedule": {"name": name, "cron": "*/5 * * * *", "concurrencyPolicy": policy},
        "job": {"image": "busybox", "command": command, "timeoutSeconds": 3600},
    }


def to_next_due(stack: StackClient, api: DispatcherClient, name: str) -> dt.datetime:
    """Move the dispatcher's clock just past the schedule's next due time."""
    due = api.schedule(name).next_due[0]
    now = build_services(DispatcherSettings()).clock.now()
    stack.stack.advance_clock((due - now).total_seconds() + 1)
    return due


def fired(api: DispatcherClient, name: str) -> list[str]:
    shown = api.schedule(name)
    return sorted(r.job_id for r in (*shown.active, *shown.succeeded, *shown.failed))


def test_a_due_time_fires_one_job_with_two_overlapping_reconciler_runs(
    shared_stack: StackClient, api: DispatcherClient, services: Services
) -> None:
    _, created = api.apply_schedule("every5", schedule("every5", "Allow", ["true"]))
    assert created
    assert fired(api, "every5") == []
    due = to_next_due(shared_stack, api, "every5")
    # Two runs at once: the runner's timer and a second instance in this process
    other = threading.Thread(target=run_tick, args=(services,))
    other.start()
    shared_stack.reconcile()
    other.join()
    shared_stack.reconcile()
    job_id = f"every5-{due:%Y%m%d%H%M}"
    assert fired(api, "every5") == [job_id]
    record = shared_stack.wait_status(job_id, Status.SUCCEEDED, tick=True)
    assert record.labels["schedule"] == "every5"
    assert [g for g in shared_stack.groups() if g.startswith("every5")] == []


def test_forbid_skips_while_the_job_runs_and_replace_cancels_it(
    shared_stack: StackClient, api: DispatcherClient
) -> None:
    api.apply_schedule("policy", schedule("policy", "Forbid", ["sleep", "600"]))
    first = to_next_due(shared_stack, api, "policy")
    shared_stack.reconcile()
    first_job = f"policy-{first:%Y%m%d%H%M}"
    shared_stack.wait_launched(first_job)
    to_next_due(shared_stack, api, "policy")
    shared_stack.reconcile()
    shown = api.schedule("policy")
    assert fired(api, "policy") == [first_job]
    assert shown.last_skipped is not None
    assert "Forbid" in shown.last_skipped.reason
    api.apply_schedule("policy", schedule("policy", "Replace", ["sleep", "600"]))
    third = to_next_due(shared_stack, api, "policy")
    shared_stack.reconcile()
    third_job = f"policy-{third:%Y%m%d%H%M}"
    assert fired(api, "policy") == [first_job, third_job]
    assert shared_stack.wait_status(first_job, Status.CANCELLED, tick=True).reason == "cancelled on request"
    shared_stack.wait_launched(third_job)
    assert api.delete_schedule("policy", cancel_active=True) == [third_job]
    shared_stack.wait_status(third_job, Status.CANCELLED, tick=True)


def test_a_rerun_with_overrides_succeeds_where_the_original_failed(
    shared_stack: StackClient, api: DispatcherClient
) -> None:
    spec = {"id": "flaky", "image": "busybox", "command": ["sh", "-c", "echo code=${CODE:-3}; exit ${CODE:-3}"]}
    shared_stack.send(spec, "m-flaky")
    shared_stack.wait_status("flaky", Status.FAILED, tick=True)
    new = api.rerun("flaky", {"env": {"CODE": "0"}, "labels": {"attempt": "rerun"}}, "key-flaky-1")
    again = api.rerun("flaky", {"env": {"CODE": "0"}, "labels": {"attempt": "rerun"}}, "key-flaky-1")
    assert new.id == again.id
    assert new.rerun_of == "flaky"
    done = shared_stack.wait_status(new.id, Status.SUCCEEDED, tick=True)
    assert done.job_spec.containers[0].env == {"CODE": "0"}
    assert api.job("flaky").reruns == [new.id]
    assert "code=0" in api.logs(new.id)
    with pytest.raises(ApiError) as caught:
        api.rerun("flaky", {"onlyFailedTasks": True}, "key-flaky-2")
    assert [e.loc for e in caught.value.problem.errors] == ["onlyFailedTasks"]


def test_a_chain_where_the_middle_job_fails_fails_the_last_naming_it(shared_stack: StackClient) -> None:
    # Sent out of order: c and b arrive before what they wait on
    shared_stack.send({"id": "chain-c", "image": "busybox", "command": ["true"], "dependsOn": ["chain-b"]}, "m-c")
    shared_stack.send({"id": "chain-b", "image": "busybox", "command": ["false"], "dependsOn": ["chain-a"]}, "m-b")
    shared_stack.send({"id": "chain-a", "image": "busybox", "command": ["true"]}, "m-a")
    shared_stack.wait_status("chain-a", Status.SUCCEEDED, tick=True, timeout=20)
    assert shared_stack.wait_status("chain-b", Status.FAILED, tick=True).attempts
    shared_stack.stack.advance_clock(120)  # past the launch grace: the sweep checks c's dependency again
    c = shared_stack.wait_status("chain-c", Status.FAILED, tick=True)
    assert c.reason == "dependency chain-b ended Failed; this job needs it to succeed"
    assert c.attempts == []


def test_a_cycle_fails_every_job_in_it(shared_stack: StackClient) -> None:
    shared_stack.send({"id": "cyc-x", "image": "busybox", "command": ["true"], "dependsOn": ["cyc-z"]}, "m-x")
    shared_stack.send({"id": "cyc-y", "image": "busybox", "command": ["true"], "dependsOn": ["cyc-x"]}, "m-y")
    shared_stack.send({"id": "cyc-z", "image": "busybox", "command": ["true"], "dependsOn": ["cyc-y"]}, "m-z")
    shared_stack.stack.advance_clock(120)
    for job in ("cyc-x", "cyc-y", "cyc-z"):
        record = shared_stack.wait_status(job, Status.FAILED, tick=True)
        assert (record.reason or "").startswith("dependency cycle: ")
    assert [g for g in shared_stack.groups() if g.startswith("cyc-")] == []

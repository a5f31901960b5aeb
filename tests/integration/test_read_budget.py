"""The reconciler's ARM reads per run, counted by the ACI emulator: within the budget, whatever the active groups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dispatcher.domain.jobs import Status
from tests.fixtures.stack import StackClient, simulated_stack, wait_for

BUDGET = 4
JOBS = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    yield from simulated_stack(tmp_path_factory, DISPATCHER_ARM_READS_PER_TICK=str(BUDGET))


def long_job(job_id: str) -> dict[str, Any]:
    return {
        "id": job_id,
        "image": "busybox",
        "command": ["true"],
        "env": {"DEVSTACK_SIM_DURATION": "3600", "DEVSTACK_SIM_EXIT_CODE": "0"},
    }


def gets(stack: StackClient) -> int:
    return sum(stack.stack.aci.counters().get("get", {}).values())


def test_each_run_gets_at_most_its_budget_and_successive_runs_read_every_running_group(stack: StackClient) -> None:
    ids = [f"budget-{n}" for n in range(JOBS)]
    for job_id in ids:
        stack.send(long_job(job_id), f"m-{job_id}")

    def all_running() -> bool:
        stack.reconcile()
        return all((r := stack.record(j)) is not None and r.status is Status.RUNNING for j in ids)

    # Runs launch the jobs in line, and read starting groups first, at most BUDGET a run.
    wait_for(all_running, timeout=90, what="every job launched and recorded Running")
    per_run = []
    for _ in range(2 * -(-JOBS // BUDGET)):
        before = gets(stack)
        stack.reconcile()
        per_run.append(gets(stack) - before)
    assert all(0 < n <= BUDGET for n in per_run), per_run
    # Nothing changes in a running group, so the budget goes to the sweep: every group is read in turn.
    assert sum(per_run) >= JOBS, per_run

"""The reconciler wakes itself through the Functions host: with its timer never firing, a job still runs to
its end, each run scheduling the next on the wake queue while work is active, and the runs stop once it is idle."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from devstack.stack import WAKE_QUEUE
from tests.fixtures.stack import StackClient, simulated_stack
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    yield from simulated_stack(tmp_path_factory, wake=True, DISPATCHER_RECONCILE_INTERVAL_SECONDS="2")


def test_a_job_runs_to_its_end_on_wake_ups_alone(stack: StackClient) -> None:
    spec = {"id": "woken", "image": "busybox", "env": {"DEVSTACK_SIM_DURATION": "3"}}
    with stack.api() as client:
        client.submit(json.dumps(spec).encode(), "application/json")

    def ended() -> bool:
        record = stack.record("woken")
        return record is not None and record.status.terminal

    wait_for(ended, timeout=90, interval=0.5, what="the job to end with only wake-ups running the reconciler")
    record = stack.record("woken")
    assert record is not None
    assert record.status.value == "Succeeded"

    # Once idle (the group deleted), a run asks for no other: the wake queue empties and stays empty.
    def waiting() -> int:
        counts = stack.stack.servicebus.counts(WAKE_QUEUE)
        return counts.active + counts.scheduled + counts.locked

    wait_for(lambda: waiting() == 0, timeout=60, interval=0.5, what="the wake-ups to stop")
    time.sleep(5)  # more than two intervals
    assert waiting() == 0

"""Timer triggers through the local Functions runner: schedules with seconds, runOnStartup, no overlap, manual runs."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
import requests

from devstack.host import FunctionsRunner
from tests.fixtures.host import MakeRunner
from tests.fixtures.waiting import wait_for

NEVER = "0 0 0 1 1 *"


def records(runner: FunctionsRunner, kind: str) -> list[dict[str, Any]]:
    return [entry for entry in list(runner.module.RECORDED) if entry["kind"] == kind]


def test_run_on_startup_fires_once_at_start_without_past_due(make_runner: MakeRunner) -> None:
    # Given a timer whose schedule never comes round during the test, with runOnStartup
    runner = make_runner(functions=["heartbeat"], settings={"HEARTBEAT_SCHEDULE": NEVER})
    # Then it runs once at start, on time
    wait_for(lambda: len(records(runner, "heartbeat")) == 1)
    assert records(runner, "heartbeat")[0]["past_due"] is False


def test_a_schedule_with_seconds_fires_repeatedly(make_runner: MakeRunner) -> None:
    # Given a schedule every second (resolved from a %Setting%)
    runner = make_runner(functions=["heartbeat"], settings={"HEARTBEAT_SCHEDULE": "*/1 * * * * *"})
    # Then it keeps firing, roughly a second apart
    wait_for(lambda: len(records(runner, "heartbeat")) >= 4)
    times = [entry["at"] for entry in records(runner, "heartbeat")[1:4]]
    assert all(later > earlier for earlier, later in itertools.pairwise(times))


@pytest.mark.slow
def test_a_run_never_overlaps_the_next_tick(make_runner: MakeRunner) -> None:
    # Given a timer every second whose runs take 1.2 s
    runner = make_runner(functions=["slow_tick"], settings={"SLOW_TICK_SECONDS": "1.2"})
    # When it has run a few times, with manual runs thrown in
    wait_for(lambda: len(records(runner, "slow_tick")) >= 1)
    runner.invoke_timer("slow_tick", wait=False)
    runner.invoke_timer("slow_tick", wait=False)
    wait_for(lambda: len(records(runner, "slow_tick")) >= 3)
    # Then no run ever started while another was running
    assert [entry["concurrent"] for entry in records(runner, "slow_tick")] == [1] * len(records(runner, "slow_tick"))


@pytest.mark.slow
def test_a_manual_run_waiting_behind_a_long_run_is_past_due(make_runner: MakeRunner) -> None:
    # Given a long run in progress
    runner = make_runner(functions=["slow_tick"], settings={"SLOW_TICK_SECONDS": "1.5"})
    wait_for(lambda: len(records(runner, "slow_tick")) >= 1)
    # When a manual run is asked for, it waits for its turn
    runner.invoke_timer("slow_tick", timeout=30)
    # Then some run started late by more than the margin, and says so
    assert any(entry["past_due"] for entry in records(runner, "slow_tick"))


def test_invoke_timer_runs_a_timer_now_and_waits_for_it(make_runner: MakeRunner) -> None:
    runner = make_runner(functions=["heartbeat"], settings={"HEARTBEAT_SCHEDULE": NEVER})
    wait_for(lambda: len(records(runner, "heartbeat")) == 1)
    runner.invoke_timer("heartbeat")
    assert len(records(runner, "heartbeat")) == 2
    assert records(runner, "heartbeat")[1]["schedule_status"]["Next"].startswith("2027-01-01T00:00:00")


def test_invoke_timer_refuses_an_unknown_timer(make_runner: MakeRunner) -> None:
    runner = make_runner(functions=["heartbeat"], settings={"HEARTBEAT_SCHEDULE": NEVER})
    with pytest.raises(KeyError, match="heartbeat"):
        runner.invoke_timer("nope")


def test_the_admin_api_runs_a_timer_with_the_master_key(make_runner: MakeRunner) -> None:
    runner = make_runner(functions=["heartbeat"], settings={"HEARTBEAT_SCHEDULE": NEVER})
    wait_for(lambda: len(records(runner, "heartbeat")) == 1)
    url = f"{runner.host_url}/admin/functions/heartbeat"
    assert requests.post(url, json={"input": ""}, timeout=10).status_code == 401
    assert (
        requests.post(url, json={"input": ""}, headers={"x-functions-key": runner.function_key}, timeout=10).status_code
        == 401
    )
    response = requests.post(url, json={"input": ""}, headers={"x-functions-key": runner.master_key}, timeout=10)
    assert response.status_code == 202
    wait_for(lambda: len(records(runner, "heartbeat")) == 2)


def test_a_disabled_timer_does_not_fire_but_can_be_run_by_hand(make_runner: MakeRunner) -> None:
    runner = make_runner(
        functions=["heartbeat"],
        settings={"HEARTBEAT_SCHEDULE": "*/1 * * * * *", "AzureWebJobs.heartbeat.Disabled": "true"},
    )
    runner.invoke_timer("heartbeat")
    time.sleep(1.5)
    assert len(records(runner, "heartbeat")) == 1


def test_stop_waits_for_a_run_in_progress(make_runner: MakeRunner) -> None:
    runner = make_runner(functions=["slow_tick"], settings={"SLOW_TICK_SECONDS": "1"})
    wait_for(lambda: len(records(runner, "slow_tick")) >= 1)
    runner.invoke_timer("slow_tick", wait=False)
    runner.stop()
    assert runner.module._running_ticks == 0
    assert runner.state == "Stopped"

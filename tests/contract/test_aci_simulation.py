"""Simulate mode: thousands of groups, states from rules and timestamps, no process and no thread per group."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.mgmt.containerinstance import ContainerInstanceManagementClient

from devstack.aci import AciEmulator, QuotaLimits, SimulatedContainer, SimulatedOutcome, SimulationRules
from tests.fixtures.aci import LOCATION, RESOURCE_GROUP, job_container, job_group, wait_for, wait_for_group_state

MakeEmulator = Callable[..., AciEmulator]
MakeClient = Callable[[AciEmulator], ContainerInstanceManagementClient]
ROOMY = QuotaLimits(container_groups=5000, cores=5000, creates_per_5_minutes=5000, creates_per_hour=5000)


def sim_job(duration: float, exit_code: int, restart_policy: str = "Never") -> object:
    env = {"DEVSTACK_SIM_DURATION": str(duration), "DEVSTACK_SIM_EXIT_CODE": str(exit_code)}
    return job_group(job_container("job", ["run-job"], cpu=0.1, env=env), restart_policy=restart_policy)


@pytest.mark.slow
def test_thousand_groups_are_created_and_listed_cheaply(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given a fast-forwarded simulation with room for many groups
    rules = SimulationRules(provisioning_latency_seconds=(1.0, 5.0))
    emulator = make_aci_emulator(mode="simulate", time_scale=120.0, quotas={LOCATION: ROOMY}, simulation=rules)
    client = make_aci_client(emulator)
    threads_before = threading.active_count()

    # When 1,000 groups are created by 8 concurrent callers, every third one exiting 1 after 10 emulated seconds
    def create(index: int) -> None:
        group = sim_job(10, 1 if index % 3 == 0 else 0)
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, f"sim-{index:04d}", group, polling=False)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(1000)))

    # Then no thread was started per group, the list has all of them over 10 pages...
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("aci-")]
    assert threading.active_count() - threads_before < 50  # at most the server's worker threads
    assert emulator.counters()["create"] == {"201": 1000}
    listed = list(client.container_groups.list_by_resource_group(RESOURCE_GROUP))
    assert len(listed) == 1000
    assert emulator.counters()["list_by_resource_group"] == {"200": 10}

    # ...and once emulated time has passed, each group's state follows its rule
    wait_for_group_state(client, "sim-0999", {"Succeeded", "Failed"})
    states = Counter(
        client.container_groups.get(RESOURCE_GROUP, f"sim-{index:04d}").instance_view.state
        for index in range(0, 1000, 50)
    )
    assert states == Counter({"Failed": 7, "Succeeded": 13})


def test_running_group_shows_running_until_its_duration_ends(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given a 1-hour job in real time
    emulator = make_aci_emulator(mode="simulate", simulation=SimulationRules(provisioning_latency_seconds=(0, 0)))
    client = make_aci_client(emulator)

    # When it is created
    client.container_groups.begin_create_or_update(RESOURCE_GROUP, "long", sim_job(3600, 0)).result()

    # Then it runs, with a start time and no exit code yet
    got = client.container_groups.get(RESOURCE_GROUP, "long")
    assert got.instance_view.state == "Running"
    state = got.containers[0].instance_view.current_state
    assert (state.state, state.exit_code) == ("Running", None)


def test_provisioning_moves_from_pending_to_succeeded(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given provisioning takes 1 to 1.5 seconds
    rules = SimulationRules(provisioning_latency_seconds=(1.0, 1.5))
    emulator = make_aci_emulator(mode="simulate", simulation=rules)
    client = make_aci_client(emulator)

    # When a group is created, it is first Pending, then the operation completes with Succeeded
    poller = client.container_groups.begin_create_or_update(RESOURCE_GROUP, "prov", sim_job(60, 0))
    early = client.container_groups.get(RESOURCE_GROUP, "prov")
    result = poller.result()

    assert early.provisioning_state in {"Pending", "Creating"}
    assert early.instance_view.state == "Pending"
    assert result.provisioning_state == "Succeeded"


def test_callable_rule_decides_the_outcome(make_aci_emulator: MakeEmulator, make_aci_client: MakeClient) -> None:
    # Given a rule that fails containers whose command mentions "explode", with a log line
    def explode(container: SimulatedContainer) -> SimulatedOutcome | None:
        if "explode" in container.command:
            return SimulatedOutcome(duration_seconds=0.2, exit_code=9, log="boom\n")
        return None

    rules = SimulationRules(provisioning_latency_seconds=(0, 0), default_duration_seconds=0.2, rules=(explode,))
    emulator = make_aci_emulator(mode="simulate", simulation=rules)
    client = make_aci_client(emulator)

    # When one exploding and one ordinary group run
    for name, command in (("boom", ["explode"]), ("calm", ["work"])):
        group = job_group(job_container("job", command))
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, name, group).result()

    # Then the rule decided the first one's exit code and log; the default the second's
    boom = wait_for_group_state(client, "boom", {"Succeeded", "Failed"})
    calm = wait_for_group_state(client, "calm", {"Succeeded", "Failed"})
    assert boom.containers[0].instance_view.current_state.exit_code == 9
    assert boom.instance_view.state == "Failed"
    assert calm.instance_view.state == "Succeeded"
    assert client.containers.list_logs(RESOURCE_GROUP, "boom", "job").content == "boom\n"


def test_on_failure_restarts_are_counted_from_timestamps(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given a job failing after 2 emulated seconds under OnFailure, at 10x speed
    rules = SimulationRules(provisioning_latency_seconds=(0, 0))
    emulator = make_aci_emulator(mode="simulate", time_scale=10.0, simulation=rules)
    client = make_aci_client(emulator)
    client.container_groups.begin_create_or_update(RESOURCE_GROUP, "loop", sim_job(2, 1, "OnFailure")).result()

    # When time passes, then restartCount grows and previousState holds the failure
    def restarted_twice() -> object:
        view = client.container_groups.get(RESOURCE_GROUP, "loop").containers[0].instance_view
        return view if view.restart_count >= 2 else None

    view = wait_for(restarted_twice)
    assert (view.previous_state.state, view.previous_state.exit_code) == ("Terminated", 1)
    assert view.current_state.state == "Running"


def test_stopped_simulated_group_shows_stopped(make_aci_emulator: MakeEmulator, make_aci_client: MakeClient) -> None:
    # Given a running simulated group
    emulator = make_aci_emulator(mode="simulate", simulation=SimulationRules(provisioning_latency_seconds=(0, 0)))
    client = make_aci_client(emulator)
    client.container_groups.begin_create_or_update(RESOURCE_GROUP, "halt", sim_job(3600, 0)).result()

    # When it is stopped, then it shows Stopped and no longer counts cores
    client.container_groups.stop(RESOURCE_GROUP, "halt")
    got = client.container_groups.get(RESOURCE_GROUP, "halt")
    assert got.instance_view.state == "Stopped"
    assert got.containers[0].instance_view.current_state.state == "Terminated"
    usage = {u.name.value: u.current_value for u in client.location.list_usage(LOCATION)}
    assert usage["StandardCores"] == 0
    assert usage["ContainerGroups"] == 1

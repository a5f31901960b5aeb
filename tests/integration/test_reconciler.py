"""The reconciler through the local runner, with the ACI emulator running real processes."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.servicebus import ServiceBusClient
from azure.storage.blob import BlobServiceClient

from devstack.stack import EVENTS_SUBSCRIPTION, EVENTS_TOPIC, RESOURCE_GROUP, SUBSCRIPTION, Stack, StackOptions
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.bootstrap import build_services
from dispatcher.domain.jobs import Status
from dispatcher.service.tick import run_tick
from dispatcher.settings import DispatcherSettings
from tests.fixtures.aci import job_container, job_group, processes_with
from tests.fixtures.stack import HAND_RUN, NEVER, StackClient, wait_for

FAST = {
    "DISPATCHER_LAUNCH_GRACE_SECONDS": "2",
    "DISPATCHER_ORPHAN_GRACE_SECONDS": "3",
    "DISPATCHER_STUCK_GRACE_SECONDS": "2",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("stack"),
        reconcile_schedule=NEVER,
        wake=False,
        extra_settings={**HAND_RUN, **FAST},
    )
    started = Stack(options).start()
    client = StackClient(started)
    yield client
    client.close()
    started.stop()


def aci(stack: StackClient) -> ContainerInstanceManagementClient:
    return ContainerInstanceManagementClient(
        DevstackCredential(), SUBSCRIPTION, base_url=stack.stack.aci.url, connection_verify=str(stack.stack.tls.ca)
    )


def job(job_id: str, command: str, **spec: Any) -> dict[str, Any]:
    return {"id": job_id, "image": "busybox", "command": ["sh", "-c", command], **spec}


def test_a_job_that_exits_0_succeeds_with_its_log_tail_and_full_log_and_no_group_left(stack: StackClient) -> None:
    stack.send(job("ok-1", "echo hi; exit 0"), "m-ok-1")
    record = stack.wait_status("ok-1", Status.SUCCEEDED, tick=True)
    container = record.attempts[0].containers[0]
    assert (container.exit_code, container.log_tail.strip()) == (0, "hi")
    assert container.log_blob == "job-logs/ok-1/1/main.timed.log"
    blobs = BlobServiceClient.from_connection_string(stack.stack.storage_connection_string)
    kept = blobs.get_blob_client("job-logs", "ok-1/1/main.timed.log").download_blob().readall().decode()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z hi\n", kept), kept
    assert record.attempts[0].billed_seconds is not None
    assert record.cost > 0
    assert "ok-1-a1" not in stack.groups()


def test_a_job_that_exits_3_with_one_retry_runs_twice_then_fails_with_exit_code_3(stack: StackClient) -> None:
    stack.send(job("three-1", "exit 3", retries={"count": 1, "backoffSeconds": 0}), "m-three-1")
    record = stack.wait_status("three-1", Status.FAILED, tick=True)
    assert [a.group for a in record.attempts] == ["three-1-a1", "three-1-a2"]
    assert [a.exit_codes for a in record.attempts] == [{"main": 3}, {"main": 3}]
    assert not [g for g in stack.groups() if g.startswith("three-1")]


def test_a_job_past_its_timeout_is_timed_out_and_its_group_gone(stack: StackClient) -> None:
    stack.send(job("slow-1", "echo started; sleep 60", timeoutSeconds=2), "m-slow-1")
    record = stack.wait_status("slow-1", Status.TIMED_OUT, tick=True)
    assert record.attempts[0].containers[0].log_tail.strip() == "started"
    assert "slow-1-a1" not in stack.groups()


def test_an_injected_image_pull_failure_fails_with_the_reason_from_the_events(stack: StackClient) -> None:
    stack.stack.aci.faults.fail_next_create("pull-1-a1", kind="image_pull")
    stack.send(job("pull-1", "true"), "m-pull-1")
    record = stack.wait_status("pull-1", Status.FAILED, tick=True)
    assert "pull" in (record.reason or "").lower()
    assert "pull-1-a1" not in stack.groups()


def test_a_group_deleted_out_of_band_is_lost_then_retried(stack: StackClient) -> None:
    stack.send(job("lost-1", "sleep 30", retries={"count": 1, "backoffSeconds": 0}), "m-lost-1")
    stack.wait_launched("lost-1")
    stack.stack.aci.vanish("lost-1-a1")
    record = wait_for(
        lambda: stack.reconcile() or ((r := stack.record("lost-1")) is not None and len(r.attempts) == 2 and r),
        what="a second attempt",
    )
    assert "Lost" in (record.attempts[0].reason or "")
    assert record.attempts[0].outcome is Status.FAILED


def test_an_orphan_group_is_deleted_after_the_grace_period(stack: StackClient) -> None:
    tags = {"dispatcher-instance": "devstack", "dispatcher-created": "2026-01-01T00:00:00Z"}
    with aci(stack) as client:
        client.container_groups.begin_create_or_update(
            RESOURCE_GROUP, "orphan-1", job_group(job_container("main", ["sleep", "60"]), tags=tags)
        ).result()
    wait_for(lambda: stack.reconcile() or "orphan-1" not in stack.groups(), what="the orphan to be deleted")
    assert "orphan-1" not in stack.groups()


def test_a_group_of_another_dispatcher_is_left_alone(stack: StackClient) -> None:
    with aci(stack) as client:
        client.container_groups.begin_create_or_update(
            RESOURCE_GROUP,
            "theirs-1",
            job_group(job_container("main", ["sleep", "60"]), tags={"dispatcher-instance": "someone-else"}),
        ).result()
    stack.reconcile()
    stack.reconcile()
    assert "theirs-1" in stack.groups()


def test_a_cancellation_while_running_cancels_and_kills_the_process(stack: StackClient) -> None:
    stack.send(job("cancel-1", "sleep 77.5"), "m-cancel-1")
    stack.wait_launched("cancel-1")
    wait_for(lambda: processes_with("77.5"), what="the job's process")
    stack.request_cancel("cancel-1")
    stack.wait_status("cancel-1", Status.CANCELLED, tick=True)
    wait_for(lambda: not processes_with("77.5"), what="the process to be killed")
    assert "cancel-1-a1" not in stack.groups()


def test_a_job_that_writes_to_its_workspace_and_reads_a_secret_file_lists_its_output(stack: StackClient) -> None:
    spec = {
        "id": "ws-out-1",
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "command": ["sh", "-c", "mkdir -p /out/r && wc -c < /run/secrets/token > /out/r/token-size.txt"],
                "mounts": [{"volume": "out", "path": "/out"}, {"volume": "creds", "path": "/run/secrets"}],
            }
        ],
        "volumes": {"out": {"kind": "workspace"}, "creds": {"kind": "secret", "items": {"token": "api-token"}}},
    }
    stack.send(spec, "m-ws-out-1")
    record = stack.wait_status("ws-out-1", Status.SUCCEEDED, tick=True)
    assert record.outputs is not None
    assert (record.outputs.files, record.outputs.first) == (1, ["r/token-size.txt"])
    folder = stack.stack.files.share_folder("devstoreaccount1", "ws-ws-out-1")
    assert (folder / "r" / "token-size.txt").read_text().strip() == str(len("devstack-api-token-6f1d"))


def test_every_lifecycle_event_arrives_on_the_topic_subscription(stack: StackClient) -> None:
    stack.send(job("events-1", "echo hi"), "m-events-1")
    stack.wait_status("events-1", Status.SUCCEEDED, tick=True)
    seen: dict[str, dict[str, Any]] = {}
    with ServiceBusClient.from_connection_string(stack.stack.servicebus.connection_string) as client:
        receiver = client.get_subscription_receiver(EVENTS_TOPIC, EVENTS_SUBSCRIPTION)
        with receiver:

            def drain() -> bool:
                for message in receiver.receive_messages(max_message_count=100, max_wait_time=1):
                    event = json.loads(str(message))
                    if event["data"]["jobId"] == "events-1":
                        seen[event["type"]] = event
                    receiver.complete_message(message)
                return {"dispatcher.job.queued", "dispatcher.job.succeeded"} <= set(seen)

            wait_for(drain, what="the events of events-1")
    done = seen["dispatcher.job.succeeded"]
    assert done["specversion"] == "1.0"
    assert done["data"]["exitCodes"] == {"main": 0}
    assert done["data"]["links"]["self"] == "/api/jobs/events-1"
    assert "devstack-api-token" not in json.dumps(seen)


def test_queued_jobs_launch_as_capacity_frees_up_never_exceeding_the_limit(
    make_stack: Callable[..., StackClient],
) -> None:
    pool = {
        "name": "local",
        "subscriptionId": SUBSCRIPTION,
        "resourceGroup": RESOURCE_GROUP,
        "location": "westeurope",
        "maxGroups": 1,
    }
    client = make_stack(extra_settings={**FAST, "DISPATCHER_POOLS": json.dumps([pool])})
    ids = [f"fifo-{i}" for i in range(3)]
    # Given the first job holding the pool's only slot, and two more arriving after it, one at a time:
    client.send(job(ids[0], "sleep 1"), f"m-{ids[0]}")
    client.wait_launched(ids[0])
    for job_id in ids[1:]:
        client.send(job(job_id, "sleep 1"), f"m-{job_id}")
        wait_for(lambda job_id=job_id: client.record(job_id), what=f"the record of {job_id}")
    most_at_once = 0

    def progress() -> bool:
        nonlocal most_at_once
        client.reconcile()
        most_at_once = max(most_at_once, len(client.groups()))
        records = [client.record(j) for j in ids]
        return all(r is not None and r.status is Status.SUCCEEDED for r in records)

    wait_for(progress, timeout=90, what="every queued job to run in turn and succeed")
    assert most_at_once == 1
    launched = [client.record(j).attempts[0].launched_at for j in ids]  # type: ignore[union-attr]
    assert launched == sorted(launched)  # first in, first out


def test_two_reconciler_runs_at_once_finish_an_attempt_once(stack: StackClient) -> None:
    stack.send(job("twin-1", "echo twin"), "m-twin-1")
    stack.wait_launched("twin-1")
    wait_for(lambda: "twin-1-a1" in stack.groups(), what="the group")
    services = build_services(DispatcherSettings())
    group = wait_for(
        lambda: (v := services.groups.get(services.settings.pools[0], "twin-1-a1")) is not None and v.finished and v,
        what="the container to exit",
    )
    assert group.containers[0].exit_code == 0
    threads = [threading.Thread(target=run_tick, args=(services,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record = stack.wait_status("twin-1", Status.SUCCEEDED)
    assert len(record.attempts) == 1
    assert record.attempts[0].outcome is Status.SUCCEEDED
    assert "twin-1-a1" not in stack.groups()


@pytest.mark.parametrize(
    ("command", "timeout", "status", "writes"),
    [
        ("echo done", 600, Status.SUCCEEDED, {"create": 1, "delete": 1}),
        ("sleep 60", 2, Status.TIMED_OUT, {"create": 1, "stop": 1, "delete": 1}),
    ],
    ids=["finished", "timed-out"],
)
def test_an_attempt_costs_one_create_and_one_delete_plus_one_stop_on_timeout(
    make_stack: Callable[..., StackClient], command: str, timeout: int, status: Status, writes: dict[str, int]
) -> None:
    client = make_stack(extra_settings=FAST)
    client.stack.aci.reset_counters()
    client.send(job("economy-1", command, timeoutSeconds=timeout), "m-economy-1")
    client.wait_status("economy-1", status, tick=True)
    counted = client.stack.aci.counters()
    done = {op: sum(n for code, n in by_status.items() if int(code) < 400) for op, by_status in counted.items()}
    assert {op: done.get(op, 0) for op in ("create", "stop", "delete")} == {"stop": 0, **writes}
    assert done.get("start", 0) == done.get("restart", 0) == 0


def test_an_evicted_spot_group_is_a_lost_attempt_retried_without_spending_a_retry(stack: StackClient) -> None:
    # Given a Spot job with no retries, running
    stack.send(job("spot-1", "sleep 2; exit 0", priority="Spot"), "m-spot-1")
    stack.wait_launched("spot-1")
    wait_for(lambda: stack.reconcile() or stack.record("spot-1").status is Status.RUNNING, what="spot-1 to run")
    # When ACI evicts it (and restarts the group, as it does)
    assert stack.stack.aci.evict("spot-1-a1") == 1
    # Then the attempt is recorded lost, the group deleted, and a second attempt succeeds: no retry was spent
    record = stack.wait_status("spot-1", Status.SUCCEEDED, tick=True)
    assert [a.group for a in record.attempts] == ["spot-1-a1", "spot-1-a2"]
    assert (record.attempts[0].lost, record.attempts[0].outcome) == (True, Status.FAILED)
    assert "evicted" in (record.attempts[0].reason or "")
    assert not [g for g in stack.groups() if g.startswith("spot-1")]

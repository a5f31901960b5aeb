"""The dispatch path through the local Functions runner, with every emulator up: Service Bus message ->
durable record in Azurite -> capacity-aware launch of a container group in the ACI emulator."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from azure.mgmt.containerinstance import ContainerInstanceManagementClient

from devstack.stack import RESOURCE_GROUP, SUBSCRIPTION
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.domain.jobs import Status
from dispatcher.domain.naming import JOB_ID_PROPERTY
from tests.fixtures.stack import StackClient, wait_for

REPORT = {
    "containers": [
        {
            "name": "main",
            "image": "busybox",
            "command": ["sh", "-c", "cat /run/secrets/api-token > /mnt/out/seen.txt; sleep 30"],
            "env": {"MODE": "full"},
            "secretEnv": {"DB_PASSWORD": "db-password"},
            "mounts": [
                {"volume": "data", "path": "/data", "readOnly": True},
                {"volume": "out", "path": "/mnt/out"},
                {"volume": "creds", "path": "/run/secrets"},
            ],
        }
    ],
    "volumes": {
        "data": {"kind": "share", "share": "datasets", "readOnly": True},
        "out": {"kind": "workspace"},
        "creds": {"kind": "secret", "items": {"api-token": "api-token"}},
    },
    "timeoutSeconds": 600,
}


def aci_group(client: StackClient, name: str):  # type: ignore[no-untyped-def]
    with ContainerInstanceManagementClient(
        DevstackCredential(), SUBSCRIPTION, base_url=client.stack.aci.url, connection_verify=str(client.stack.tls.ca)
    ) as aci:
        return aci.container_groups.get(RESOURCE_GROUP, name)


def test_a_message_becomes_a_running_group_shaped_like_its_spec(shared_stack: StackClient) -> None:
    shared_stack.send({"id": "shape-1", **REPORT}, "m-shape-1")
    record = shared_stack.wait_launched("shape-1")
    assert record.attempts[0].group == "shape-1-a1"
    group = aci_group(shared_stack, "shape-1-a1")
    env = {v.name: v for v in group.containers[0].environment_variables}
    assert env["MODE"].value == "full"
    assert env["DB_PASSWORD"].value is None  # the service never returns secure values
    volumes = {v.name: v for v in group.volumes}
    assert volumes["data"].azure_file.share_name == "datasets"
    assert volumes["data"].azure_file.read_only is True
    assert volumes["out"].azure_file.share_name == "ws-shape-1"
    assert volumes["creds"].secret is not None
    assert group.tags["dispatcher-job"] == "shape-1"
    assert group.tags["dispatcher-instance"] == "devstack"
    seen = wait_for(lambda: shared_stack.stack.files.share_folder("devstoreaccount1", "ws-shape-1") / "seen.txt")
    assert wait_for(lambda: seen.exists() and seen.read_text()) == "devstack-api-token-6f1d"
    assert "devstack-db-password" not in record.model_dump_json()
    assert wait_for(shared_stack.queue_empty)


def test_five_deliveries_of_one_job_some_concurrent_give_one_record_and_one_group(shared_stack: StackClient) -> None:
    spec = {"id": "dup-1", "image": "busybox", "command": ["sleep", "30"]}
    shared_stack.send_many([(spec, f"m-dup-{i}") for i in range(3)])  # processed concurrently by the runner
    shared_stack.wait_launched("dup-1")
    shared_stack.send(spec, "m-dup-3")
    shared_stack.send(spec, "m-dup-4")
    shared_stack.wait_launched("dup-1")
    assert wait_for(shared_stack.queue_empty)
    assert [g for g in shared_stack.groups() if g.startswith("dup-1")] == ["dup-1-a1"]
    assert shared_stack.records.get("dup-1") is not None


def test_a_replayed_dead_letter_records_the_job_of_its_original_message_once(shared_stack: StackClient) -> None:
    # Given a submission without an id, delivered under its message id, then replayed under a new one
    spec = {"image": "busybox", "command": ["sleep", "30"]}
    shared_stack.send(spec, "m-replayed-1")
    shared_stack.wait_launched("m-replayed-1")
    shared_stack.send(spec, "m-replayed-1.replay-7", {JOB_ID_PROPERTY: "m-replayed-1"})
    # Then the replay is the same job: one record, one group
    assert wait_for(shared_stack.queue_empty)
    assert [g for g in shared_stack.groups() if g.startswith("m-replayed-1")] == ["m-replayed-1-a1"]
    assert shared_stack.records.get("m-replayed-1.replay-7") is None


def test_invalid_and_policy_violating_messages_are_rejected_completed_and_not_redelivered(
    shared_stack: StackClient,
) -> None:
    shared_stack.send({"id": "bad-1", "image": "busybox", "restartPolicy": "Always", "cpu": 9}, "m-bad-1")
    shared_stack.send(
        {"id": "bad-2", "image": "busybox", "volumes": {"x": {"kind": "share", "share": "payroll"}}}, "m-bad-2"
    )
    shared_stack.send(b"{not json", "m-bad-3")
    bad1 = shared_stack.wait_status("bad-1", Status.REJECTED)
    bad2 = shared_stack.wait_status("bad-2", Status.REJECTED)
    bad3 = shared_stack.wait_status("m-bad-3", Status.REJECTED)
    assert {e.loc for e in bad1.errors} >= {"restartPolicy", "cpu"}
    assert "policy" in (bad2.reason or "")
    assert [e.loc for e in bad2.errors] == ["volumes.x.share"]
    assert bad3.errors
    assert wait_for(shared_stack.queue_empty)
    assert shared_stack.stack.servicebus.counts("jobs").dead_letter == 0


def test_a_different_spec_under_a_used_id_is_a_recorded_conflict(shared_stack: StackClient) -> None:
    shared_stack.send({"id": "conf-1", "image": "busybox", "command": ["sleep", "20"]}, "m-conf-1")
    shared_stack.wait_launched("conf-1")
    shared_stack.send({"id": "conf-1", "image": "busybox", "command": ["sleep", "99"]}, "m-conf-2")
    assert wait_for(shared_stack.queue_empty)
    record = shared_stack.record("conf-1")
    assert record is not None
    assert record.job_spec.containers[0].command == ["sleep", "20"]
    conflicts = list(shared_stack.table.query_entities("Kind eq 'conflict' and JobId eq 'conf-1'"))
    assert len(conflicts) == 1
    assert conflicts[0]["Status"] == "Rejected"


def test_a_missing_key_vault_secret_fails_the_job_naming_the_reference(shared_stack: StackClient) -> None:
    spec = {"id": "kv-1", "containers": [{"name": "a", "image": "busybox", "secretEnv": {"T": "no-such-secret"}}]}
    shared_stack.send(spec, "m-kv-1")
    record = shared_stack.wait_status("kv-1", Status.FAILED)
    assert "'no-such-secret'" in (record.reason or "")
    assert "kv-1-a1" not in shared_stack.groups()


@pytest.mark.parametrize(("max_groups", "max_cores"), [(2, 100), (100, 2)], ids=["group-limit", "core-limit"])
def test_concurrent_launches_never_exceed_the_pool_and_the_rest_stay_queued_with_messages_completed(
    make_stack: Callable[..., StackClient], max_groups: int, max_cores: int
) -> None:
    pool = {
        "name": "local",
        "subscriptionId": SUBSCRIPTION,
        "resourceGroup": RESOURCE_GROUP,
        "location": "westeurope",
        "maxGroups": max_groups,
        "maxCores": max_cores,
    }
    client = make_stack(extra_settings={"DISPATCHER_POOLS": json.dumps([pool])})
    # Sent in one batch, the five messages are processed concurrently by the runner (maxConcurrentCalls 16).
    client.send_many(
        [({"id": f"full-{i}", "image": "busybox", "command": ["sleep", "60"]}, f"m-full-{i}") for i in range(5)]
    )
    assert wait_for(client.queue_empty)
    for _ in range(2):  # intake launches only jobs with no older one waiting; the scheduler fills the rest
        records = [wait_for(lambda i=i: client.record(f"full-{i}")) for i in range(5)]
        launched = [r for r in records if r.status in (Status.RUNNING, Status.LAUNCHING)]
        assert 1 <= len(launched) <= 2
        assert len(client.groups()) == len(launched)
        client.reconcile()
    queued = [r for r in records if r.status is Status.QUEUED]
    assert (len(launched), len(queued)) == (2, 3)


def test_a_create_answered_with_a_server_error_is_resolved_by_reading_the_group(
    make_stack: Callable[..., StackClient],
) -> None:
    # Given ARM answering the create with a 503: whether it applied it is unknown
    client = make_stack(extra_settings={"DISPATCHER_LAUNCH_GRACE_SECONDS": "2"})
    client.stack.aci.faults.fail_next("create", count=20, status=503)
    client.send({"id": "arm-1", "image": "busybox", "command": ["sleep", "30"]}, "m-arm-1")
    record = wait_for(lambda: (r := client.record("arm-1")) is not None and r.last_error and r)
    # Then the job keeps its claim (no second launcher may reuse the name) with the error noted
    assert record.status is Status.LAUNCHING
    assert "503" in (record.last_error or "") or "ServiceUnavailable" in (record.last_error or "")
    # And the reconciler, once the claim is past its grace, reads that the group does not exist and creates it
    client.stack.aci.faults.clear()

    def launched() -> bool:
        client.reconcile()
        found = client.record("arm-1")
        return found is not None and found.current is not None and found.current.launched_at is not None

    wait_for(launched, timeout=60, interval=0.5)
    assert client.groups() == ["arm-1-a1"]


def test_quota_reached_saturates_the_pool_and_requeues(make_stack: Callable[..., StackClient]) -> None:
    from devstack.aci.quota import QuotaLimits

    client = make_stack(aci_overrides={"default_quota": QuotaLimits(container_groups=1)})
    client.send({"id": "quota-1", "image": "busybox", "command": ["sleep", "60"]}, "m-quota-1")
    client.wait_launched("quota-1")
    client.send({"id": "quota-2", "image": "busybox", "command": ["sleep", "60"]}, "m-quota-2")
    record = wait_for(lambda: (r := client.record("quota-2")) is not None and r.last_error and r)
    assert record.status is Status.QUEUED
    assert "ContainerGroupQuotaReached" in (record.last_error or "")
    assert client.groups() == ["quota-1-a1"]


def test_an_aci_400_fails_the_job_without_retry(make_stack: Callable[..., StackClient]) -> None:
    client = make_stack()
    client.stack.aci.faults.fail_next("create", count=1, status=400)
    client.send({"id": "bad-aci", "image": "busybox", "command": ["true"], "retries": 2}, "m-bad-aci")
    record = client.wait_status("bad-aci", Status.FAILED)
    assert "ACI refused" in (record.reason or "")
    assert len(record.attempts) == 1
    assert client.groups() == []


def test_a_crash_between_put_and_record_converges_on_the_same_group_without_a_second_put(
    make_stack: Callable[..., StackClient],
) -> None:
    from dispatcher.bootstrap import build_services
    from dispatcher.domain.document import validate_job
    from dispatcher.domain.placement import Demand
    from dispatcher.service.launch import group_request, new_attempt, reservation_for
    from dispatcher.service.submit import new_record
    from dispatcher.settings import DispatcherSettings

    client = make_stack(extra_settings={"DISPATCHER_LAUNCH_GRACE_SECONDS": "0"})
    services = build_services(DispatcherSettings())  # the runner put the stack's settings in the environment
    pool = services.settings.pools[0]
    spec = validate_job({"id": "crash-1", "image": "busybox", "command": ["sleep", "30"], "timeoutSeconds": 3600})
    # Given a launcher that claimed the attempt, reserved capacity and PUT the group, then died:
    queued = services.records.insert(new_record(spec, services))
    now = services.clock.now()
    attempt = new_attempt(queued.value, pool, Demand.of(spec), now)
    claimed = services.records.replace(queued, queued.value.with_attempt(attempt).transition(Status.LAUNCHING, now))
    services.ledger.reserve(services.ledger.state(pool), reservation_for(services, claimed.value, attempt), now)
    services.groups.create(pool, "crash-1-a1", group_request(services, claimed.value, attempt, pool))
    puts = client.stack.aci.counters().get("create", {})
    # When the message is redelivered and the reconciler runs:
    client.send({"id": "crash-1", "image": "busybox", "command": ["sleep", "30"], "timeoutSeconds": 3600}, "m-crash-1")
    assert wait_for(client.queue_empty)
    client.reconcile()
    # Then the attempt is adopted under the same name, with no second PUT (which would restart its containers)
    record = client.wait_status("crash-1", Status.RUNNING, Status.LAUNCHING, tick=True)
    assert record.attempts[0].launched_at is not None
    assert len(record.attempts) == 1
    assert [g for g in client.groups() if g.startswith("crash-1")] == ["crash-1-a1"]
    assert client.stack.aci.counters().get("create", {}) == puts


def test_a_create_answered_as_already_running_records_the_job_running_at_once(
    make_stack: Callable[..., StackClient],
) -> None:
    # Given ACI answering creates with provisioningState Succeeded (the emulator's answers are configurable)
    client = make_stack(aci_overrides={"put_answers": {"Succeeded": 1.0}})
    client.send({"id": "quick-1", "image": "busybox", "command": ["sleep", "30"]}, "m-quick-1")
    # Then intake records it Running without waiting for a reconciler run
    record = client.wait_status("quick-1", Status.RUNNING, timeout=30)
    assert record.current is not None
    assert record.current.launched_at is not None

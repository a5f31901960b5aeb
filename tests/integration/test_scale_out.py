"""Scale-out as Azure runs it: three host processes on one stack, the timer a singleton through a blob lease in the
host storage. The lock holder is killed mid-burst (lease held), another host is stopped gracefully (a deploy), a
new host joins; every job ends as it should, with one group each, and nothing is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.storage.blob import BlobServiceClient

from devstack.host.singleton import HOSTS_CONTAINER, lock_blob_name
from devstack.host.timer import DEFAULT_HOST_ID
from devstack.stack import JOBS_QUEUE, ROOT, Stack, StackOptions
from dispatcher.adapters.azure.tables import TableJobRecords
from dispatcher.bootstrap import build_services
from dispatcher.domain.jobs import Status
from dispatcher.settings import DispatcherSettings
from tests.fixtures.waiting import wait_for

LOCK_SECONDS = 15
JOBS = 24


class Host:
    """One ``python -m devstack.host`` process on the stack's local.settings.json."""

    def __init__(self, stack: Stack, name: str, state: Path) -> None:
        self.name = name
        self.log = state / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [
            sys.executable,
            "-m",
            "devstack.host",
            str(ROOT),
            "--port",
            "0",
            "--keys-file",
            str(state / f"{name}-keys.json"),
            "--settings-file",
            str(state / "local.settings.json"),
            "--servicebus-connection",
            stack.servicebus.connection_string,
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def holds_lock(self, instance: str) -> bool:
        return f"instance {instance}" in self.output()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    extra = {
        "DEVSTACK_LISTENER_LOCK_SECONDS": str(LOCK_SECONDS),
        "DEVSTACK_LISTENER_LOCK_RECOVERY_SECONDS": str(LOCK_SECONDS),
        "DISPATCHER_LAUNCH_GRACE_SECONDS": "5",
    }
    options = StackOptions(
        state_dir=tmp_path, aci_mode="simulate", runner=False, reconcile_schedule="*/2 * * * * *", extra_settings=extra
    )
    started = Stack(options).start()
    yield started
    started.stop()


def lock_owner(stack: Stack) -> str | None:
    """The instance id in the listener lock's metadata while its lease is held."""
    blobs = BlobServiceClient.from_connection_string(stack.azurite.connection_string)
    with blobs:
        blob = blobs.get_blob_client(HOSTS_CONTAINER, lock_blob_name(DEFAULT_HOST_ID, "reconcile"))
        try:
            properties = blob.get_blob_properties()
        except Exception:
            return None
        if properties.lease.state != "leased":
            return None
        return properties.metadata.get("FunctionInstance")


def submit(stack: Stack, first: int, count: int) -> None:
    client = ServiceBusClient.from_connection_string(stack.servicebus.connection_string)
    with client, client.get_queue_sender(JOBS_QUEUE) as sender:
        for n in range(first, first + count):
            env = {"DEVSTACK_SIM_DURATION": "4", "DEVSTACK_SIM_EXIT_CODE": "3" if n % 5 == 0 else "0"}
            container = {"name": "main", "image": "busybox", "command": ["run"], "env": env}
            spec = {"id": f"burst-{n}", "containers": [container]}
            sender.send_messages(ServiceBusMessage(json.dumps(spec), message_id=f"m-burst-{n}"))


def test_three_hosts_one_killed_holding_the_lease_and_one_redeployed_lose_nothing(stack: Stack, tmp_path: Path) -> None:
    hosts = [Host(stack, f"host-{n}", tmp_path) for n in range(3)]
    try:
        # Given three hosts, exactly one of which runs the timer
        owner = wait_for(lambda: lock_owner(stack), timeout=60, what="a host to take the listener lock")
        holder = wait_for(lambda: next((h for h in hosts if h.holds_lock(owner)), None), timeout=30, what="its log")
        submit(stack, 0, JOBS // 2)
        time.sleep(3)
        # When the lock holder is killed mid-burst, its lease still held
        holder.kill()
        submit(stack, JOBS // 2, JOBS // 2)
        # Then another host takes the lease once it expires
        others = [h for h in hosts if h is not holder]
        new_owner = wait_for(
            lambda: (o := lock_owner(stack)) not in (None, owner) and o, timeout=LOCK_SECONDS * 4, what="a new owner"
        )
        assert any(h.holds_lock(new_owner) for h in others)
        # And when a host that does not hold the lock is redeployed (stopped gracefully, a new one started)
        follower = next(h for h in others if not h.holds_lock(new_owner))
        follower.stop()
        hosts.append(Host(stack, "host-new", tmp_path))
        # Then every job ends as its exit code says, once, and nothing is left in ACI
        with pytest.MonkeyPatch.context() as patch:
            for name, value in stack.settings().items():
                patch.setenv(name, value)
            services = build_services(DispatcherSettings())
        assert isinstance(services.records, TableJobRecords)

        def all_ended() -> bool:
            found = [services.records.get(f"burst-{n}") for n in range(JOBS)]
            return all(f is not None and f.value.status.terminal for f in found)

        wait_for(all_ended, timeout=180, interval=1, what="every job to end")
        for n in range(JOBS):
            found = services.records.get(f"burst-{n}")
            assert found is not None
            expected = Status.FAILED if n % 5 == 0 else Status.SUCCEEDED
            assert found.value.status is expected, (n, found.value.reason)
            assert len(found.value.attempts) == 1
        creates = stack.aci.counters().get("create", {})
        print("creates by status:", creates)
        assert creates.get("201") == JOBS  # one new group per job
        assert not creates.get("200")  # no PUT of a group that existed: none restarted
        wait_for(lambda: stack.aci.service.registry.region_usage(*_region(stack))[0] == 0, timeout=60, what="no group")
    finally:
        for host in hosts:
            if host.process.poll() is None:
                host.stop()


def _region(stack: Stack) -> tuple[str, str]:
    pool = stack.pool()
    return pool["subscriptionId"], pool["location"]

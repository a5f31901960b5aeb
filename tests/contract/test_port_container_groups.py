"""One contract for the ContainerGroups port, run against the fake and the ACI adapter over the ACI emulator."""

from __future__ import annotations

import datetime as dt

from dispatcher.domain.document import validate_job
from dispatcher.ports import ContainerGroups, GroupRequest
from tests.contract.conftest import ACI_POOL
from tests.fixtures.waiting import wait_for

NOW = dt.datetime.now(dt.UTC)


def request(job_id: str, attempt: int = 1) -> GroupRequest:
    spec = validate_job({"id": job_id, "image": "busybox", "command": ["sleep", "30"]})
    return GroupRequest(job_id, attempt, spec, ACI_POOL.location, NOW, 600)


def test_a_created_group_is_listed_with_its_tags_and_read_with_its_containers(
    container_groups: ContainerGroups,
) -> None:
    created = container_groups.create(ACI_POOL, "job-1-a1", request("job-1"))
    assert created.provisioning_state in ("Pending", "Creating", "Succeeded")
    listed = container_groups.list(ACI_POOL)
    assert listed["job-1-a1"].tags["dispatcher-job"] == "job-1"
    assert listed["job-1-a1"].tags["dispatcher-instance"] == "contract"
    view = wait_for(lambda: container_groups.get(ACI_POOL, "job-1-a1"))
    assert [c.name for c in view.containers] == ["main"]
    container_groups.delete(ACI_POOL, "job-1-a1")


def test_absent_groups_read_as_none_and_stop_and_delete_are_idempotent(container_groups: ContainerGroups) -> None:
    assert container_groups.get(ACI_POOL, "never-was") is None
    assert container_groups.logs(ACI_POOL, "never-was", "main") == ""
    container_groups.stop(ACI_POOL, "never-was")
    container_groups.delete(ACI_POOL, "never-was")
    container_groups.create(ACI_POOL, "job-2-a1", request("job-2"))
    container_groups.delete(ACI_POOL, "job-2-a1")
    container_groups.delete(ACI_POOL, "job-2-a1")
    assert "job-2-a1" not in container_groups.list(ACI_POOL)

"""One bad job, entity or answer never stops the work for the others: each action and launch is contained."""

from __future__ import annotations

import json

from dispatcher.domain.errors import CloudError
from dispatcher.domain.jobs import Status
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world

WORKSPACE = {
    "containers": [{"name": "main", "image": "busybox", "mounts": [{"volume": "out", "path": "/out"}]}],
    "volumes": {"out": {"kind": "workspace"}},
}


def submit(world: World, job_id: str, **spec: object) -> None:
    fields = spec if "containers" in spec else {"image": "busybox", "command": ["true"], **spec}
    accept_message(world.services, json.dumps({"id": job_id, **fields}).encode(), job_id, "application/json")


def test_an_action_that_fails_unexpectedly_is_recorded_on_its_job_and_the_run_goes_on() -> None:
    # Given three finished jobs, and log reads that fail for the first one harvested
    world = make_world(POOL.model_copy(update={"max_groups": 5, "max_cores": 5}))
    for job_id in ("a", "b", "c"):
        submit(world, job_id)
        world.groups.finish(POOL, f"{job_id}-a1", 0, at=world.clock.now())
    world.groups.faults.add("logs", RuntimeError("a defect in one harvest"))
    # When the reconciler runs
    report = run_tick(world.services)
    # Then two jobs are done, the third carries the error, and the run counted it
    statuses = {j: world.store.status(j) for j in ("a", "b", "c")}
    assert sorted(statuses.values()) == [Status.RUNNING, Status.SUCCEEDED, Status.SUCCEEDED]
    stuck = next(j for j, s in statuses.items() if s is Status.RUNNING)
    assert "a defect in one harvest" in (world.record(stuck).last_error or "")
    assert report.failures == 1
    # And the next run finishes it
    run_tick(world.services)
    assert world.store.status(stuck) is Status.SUCCEEDED


def test_a_record_that_cannot_be_read_stops_only_its_own_job() -> None:
    world = make_world()
    submit(world, "a")
    submit(world, "b")
    for job_id in ("a", "b"):
        world.groups.finish(POOL, f"{job_id}-a1", 0, at=world.clock.now())
    world.store.faults.add("get", ValueError("row job|a|record has layout 1, not 2"))
    report = run_tick(world.services)
    assert report.failures == 1
    assert sorted(world.store.status(j) for j in ("a", "b")).count(Status.SUCCEEDED) == 1


def test_a_files_400_at_launch_fails_that_job_and_the_scheduler_launches_the_next() -> None:
    # Given a full pool with two jobs waiting: one that needs a workspace, then a plain one
    world = make_world(POOL.model_copy(update={"max_groups": 1}))
    submit(world, "first")
    submit(world, "needs-share", **WORKSPACE)
    submit(world, "plain")
    world.groups.finish(POOL, "first-a1", 0, at=world.clock.now())
    refused = CloudError("create share ws-needs-share: 400: InvalidHeaderValue", status=400, transient=False)
    world.shares.faults.add("ensure", refused)
    # When capacity frees and the scheduler runs
    run_tick(world.services)
    # Then the job whose share cannot be made fails with the reason, and the next job is launched in the same run
    failed = world.record("needs-share")
    assert failed.status is Status.FAILED
    assert "InvalidHeaderValue" in (failed.reason or "")
    assert world.store.status("plain") is Status.RUNNING


def test_a_key_vault_outage_at_launch_requeues_that_job_with_the_error_and_releases_its_capacity() -> None:
    world = make_world()
    world.job_secrets.faults.add("get", CloudError("read secret 'api-token': 503", status=503, transient=True))
    spec = {"id": "a", "containers": [{"name": "main", "image": "busybox", "secretEnv": {"T": "api-token"}}]}
    accept_message(world.services, json.dumps(spec).encode(), "a", "application/json")
    record = world.record("a")
    assert (record.status, record.attempts) == (Status.QUEUED, [])
    assert "503" in (record.last_error or "")
    assert world.ledger.state(POOL).groups == 0
    run_tick(world.services)
    assert world.store.status("a") is Status.RUNNING


def test_a_pool_whose_listing_fails_does_not_stop_the_other_pools_or_scheduling() -> None:
    other = POOL.model_copy(update={"name": "p2"})
    world = make_world(POOL, other)
    submit(world, "a", placement={"pool": "p2"})
    world.groups.finish(other, "a-a1", 0, at=world.clock.now())
    world.groups.faults.add("list", CloudError("list groups in p1: 500", status=500, transient=True))
    report = run_tick(world.services)
    assert world.store.status("a") is Status.SUCCEEDED
    assert report.failures == 1

"""A reconciler run over fakes: completion, harvest, retries, timeouts, cancellation, loss, orphans, scheduling."""

from __future__ import annotations

import datetime as dt
import json

from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.naming import group_name
from dispatcher.domain.observed import AciEvent, ContainerView, GroupView
from dispatcher.service.cancel import cancel
from dispatcher.service.finish import harvest
from dispatcher.service.logs import job_logs
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world


def accept(world: World, spec: dict[str, object], message_id: str) -> None:
    accept_message(world.services, json.dumps(spec).encode(), message_id, "application/json")


def submit(world: World, job_id: str, **spec: object) -> None:
    accept(world, {"id": job_id, "image": "busybox", "command": ["true"], **spec}, job_id)


def record(world: World, job_id: str) -> JobRecord:
    return world.record(job_id)


def test_a_finished_group_is_harvested_recorded_and_deleted() -> None:
    world = make_world()
    submit(world, "job-1")
    world.groups.log_text[("p1", "job-1-a1", "main")] = "hi\n"
    world.clock.advance(42)
    world.groups.finish(POOL, "job-1-a1", 0, at=world.clock.now())
    report = run_tick(world.services)
    done = record(world, "job-1")
    assert done.status is Status.SUCCEEDED
    assert done.attempts[0].containers[0].log_tail == "hi\n"
    assert world.logs.blobs == {"job-1/1/main.timed.log": "2026-01-01T00:00:00.000000001Z hi\n"}
    assert done.attempts[0].billed_seconds == 42
    assert done.cost > 0
    assert world.groups.deleted == [("p1", "job-1-a1")]
    assert world.ledger.state(POOL).groups == 0
    assert world.events.types() == ["queued", "started", "succeeded"]
    assert report.actions == {"Finish": 1}


def test_log_tails_keep_the_last_16_kb() -> None:
    world = make_world()
    submit(world, "job-1")
    world.groups.log_text[("p1", "job-1-a1", "main")] = "x" * 20_000 + "END"
    world.groups.finish(POOL, "job-1-a1", 0, at=world.clock.now())
    run_tick(world.services)
    tail = record(world, "job-1").attempts[0].containers[0].log_tail
    assert len(tail.encode()) == 16 * 1024
    assert tail.endswith("END")
    assert world.logs.blobs["job-1/1/main.timed.log"] == "2026-01-01T00:00:00.000000001Z " + "x" * 20_000 + "END"


def test_a_failed_attempt_with_retries_left_runs_again_after_backoff_in_a_new_group() -> None:
    world = make_world()
    submit(world, "job-1", retries={"count": 1, "backoffSeconds": 10})
    world.groups.finish(POOL, "job-1-a1", 3, at=world.clock.now())
    run_tick(world.services)
    waiting = record(world, "job-1")
    assert (waiting.status, len(waiting.attempts)) == (Status.QUEUED, 1)
    run_tick(world.services)
    assert record(world, "job-1").status is Status.QUEUED  # backoff not over
    world.clock.advance(11)
    run_tick(world.services)
    assert ("p1", "job-1-a2") in world.groups.created
    world.groups.finish(POOL, "job-1-a2", 3, at=world.clock.now())
    run_tick(world.services)
    final = record(world, "job-1")
    assert final.status is Status.FAILED
    assert [a.exit_codes for a in final.attempts] == [{"main": 3}, {"main": 3}]
    assert world.events.types() == ["queued", "started", "started", "failed"]


def test_a_job_past_its_timeout_is_stopped_harvested_deleted_and_timed_out() -> None:
    world = make_world()
    submit(world, "job-1", timeoutSeconds=5)
    world.clock.advance(6)
    run_tick(world.services)
    assert record(world, "job-1").status is Status.TIMED_OUT
    assert world.groups.stopped == [("p1", "job-1-a1")]
    assert world.groups.deleted == [("p1", "job-1-a1")]


def test_a_cancel_request_deletes_the_group_and_cancels() -> None:
    world = make_world()
    submit(world, "job-1")
    assert cancel(world.services, "job-1").record is not None
    run_tick(world.services)
    assert record(world, "job-1").status is Status.CANCELLED
    assert world.groups.deleted == [("p1", "job-1-a1")]


def test_a_group_deleted_out_of_band_is_lost_then_retried() -> None:
    world = make_world()
    submit(world, "job-1", retries=1)
    world.groups.created.pop(("p1", "job-1-a1"))
    world.clock.advance(61)
    run_tick(world.services)
    lost = record(world, "job-1")
    assert lost.status is Status.QUEUED
    assert "Lost" in (lost.attempts[0].reason or "")
    world.clock.advance(60)
    run_tick(world.services)
    assert ("p1", "job-1-a2") in world.groups.created


def test_an_image_pull_failure_fails_the_job_with_the_event_as_reason() -> None:
    world = make_world()
    submit(world, "job-1")
    pull = AciEvent("Failed", 'Failed to pull image "busybox": not found')
    world.groups.views[("p1", "job-1-a1")] = GroupView(
        "job-1-a1", "Succeeded", "Pending", containers=(ContainerView("main", "Waiting", events=(pull,)),)
    )
    world.clock.advance(world.services.settings.stuck_grace_seconds + 1)
    run_tick(world.services)
    failed = record(world, "job-1")
    assert failed.status is Status.FAILED
    assert "Failed to pull image" in (failed.reason or "")


def test_orphans_are_deleted_after_the_grace_period() -> None:
    world = make_world()
    submit(world, "job-1")
    held = world.ledger.find(POOL, "job-1-a1")
    assert held is not None
    world.ledger.release(world.ledger.state(POOL), held, world.clock.now())  # as if the dispatcher lost track of it
    run_tick(world.services)
    assert world.groups.deleted == []
    world.clock.advance(world.services.settings.orphan_grace_seconds + 1)
    run_tick(world.services)
    assert world.groups.deleted == [("p1", "job-1-a1")]


def test_queued_jobs_launch_as_capacity_frees_up_in_fifo_order() -> None:
    world = make_world()
    for job_id in ("a", "b", "c", "d"):
        submit(world, job_id)
        world.clock.advance(1)
    assert [e.job_id for e in world.store.queued(10)] == ["c", "d"]
    world.groups.finish(POOL, group_name("a", 1), 0, at=world.clock.now())
    report = run_tick(world.services)
    assert report.launched == 1
    assert record(world, "c").status is Status.RUNNING
    assert record(world, "d").status is Status.QUEUED
    assert world.ledger.state(POOL).groups == 2


WORKSPACE_SPEC = {
    "containers": [{"name": "main", "image": "busybox", "mounts": [{"volume": "out", "path": "/out"}]}],
    "volumes": {"out": {"kind": "workspace"}},
}


def test_workspace_outputs_are_summarised_in_the_record() -> None:
    world = make_world()
    accept(world, {"id": "job-1", **WORKSPACE_SPEC}, "m")
    world.shares.put("ws-job-1", "result.txt", b"42\n")
    world.shares.put("ws-job-1", "logs/run.txt", b"ok")
    world.groups.finish(POOL, "job-1-a1", 0, at=world.clock.now())
    run_tick(world.services)
    outputs = record(world, "job-1").outputs
    assert outputs is not None
    assert (outputs.files, outputs.bytes, outputs.first, outputs.complete) == (
        2,
        5,
        ["logs/run.txt", "result.txt"],
        True,
    )


def test_two_runs_over_the_same_state_finish_an_attempt_once() -> None:
    world = make_world()
    submit(world, "job-1")
    world.groups.finish(POOL, "job-1-a1", 0, at=world.clock.now())
    run_tick(world.services)
    run_tick(world.services)
    assert world.events.types() == ["queued", "started", "succeeded"]
    assert world.groups.deleted == [("p1", "job-1-a1")]


def test_terminal_jobs_past_retention_are_purged_with_their_logs_and_workspace() -> None:
    world = make_world()
    accept(world, {"id": "old", **WORKSPACE_SPEC}, "m")
    world.groups.finish(POOL, "old-a1", 0, at=world.clock.now())
    world.groups.log_text[("p1", "old-a1", "main")] = "bye"
    run_tick(world.services)
    submit(world, "active")
    world.clock.advance(86400 * world.services.settings.retention_days - 60)
    run_tick(world.services)
    assert world.store.get("old") is not None  # not old enough yet
    world.clock.advance(120)
    report = run_tick(world.services)
    assert report.actions.get("Purge") == 1
    assert world.store.get("old") is None
    assert not [path for path in world.logs.blobs if path.startswith("old/")]
    assert "ws-old" not in world.shares.shares
    assert world.store.get("active") is not None


def test_a_queue_of_jobs_that_do_not_fit_costs_no_pool_read_and_none_of_their_records() -> None:
    world = make_world(POOL.model_copy(update={"max_cores": 3}))
    two_cores = [{"name": "main", "image": "busybox", "command": ["true"], "cpu": 2}]
    for n, job_id in enumerate(["first"] + [f"big-{n}" for n in range(5)]):  # 2 + 2 > 3 cores: the bigs wait
        world.clock.advance(n)
        accept(world, {"id": job_id, "containers": two_cores}, job_id)
    world.ledger.reads.clear()
    world.store.got.clear()
    run_tick(world.services)
    assert [e.job_id for e in world.store.queued(10)] == [f"big-{n}" for n in range(5)]
    assert world.ledger.reads == {"active": 1}  # the scheduler starts from the state the reconciler has just read
    assert not [job_id for job_id in world.store.got if job_id.startswith("big")]  # their queue entries said enough


def test_a_run_reads_the_record_of_a_starting_or_finishing_job_once() -> None:
    world = make_world()
    world.groups.provisioning_state = "Creating"  # the create returns before the group runs: the job stays Launching
    submit(world, "job-1")
    assert record(world, "job-1").status is Status.LAUNCHING
    world.groups.provisioning_state = "Succeeded"
    world.store.got.clear()
    run_tick(world.services)
    assert world.store.got == ["job-1"]  # read to decide; marking it started writes on that read
    assert world.ledger.find(POOL, "job-1-a1") is not None
    world.groups.finish(POOL, "job-1-a1", 0, at=world.clock.now())
    world.store.got.clear()
    run_tick(world.services)
    assert world.store.got == ["job-1"]
    assert record(world, "job-1").status is Status.SUCCEEDED


def test_a_run_launching_several_queued_jobs_reads_no_pool_state_again() -> None:
    pool = POOL.model_copy(update={"max_groups": 5})
    world = make_world(pool)
    world.ledger.saturate(pool, world.clock.now() + dt.timedelta(seconds=60))  # ACI said the quota is reached
    for n in range(3):
        submit(world, f"job-{n}")
    assert [e.job_id for e in world.store.queued(10)] == ["job-0", "job-1", "job-2"]
    world.clock.advance(61)
    world.ledger.reads.clear()
    report = run_tick(world.services)
    assert report.launched == 3
    assert world.ledger.reads == {"active": 1}  # the reconciler's read serves the first launch, then each hands on
    assert world.ledger.state(pool).groups == 3


def test_each_dispatcher_keeps_its_own_round_over_running_groups() -> None:
    # Given two dispatchers (two processes) with the same pool name, each with five running groups and a read
    # budget of two gets per run
    pool = POOL.model_copy(update={"max_groups": 5, "max_cores": 5})
    worlds = [make_world(pool, arm_reads_per_tick=2) for _ in "ab"]
    for world in worlds:
        for n in range(5):
            submit(world, f"job-{n}")
    # When their runs alternate, three each (six gets: more than five groups)
    for world in worlds:
        world.groups.got.clear()
    for _ in range(3):
        for world in worlds:
            run_tick(world.services)
    # Then each one's round covered all of its groups: one dispatcher's round does not move the other's
    for world in worlds:
        assert set(world.groups.got) == {f"job-{n}-a1" for n in range(5)}


def test_a_burst_of_ending_groups_stays_within_the_runs_arm_reads_and_the_rest_end_on_later_runs() -> None:
    # Given six running jobs in one pool, a budget of five ARM reads a run, and all six groups ending at once
    pool = POOL.model_copy(update={"max_groups": 6, "max_cores": 6})
    world = make_world(pool, arm_reads_per_tick=5)
    for n in range(6):
        submit(world, f"job-{n}")
    run_tick(world.services)
    run_tick(world.services)
    assert all(record(world, f"job-{n}").status is Status.RUNNING for n in range(6))
    for n in range(6):
        world.groups.finish(pool, f"job-{n}-a1", 0, at=world.clock.now())
    # When runs follow one another
    ended: list[int] = []
    for _ in range(4):
        world.groups.gets = world.groups.log_reads = 0
        report = run_tick(world.services)
        # Then no run makes more gets and log reads together than its budget (a finished group's get and its
        # log read are paid together); what does not fit waits, and the next run's round begins with it
        assert world.groups.gets + world.groups.log_reads <= 5
        ended.append(report.actions.get("Finish", 0))
    assert ended == [2, 2, 2, 0]
    assert all(record(world, f"job-{n}").status is Status.SUCCEEDED for n in range(6))
    assert sorted(world.groups.deleted) == sorted(("p1", f"job-{n}-a1") for n in range(6))


def test_a_group_with_more_containers_than_the_read_budget_still_ends() -> None:
    world = make_world(arm_reads_per_tick=2)
    containers = [{"name": f"c{n}", "image": "busybox", "command": ["true"]} for n in range(3)]
    accept(world, {"id": "wide", "containers": containers}, "wide")
    world.groups.finish(POOL, "wide-a1", 0, 0, 0, at=world.clock.now())
    world.groups.gets = 0
    run_tick(world.services)
    assert record(world, "wide").status is Status.SUCCEEDED
    assert (world.groups.gets, world.groups.log_reads) == (1, 3)  # the run's first harvest always goes ahead


def test_a_pool_that_sends_container_logs_resolves_the_workspace_key_at_each_launch() -> None:
    from dispatcher.settings import ContainerLogs

    logs = ContainerLogs(workspace_id="5f0c0c9e-0000-4000-8000-000000000001", key_secret="log-analytics-key")
    world = make_world(POOL.model_copy(update={"container_logs": logs}))
    world.secrets.set("log-analytics-key", "workspace-key", tags={})
    submit(world, "job-1")
    request = world.groups.requests[("p1", "job-1-a1")]
    assert (request.container_logs, request.dispatcher_secrets["log-analytics-key"]) == (logs, "workspace-key")
    world.secrets.delete("log-analytics-key")  # the key gone from the vault: the job fails naming it
    submit(world, "job-3")
    failed = record(world, "job-3")
    assert failed.status is Status.FAILED
    assert "log-analytics-key" in (failed.reason or "")
    assert ("p1", "job-3-a1") not in world.groups.created


def test_a_second_harvest_of_an_attempt_after_its_group_is_gone_keeps_the_first_log() -> None:
    # Given a group harvested and deleted by one run
    world = make_world()
    submit(world, "job-1")
    world.groups.log_text[("p1", "job-1-a1", "main")] = "hi\n"
    world.groups.finish(POOL, "job-1-a1", 0, at=world.clock.now())
    view = world.groups.get(POOL, "job-1-a1")
    run_tick(world.services)
    assert world.logs.blobs["job-1/1/main.timed.log"].endswith(" hi\n")
    # When a run that read the group before it was deleted harvests it again (ACI now answers an empty log)
    del world.groups.log_text[("p1", "job-1-a1", "main")]
    done = record(world, "job-1")
    harvest(world.services, POOL, done, done.attempts[0], view)
    # Then the stored log is still the first harvest's
    assert world.logs.blobs["job-1/1/main.timed.log"].endswith(" hi\n")
    assert job_logs(world.services, record(world, "job-1"), "main", None) == {"main": "hi\n"}

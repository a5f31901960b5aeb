"""How deep the scheduler reads the queues: as deep as the run needs, never past ``SCHEDULE_BATCH`` per queue.

A read of the queue index costs client CPU per entry (about 20 ms for 200 entries against Azurite, 4 ms for 20),
and most runs have room for a few jobs; but a small job behind many that do not fit must still be reached in
the same run (backfill), and a team's next entry must be visible for the fair choice.
"""

from __future__ import annotations

import dataclasses
import json

from dispatcher.domain.jobs import QueueEntry, Status
from dispatcher.service.schedule import HEAD_FIRST, SCHEDULE_BATCH
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, FakeJobData, World, make_world


class Reads:
    """The queue port of a world, recording the depth of every read."""

    def __init__(self, store: FakeJobData) -> None:
        self._store = store
        self.depths: list[tuple[str | None, int]] = []

    def queued(self, limit: int, team: str | None = None) -> list[QueueEntry]:
        self.depths.append((team, limit))
        return self._store.queued(limit, team)

    def depth(self, limit: int, team: str | None = None) -> int:
        return self._store.depth(limit, team)

    def arrays(self, limit: int) -> list[str]:
        return self._store.arrays(limit)


def watched(world: World) -> Reads:
    reads = Reads(world.store)
    world.services = dataclasses.replace(world.services, queue=reads)
    return reads


def scheduler_reads(reads: Reads) -> list[int]:
    """The depths of the runs' reads of the queue (its count, with the upkeep, reads no entry)."""
    return [depth for _, depth in reads.depths]


def submit(world: World, job_id: str, cpu: float = 1.0) -> None:
    spec = {"id": job_id, "containers": [{"name": "main", "image": "busybox", "command": ["true"], "cpu": cpu}]}
    world.clock.advance(1)
    accept_message(world.services, json.dumps(spec).encode(), job_id, "application/json")


def test_a_run_with_room_for_one_job_reads_the_first_entries_only() -> None:
    world = make_world(POOL.model_copy(update={"max_groups": 1}))
    submit(world, "running")
    for n in range(100):
        submit(world, f"waits-{n}")
    world.groups.finish(POOL, "running-a1", 0, at=world.clock.now())
    reads = watched(world)
    run_tick(world.services)
    assert world.record("waits-0").status in (Status.LAUNCHING, Status.RUNNING)
    assert world.record("waits-1").status is Status.QUEUED
    assert scheduler_reads(reads) == [HEAD_FIRST]


def test_a_small_job_behind_more_than_a_first_read_of_jobs_that_do_not_fit_launches_in_the_same_run() -> None:
    world = make_world(POOL.model_copy(update={"max_cores": 3}))
    submit(world, "first", cpu=2)  # holds 2 of 3 cores: every 2-core job waits
    for n in range(HEAD_FIRST * 3):
        submit(world, f"big-{n}", cpu=2)
    submit(world, "small", cpu=1)
    assert world.record("small").status is Status.QUEUED  # intake keeps the order: older jobs wait
    reads = watched(world)
    run_tick(world.services)
    assert world.record("small").status in (Status.LAUNCHING, Status.RUNNING)
    assert scheduler_reads(reads) == [HEAD_FIRST, SCHEDULE_BATCH]  # read again once: the small job is the 62nd
    assert all(world.record(f"big-{n}").status is Status.QUEUED for n in range(HEAD_FIRST * 3))


def test_no_queue_is_read_past_the_batch_in_one_run() -> None:
    world = make_world(POOL.model_copy(update={"max_cores": 3}))
    submit(world, "first", cpu=2)
    for n in range(SCHEDULE_BATCH + 50):
        submit(world, f"big-{n}", cpu=2)
    submit(world, "small", cpu=1)
    reads = watched(world)
    run_tick(world.services)
    assert scheduler_reads(reads) == [HEAD_FIRST, SCHEDULE_BATCH]
    assert world.record("small").status is Status.QUEUED  # past the batch: a later run, as before


def test_room_by_cores_bounds_the_first_read_when_groups_are_plenty() -> None:
    world = make_world(POOL.model_copy(update={"max_groups": 100, "max_cores": 3}))
    submit(world, "first", cpu=2)  # 99 groups free, 1 core
    for n in range(100):
        submit(world, f"big-{n}", cpu=2)
    reads = watched(world)
    run_tick(world.services)
    assert scheduler_reads(reads) == [HEAD_FIRST, SCHEDULE_BATCH]  # not 4 x 99 groups deep; none fits: the batch

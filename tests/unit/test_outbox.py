"""The outbox: a transition's events are written with it and published after, so a failed publish loses nothing."""

from __future__ import annotations

import json

from dispatcher.domain.errors import CloudError
from dispatcher.domain.jobs import Status
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world, outage


def submit(world: World, job_id: str) -> None:
    body = json.dumps({"id": job_id, "image": "busybox", "command": ["true"]}).encode()
    accept_message(world.services, body, job_id, "application/json")


def test_with_the_events_topic_down_for_one_run_its_events_arrive_on_the_next_once_each() -> None:
    # Given two running jobs that have finished
    world = make_world()
    for job_id in ("a", "b"):
        submit(world, job_id)
        world.groups.finish(POOL, f"{job_id}-a1", 0, at=world.clock.now())
    published_before = len(world.events.published)
    # When the topic refuses every publish during one run
    world.events.faults.add("publish", *(outage("the events topic") for _ in range(10)))
    report = run_tick(world.services)
    # Then both jobs still finish and their groups go: the run was not stopped by the topic
    assert [world.store.status(j) for j in ("a", "b")] == [Status.SUCCEEDED, Status.SUCCEEDED]
    assert sorted(world.groups.deleted) == [("p1", "a-a1"), ("p1", "b-a1")]
    assert len(world.events.published) == published_before
    assert {e.kind for e in world.store.pending_events()} == {"succeeded"}
    assert report.failures == 0  # a publish that fails is not a failed action: its event is kept
    # And when the topic is back, the next run publishes each pending event once
    world.events.faults = type(world.events.faults)()
    run_tick(world.services)
    succeeded = [e for e in world.events.published if e.kind == "succeeded"]
    assert sorted(e.job_id for e in succeeded) == ["a", "b"]
    assert len({e.id for e in world.events.published}) == len(world.events.published)
    assert world.store.pending_events() == []
    run_tick(world.services)
    assert len(world.events.published) == published_before + 2


def test_a_publish_that_fails_at_intake_is_kept_and_drained_by_the_next_run() -> None:
    world = make_world()
    world.events.faults.add("publish", CloudError("topic unreachable", transient=True))
    submit(world, "a")
    assert world.events.types() == ["started"]  # the queued event failed; the one after it went on its own write
    assert [e.kind for e in world.store.pending_events()] == ["queued"]
    run_tick(world.services)
    assert sorted(world.events.types()) == ["queued", "started"]
    assert world.store.pending_events() == []


def test_an_event_published_but_not_cleared_is_published_again_with_the_same_id() -> None:
    world = make_world()
    world.store.faults.add("clear", CloudError("table unreachable", transient=True))
    submit(world, "a")
    run_tick(world.services)
    ids = [e.id for e in world.events.published]
    queued = [e for e in world.events.published if e.kind == "queued"]
    assert len(queued) == 2  # at least once: the consumer deduplicates by id
    assert len({e.id for e in queued}) == 1
    assert len(set(ids)) == len(ids) - 1


def test_a_terminal_event_is_written_with_the_terminal_record_so_a_failed_delete_loses_it_not() -> None:
    # Given a finished job whose group's delete fails (ARM answered 503 past the SDK's retries)
    world = make_world()
    submit(world, "a")
    world.groups.finish(POOL, "a-a1", 3, at=world.clock.now())
    world.groups.faults.add("delete", outage("ARM"))
    report = run_tick(world.services)
    # Then the outcome and its event are recorded anyway, and the next run deletes the group and releases it
    assert world.store.status("a") is Status.FAILED
    assert "failed" in world.events.types()
    assert report.failures == 1
    assert world.ledger.find(POOL, "a-a1") is not None
    run_tick(world.services)
    assert world.groups.deleted == [("p1", "a-a1")]
    assert world.ledger.find(POOL, "a-a1") is None
    assert world.events.types().count("failed") == 1

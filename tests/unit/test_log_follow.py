"""Following a job's log through the API (``GET /api/jobs/{id}/logs?after=``) over fakes: live lines, then the
harvested log where the live one left off, each line once; an attempt hands on to the next; followers share reads."""

from __future__ import annotations

import json
from typing import Any

from dispatcher.domain.logs import Cursor
from dispatcher.entrypoints import http as api
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world
from tests.fixtures.callers import ADMIN_CALLER


def submit(world: World, **spec: Any) -> None:
    body = json.dumps({"id": "job-1", **({"image": "busybox"} if "containers" not in spec else {}), **spec}).encode()
    accept_message(world.services, body, "job-1", "application/json")


def page(world: World, after: str | None = "", **query: str) -> dict[str, Any]:
    response = api.logs(
        world.services, "job-1", api.Request(caller=ADMIN_CALLER, query={"after": after or "", **query})
    )
    assert response.status == 200, response.body
    return json.loads(response.body)


def texts(answer: dict[str, Any]) -> list[str]:
    return [line["text"] for line in answer["lines"]]


def write(world: World, group: str, *lines: str, container: str = "main") -> None:
    world.groups.log_text[("p1", group, container)] = "".join(f"{line}\n" for line in lines)
    world.clock.advance(5)  # past the followers' shared read


def test_a_follower_gets_the_live_lines_then_the_harvested_ones_each_once() -> None:
    world = make_world()
    submit(world)
    write(world, "job-1-a1", "same", "same")
    first = page(world)
    assert (texts(first), first["attempt"], first["complete"], first["more"]) == (["same", "same"], 1, False, True)
    assert first["lines"][0] == {"container": "main", "time": "2026-01-01T00:00:00.000000001Z", "text": "same"}
    assert texts(page(world, first["next"])) == []
    write(world, "job-1-a1", "same", "same", "same", "last live")
    second = page(world, first["next"])
    assert texts(second) == ["same", "last live"]
    write(world, "job-1-a1", "same", "same", "same", "last live", "written as it ended")
    world.groups.finish(POOL, "job-1-a1", 0, at=world.clock.now())
    run_tick(world.services)
    world.groups.log_text.clear()  # the group is gone: what is left is the harvested log
    final = page(world, second["next"])
    assert (texts(final), final["complete"], final["more"]) == (["written as it ended"], True, False)
    assert texts(page(world, final["next"])) == []


def test_a_follower_starting_late_may_begin_at_the_last_lines() -> None:
    world = make_world()
    submit(world)
    write(world, "job-1-a1", *(f"line {i}" for i in range(10)))
    last = page(world, tail="2")
    assert texts(last) == ["line 8", "line 9"]
    write(world, "job-1-a1", *(f"line {i}" for i in range(11)))
    assert texts(page(world, last["next"])) == ["line 10"]


def test_an_ended_attempt_hands_the_follower_on_to_the_next_one() -> None:
    world = make_world()
    submit(world, retries={"count": 1, "backoffSeconds": 0})
    write(world, "job-1-a1", "attempt 1")
    one = page(world)
    world.groups.finish(POOL, "job-1-a1", 3, at=world.clock.now())
    run_tick(world.services)
    run_tick(world.services)
    handed = page(world, one["next"])
    assert (texts(handed), handed["attempt"], handed["complete"], handed["more"]) == ([], 1, True, True)
    assert Cursor.decode(handed["next"]).attempt == 2
    write(world, "job-1-a2", "attempt 2")
    two = page(world, handed["next"])
    assert (texts(two), two["attempt"]) == (["attempt 2"], 2)


def test_a_job_not_yet_running_has_no_lines_and_more_to_come() -> None:
    world = make_world()
    for other in ("a", "b"):  # the pool's two groups
        accept_message(
            world.services, json.dumps({"id": other, "image": "busybox"}).encode(), other, "application/json"
        )
    submit(world)
    assert world.record("job-1").current is None
    answer = page(world)
    assert (answer["attempt"], answer["lines"], answer["next"], answer["more"]) == (None, [], None, True)


def test_containers_are_interleaved_by_the_times_of_their_lines() -> None:
    world = make_world()
    spec = [{"name": "main", "image": "busybox"}, {"name": "side", "image": "busybox"}]
    submit(world, containers=spec)
    world.groups.log_text[("p1", "job-1-a1", "main")] = "m1\nm2\n"
    world.groups.log_times[("p1", "job-1-a1", "main")] = ["2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z"]
    world.groups.log_text[("p1", "job-1-a1", "side")] = "s1\n"
    world.groups.log_times[("p1", "job-1-a1", "side")] = ["2026-01-01T00:00:02Z"]
    answer = page(world)
    assert [(line["container"], line["text"]) for line in answer["lines"]] == [
        ("main", "m1"),
        ("side", "s1"),
        ("main", "m2"),
    ]
    assert [line["text"] for line in page(world, container="side")["lines"]] == ["s1"]


def test_followers_of_one_group_share_a_live_read_for_a_few_seconds() -> None:
    world = make_world()
    submit(world)
    write(world, "job-1-a1", "hello")
    reads = world.groups.log_reads
    for _ in range(10):
        assert texts(page(world)) == ["hello"]
    assert world.groups.log_reads == reads + 1
    world.clock.advance(3)
    page(world)
    assert world.groups.log_reads == reads + 2


def test_a_cursor_the_api_did_not_give_is_a_400_naming_after() -> None:
    world = make_world()
    submit(world)
    for bad in ("junk", Cursor(7).encode()):
        response = api.logs(world.services, "job-1", api.Request(caller=ADMIN_CALLER, query={"after": bad}))
        assert response.status == 400
        problem = json.loads(response.body)
        assert response.content_type.startswith("application/problem+json")
        assert [error["loc"] for error in problem["errors"]] == ["after"]

"""Fair share across teams: the choice (table-tested), team limits at admission, and one team's burst against
another team's single job."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from dispatcher.core.scheduling import Held, dominant_share, next_fair
from dispatcher.domain.jobs import QueueEntry, Status
from dispatcher.domain.placement import Demand
from dispatcher.entrypoints import http as api
from dispatcher.service.tick import run_tick
from dispatcher.settings import Pool
from tests.fakes import POOL, World, make_world
from tests.fixtures.callers import ALICE, BOB

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
POOLS = [Pool(name="p", subscription_id="s", resource_group="r", location="westeurope", max_groups=10, max_cores=20)]


def entry(job_id: str, minute: int, team: str | None, priority: int = 0, cores: float = 1.0) -> QueueEntry:
    return QueueEntry(job_id, priority, T0 + dt.timedelta(minutes=minute), None, Demand(cores, 1.0), team)


@pytest.mark.parametrize(
    ("held", "weights", "expected"),
    [
        ({}, {}, "a1"),  # nobody holds anything: the oldest first
        ({"a": Held(2, 2)}, {}, "b1"),  # a holds more: b's head goes first although it is newer
        ({"a": Held(2, 2), "b": Held(2, 2)}, {}, "a1"),  # equal shares: the older
        ({"a": Held(4, 2), "b": Held(2, 2)}, {"a": 2.0}, "a1"),  # a's weight halves its share of cores (0.1 < 0.2)
        ({"a": Held(0, 5)}, {}, "b1"),  # groups are a resource too: a's dominant share is 5 of 10 groups
        ({"a": Held(1, 1), "b": Held(1, 1), None: Held(0, 0)}, {}, "n1"),  # jobs of no team: a queue like any other
    ],
)
def test_the_team_with_the_smallest_weighted_dominant_share_goes_next(
    held: dict[str | None, Held], weights: dict[str | None, float], expected: str
) -> None:
    heads: dict[str | None, list[QueueEntry]] = {
        "a": [entry("a1", 0, "a"), entry("a2", 1, "a")],
        "b": [entry("b1", 5, "b")],
    }
    if None in held:
        heads[None] = [entry("n1", 9, None)]
    chosen = next_fair(heads, {}, held, weights, POOLS)
    assert chosen is not None
    assert chosen[1].job_id == expected


def test_within_a_team_its_own_order_and_none_when_every_head_is_taken() -> None:
    heads = {"a": [entry("urgent", 9, "a", priority=0), entry("spot", 0, "a", priority=1)]}
    assert next_fair(heads, {}, {}, {}, POOLS) == ("a", heads["a"][0])
    assert next_fair(heads, {"a": 1}, {}, {}, POOLS) == ("a", heads["a"][1])
    assert next_fair(heads, {"a": 2}, {}, {}, POOLS) is None


def test_dominant_share_is_the_larger_share_over_every_pool() -> None:
    assert dominant_share(Held(10, 1), POOLS, 1.0) == 0.5
    assert dominant_share(Held(1, 5), POOLS, 2.0) == 0.25


TEAMS: dict[str, Any] = {"ml": {"groups": ["g-ml"]}, "web": {"groups": ["g-web"]}}


def post(world: World, caller: Any, job_id: str) -> None:
    body = json.dumps({"id": job_id, "image": "busybox"}).encode()
    request = api.Request(body=body, headers={"content-type": "application/json"}, caller=caller)
    assert api.submit(world.services, request).status == 202


LAUNCHED = (Status.LAUNCHING, Status.RUNNING)


def launched(world: World, job_id: str) -> bool:
    return status(world, job_id) in LAUNCHED


def status(world: World, job_id: str) -> Status:
    found = world.services.records.get(job_id)
    assert found is not None
    return found.value.status


def finish(world: World, job_id: str) -> None:
    found = world.services.records.get(job_id)
    assert found is not None
    assert found.value.current is not None
    world.groups.finish(POOL, found.value.current.group, 0, at=world.clock.now())


def test_one_teams_burst_does_not_hold_another_teams_job_past_the_run_in_which_capacity_frees() -> None:
    """Before fair share, the scheduler read the first 200 entries of one queue: the web job behind 250 ml jobs
    waited until ml's backlog had drained below 200."""
    world = make_world(teams=TEAMS)  # the pool runs 2 groups at once
    for n in range(250):
        post(world, ALICE, f"ml-{n:03}")
    run_tick(world.services)
    assert [launched(world, f"ml-{n:03}") for n in range(3)] == [True, True, False]
    post(world, BOB, "web-1")
    finish(world, "ml-000")
    run_tick(world.services)  # ml-000's group is harvested and deleted, freeing a slot: web's job takes it
    assert launched(world, "web-1")
    assert status(world, "ml-002") is Status.QUEUED


def test_a_team_never_holds_more_than_its_limits_and_the_rest_of_the_pool_serves_others() -> None:
    world = make_world(teams={**TEAMS, "ml": {"groups": ["g-ml"], "maxGroups": 1}})
    for n in range(3):
        post(world, ALICE, f"ml-{n}")
    post(world, BOB, "web-1")
    run_tick(world.services)
    assert [launched(world, f"ml-{n}") for n in range(3)] == [True, False, False]
    assert launched(world, "web-1")
    assert (world.ledger.team_state("ml").groups, world.ledger.team_state("web").groups) == (1, 1)
    finish(world, "ml-0")
    run_tick(world.services)
    run_tick(world.services)
    assert status(world, "ml-0") is Status.SUCCEEDED
    assert launched(world, "ml-1")
    assert world.ledger.team_state("ml").groups == 1

"""The usage report: ended jobs fold into daily totals once, and a caller sees its teams' usage."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from dispatcher.domain.usage import MAX_LABEL_PAIRS, OTHER, DayTotal, Usage, UsageEntry, report
from dispatcher.entrypoints import http as api
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world
from tests.fixtures.callers import ADMIN_CALLER, ALICE, BOB

DAY = dt.date(2026, 12, 1)
TEAMS: dict[str, Any] = {"ml": {"groups": ["g-ml"]}, "web": {"groups": ["g-web"]}}


def entry(job_id: str, team: str, cost: float, **labels: str) -> UsageEntry:
    return UsageEntry(job_id, DAY, team, labels, Usage(1, 10.0, 20.0, cost))


def test_a_report_sums_by_team_or_by_one_labels_values_of_the_visible_teams() -> None:
    total = DayTotal(DAY, "ml").folded([entry("a", "ml", 1.0, project="atlas"), entry("b", "ml", 2.0, project="zeus")])
    pending = [entry("c", "web", 4.0, project="atlas")]
    assert report([total], pending, "team", None) == {"ml": Usage(2, 20.0, 40.0, 3.0), "web": Usage(1, 10.0, 20.0, 4.0)}
    assert report([total], pending, "label:project", None) == {
        "atlas": Usage(2, 20.0, 40.0, 5.0),
        "zeus": Usage(1, 10.0, 20.0, 2.0),
    }
    assert report([total], pending, "team", ("web",)) == {"web": Usage(1, 10.0, 20.0, 4.0)}


def test_a_days_total_keeps_a_bounded_number_of_label_pairs() -> None:
    entries = [entry(f"j{n}", "ml", 1.0, run=f"r{n:04}") for n in range(MAX_LABEL_PAIRS + 5)]
    total = DayTotal(DAY, "ml").folded(entries)
    assert len(total.by_label) == MAX_LABEL_PAIRS + 1
    assert total.by_label[f"run={OTHER}"].jobs == 5


def post(world: World, caller: Any, job_id: str, **spec: Any) -> None:
    body = json.dumps({"id": job_id, "image": "busybox", **spec}).encode()
    request = api.Request(body=body, headers={"content-type": "application/json"}, caller=caller)
    assert api.submit(world.services, request).status == 202


def run_to_the_end(world: World, *job_ids: str) -> None:
    run_tick(world.services)
    for job_id in job_ids:
        found = world.services.records.get(job_id)
        assert found is not None
        assert found.value.current is not None
        world.groups.finish(POOL, found.value.current.group, 0, at=world.clock.now())
    world.clock.advance(60)
    run_tick(world.services)


def usage(world: World, caller: Any, **query: str) -> dict[str, Any]:
    response = api.usage(world.services, api.Request(query=query, caller=caller))
    assert response.status == 200, response.body
    return {item["key"]: item for item in json.loads(response.body)["items"]}


def test_jobs_that_end_are_counted_once_per_team_and_each_team_sees_its_own() -> None:
    world = make_world(teams=TEAMS)
    post(world, ALICE, "ml-1", labels={"project": "atlas"})
    post(world, BOB, "web-1", labels={"project": "atlas"})
    run_to_the_end(world, "ml-1", "web-1")
    everything = usage(world, ADMIN_CALLER)
    assert {k: v["jobs"] for k, v in everything.items()} == {"ml": 1, "web": 1}
    run_tick(world.services)  # a later run folds nothing twice
    assert usage(world, ADMIN_CALLER) == everything
    assert world.services.usage.pending(10) == []
    assert list(usage(world, ALICE)) == ["ml"]
    assert usage(world, ADMIN_CALLER, by="label:project")["atlas"]["jobs"] == 2


@pytest.mark.parametrize(
    "query",
    [{"by": "owner"}, {"by": "label:"}, {"since": "2026-12-02T00:00Z", "until": "2026-12-01T00:00Z"}, {"since": "x"}],
)
def test_bad_parameters_are_400_naming_them(query: dict[str, str]) -> None:
    response = api.usage(make_world().services, api.Request(query=query, caller=ADMIN_CALLER))
    assert response.status == 400
    assert json.loads(response.body)["errors"][0]["loc"] in query

"""Schedules over fakes: firing once per due time, missed times, deadlines, Forbid and Replace, history, API."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.domain.document import load_document
from dispatcher.domain.errors import InvalidJob
from dispatcher.domain.jobs import Status
from dispatcher.domain.schedules import validate_schedule
from dispatcher.entrypoints import http_runs
from dispatcher.entrypoints.http import Request
from dispatcher.service import schedules
from dispatcher.service.tick import run_tick
from tests.fakes import POOL, World, make_world, outage
from tests.fixtures.callers import ADMIN_CALLER

START = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def document(name: str = "nightly", **schedule: Any) -> dict[str, Any]:
    return {
        "schedule": {"name": name, "cron": "*/10 * * * *", **schedule},
        "job": {"image": "busybox", "command": ["true"], "labels": {"project": "a"}},
    }


def at(world: World, moment: dt.datetime) -> None:
    world.clock.advance((moment - world.clock.now()).total_seconds())


def jobs_of(world: World, name: str) -> list[str]:
    return sorted(j for j, (r, _) in world.store.records.items() if r.labels.get("schedule") == name)


def finish(world: World, job_id: str, code: int) -> None:
    world.groups.finish(POOL, f"{job_id}-a1", code, at=world.clock.now())


@pytest.fixture
def world() -> World:
    w = make_world()
    at(w, START)
    return w


def test_each_due_time_becomes_one_job_named_by_the_schedule_and_the_utc_time(world: World) -> None:
    schedules.apply(world.services, document(), "nightly")
    run_tick(world.services)
    assert jobs_of(world, "nightly") == []  # created at 12:00: the first due time is 12:10
    at(world, START + dt.timedelta(minutes=10, seconds=5))
    run_tick(world.services)
    run_tick(world.services)  # a second run in the same minute fires nothing more
    assert jobs_of(world, "nightly") == ["nightly-202611221210"]
    job = world.record("nightly-202611221210")
    assert job.labels == {"project": "a", "schedule": "nightly"}
    assert job.status is Status.LAUNCHING or job.status is Status.RUNNING  # launched in the same run
    fired = [e for e in world.events.published if e.type == "dispatcher.schedule.fired"]
    assert len(fired) == 1
    assert fired[0].data["jobId"] == "nightly-202611221210"


def test_two_overlapping_runs_that_both_read_the_schedule_record_one_job_and_one_event(world: World) -> None:
    schedules.apply(world.services, document(), "nightly")
    at(world, START + dt.timedelta(minutes=10))
    first = world.services.schedules.get("nightly")
    second = world.services.schedules.get("nightly")
    assert first is not None
    assert second is not None
    assert schedules.advance(world.services, first) == "fired"
    with pytest.raises(Exception, match="nightly"):  # the slower run's write loses: its view is stale
        schedules.advance(world.services, second)
    assert jobs_of(world, "nightly") == ["nightly-202611221210"]
    assert sum(e.type == "dispatcher.schedule.fired" for e in world.events.published) == 1


def test_a_crash_between_the_job_and_the_schedule_write_is_finished_by_the_next_run(world: World) -> None:
    schedules.apply(world.services, document(), "nightly")
    at(world, START + dt.timedelta(minutes=10))
    world.schedules.faults.add("replace", outage("table storage"))
    run_tick(world.services)  # the job is recorded; the schedule write fails
    assert jobs_of(world, "nightly") == ["nightly-202611221210"]
    run_tick(world.services)
    assert jobs_of(world, "nightly") == ["nightly-202611221210"]
    record = world.services.schedules.get("nightly")
    assert record is not None
    assert record.value.handled == START + dt.timedelta(minutes=10)
    assert [r.job_id for r in record.value.active] == ["nightly-202611221210"]


def test_after_downtime_only_the_latest_missed_time_runs(world: World) -> None:
    schedules.apply(world.services, document(), "nightly")
    at(world, START + dt.timedelta(hours=3, minutes=5))
    run_tick(world.services)
    assert jobs_of(world, "nightly") == ["nightly-202611221500"]
    record = world.services.schedules.get("nightly")
    assert record is not None
    assert record.value.missed == 17  # 12:10 .. 14:50


def test_a_missed_time_past_the_starting_deadline_is_skipped_and_says_so(world: World) -> None:
    schedules.apply(world.services, document(startingDeadlineSeconds=60), "nightly")
    at(world, START + dt.timedelta(minutes=12))
    run_tick(world.services)
    assert jobs_of(world, "nightly") == []
    record = world.services.schedules.get("nightly")
    assert record is not None
    assert record.value.last_skipped is not None
    assert "starting deadline" in record.value.last_skipped.reason
    assert [e.type for e in world.events.published if "schedule" in e.type] == ["dispatcher.schedule.skipped"]
    at(world, START + dt.timedelta(minutes=20, seconds=30))
    run_tick(world.services)
    assert jobs_of(world, "nightly") == ["nightly-202611221220"]


def test_forbid_skips_while_the_previous_job_is_active_and_fires_once_it_ended(world: World) -> None:
    schedules.apply(world.services, document(concurrencyPolicy="Forbid"), "nightly")
    at(world, START + dt.timedelta(minutes=10))
    run_tick(world.services)
    at(world, START + dt.timedelta(minutes=20))
    run_tick(world.services)
    assert jobs_of(world, "nightly") == ["nightly-202611221210"]
    record = world.services.schedules.get("nightly")
    assert record is not None
    assert record.value.last_skipped is not None
    assert "Forbid" in record.value.last_skipped.reason
    finish(world, "nightly-202611221210", 0)
    at(world, START + dt.timedelta(minutes=30))
    run_tick(world.services)
    assert jobs_of(world, "nightly") == ["nightly-202611221210", "nightly-202611221230"]
    record = world.services.schedules.get("nightly")
    assert record is not None
    assert [r.job_id for r in record.value.succeeded] == ["nightly-202611221210"]


def test_replace_cancels_the_previous_job_first(world: World) -> None:
    schedules.apply(world.services, document(concurrencyPolicy="Replace"), "nightly")
    at(world, START + dt.timedelta(minutes=10))
    run_tick(world.services)
    at(world, START + dt.timedelta(minutes=20))
    run_tick(world.services)
    assert world.record("nightly-202611221210").cancel_requested
    assert world.record("nightly-202611221220").status is not Status.CANCELLED
    fired = [e for e in world.events.published if e.type == "dispatcher.schedule.fired"]
    assert fired[-1].data["replaced"] == ["nightly-202611221210"]


def test_history_keeps_the_last_n_succeeded_and_failed(world: World) -> None:
    schedules.apply(world.services, document(history={"succeeded": 2, "failed": 1}), "nightly")
    for n in range(1, 6):
        at(world, START + dt.timedelta(minutes=10 * n))
        run_tick(world.services)
        job_id = f"nightly-{(START + dt.timedelta(minutes=10 * n)):%Y%m%d%H%M}"
        finish(world, job_id, 0 if n % 2 else 1)
    run_tick(world.services)
    record = world.services.schedules.get("nightly")
    assert record is not None
    assert [r.job_id for r in record.value.succeeded] == ["nightly-202611221250", "nightly-202611221230"]
    assert [r.job_id for r in record.value.failed] == ["nightly-202611221240"]
    assert record.value.active == []


def test_suspend_stops_firing_and_resume_runs_the_latest_missed_time(world: World) -> None:
    schedules.apply(world.services, document(), "nightly")
    schedules.set_suspended(world.services, "nightly", True)
    at(world, START + dt.timedelta(minutes=35))
    run_tick(world.services)
    assert jobs_of(world, "nightly") == []
    assert schedules.view(world.services, "nightly").next_due == []
    schedules.set_suspended(world.services, "nightly", False)
    run_tick(world.services)
    assert jobs_of(world, "nightly") == ["nightly-202611221230"]


def test_a_trigger_runs_now_once_per_idempotency_key(world: World) -> None:
    schedules.apply(world.services, document(concurrencyPolicy="Forbid"), "nightly")
    first = schedules.trigger(world.services, "nightly", "key-1")
    again = schedules.trigger(world.services, "nightly", "key-1")
    other = schedules.trigger(world.services, "nightly", "key-2")
    assert first.id == again.id != other.id
    assert first.id.startswith("nightly-t")
    assert len(jobs_of(world, "nightly")) == 2


def test_delete_leaves_active_jobs_unless_asked_to_cancel_them(world: World) -> None:
    schedules.apply(world.services, document(), "nightly")
    schedules.apply(world.services, document("other"), "other")
    at(world, START + dt.timedelta(minutes=10))
    run_tick(world.services)
    assert schedules.delete(world.services, "nightly", cancel_active=False) == []
    assert not world.record("nightly-202611221210").cancel_requested
    assert schedules.delete(world.services, "other", cancel_active=True) == ["other-202611221210"]
    assert world.record("other-202611221210").cancel_requested
    assert world.services.schedules.list(10) == []


def test_replacing_a_schedule_keeps_what_it_has_done(world: World) -> None:
    schedules.apply(world.services, document(), "nightly")
    at(world, START + dt.timedelta(minutes=10))
    run_tick(world.services)
    _, created = schedules.apply(world.services, document(cron="0 3 * * *"), "nightly")
    assert not created
    record = world.services.schedules.get("nightly")
    assert record is not None
    assert record.value.spec.cron == "0 3 * * *"
    assert [r.job_id for r in record.value.active] == ["nightly-202611221210"]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"schedule": {"name": "n", "cron": "* * *"}}, "schedule.cron"),
        ({"schedule": {"name": "n", "cron": "0 3 * * *", "timeZone": "Mars/Olympus"}}, "schedule.timeZone"),
        (
            {"schedule": {"name": "n", "cron": "0 3 * * *", "concurrencyPolicy": "Sometimes"}},
            "schedule.concurrencyPolicy",
        ),
        (
            {"schedule": {"name": "n", "cron": "0 3 * * *", "startingDeadlineSeconds": 0}},
            "schedule.startingDeadlineSeconds",
        ),
        ({"schedule": {"name": "n", "cron": "0 3 * * *", "history": {"failed": 1000}}}, "schedule.history.failed"),
        ({"job": {"image": "busybox", "cpu": 9}}, "job.cpu"),
        ({"job": {"id": "fixed", "image": "busybox"}}, "job.id"),
        ({"job": {"image": "busybox", "labels": {"schedule": "x"}}}, "job.labels.schedule"),
        (
            {"job": {"containers": [{"name": "main", "image": "b", "secretEnv": {"T": {"value": "v"}}}]}},
            "job.containers[0].secretEnv.T",
        ),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(change: dict[str, Any], loc: str) -> None:
    world = make_world()
    data = {"schedule": {"name": "n", "cron": "0 3 * * *"}, "job": {"image": "busybox"}, **change}
    with pytest.raises(InvalidJob) as caught:
        schedules.apply(world.services, data, "n")
    assert loc in [e.loc for e in caught.value.errors], caught.value.errors


def test_a_name_too_long_for_the_job_id_grammar_is_refused() -> None:
    world = make_world()
    name = "n" * 46
    response = http_runs.put_schedule(
        world.services, name, Request(json.dumps(document(name)).encode(), caller=ADMIN_CALLER)
    )
    assert response.status == 400
    assert json.loads(response.body)["errors"][0]["loc"] == "name"


def test_the_api_creates_shows_triggers_and_deletes(world: World) -> None:
    body = json.dumps(document()).encode()
    created = http_runs.put_schedule(
        world.services, "nightly", Request(body, caller=ADMIN_CALLER, headers={"content-type": "application/json"})
    )
    assert created.status == 201
    shown = json.loads(created.body)
    assert shown["nextDue"][0] == "2026-11-22T12:10:00Z"
    assert http_runs.put_schedule(world.services, "nightly", Request(body, caller=ADMIN_CALLER)).status == 200
    assert http_runs.get_schedule(world.services, "nope", Request(caller=ADMIN_CALLER)).status == 404
    triggered = http_runs.schedule_action(
        world.services, "nightly", "trigger", Request(caller=ADMIN_CALLER, headers={"idempotency-key": "k"})
    )
    assert triggered.status == 202
    job_id = json.loads(triggered.body)["id"]
    assert [
        r["jobId"]
        for r in json.loads(http_runs.get_schedule(world.services, "nightly", Request(caller=ADMIN_CALLER)).body)[
            "active"
        ]
    ] == [job_id]
    assert http_runs.schedule_action(world.services, "nightly", "explode", Request(caller=ADMIN_CALLER)).status == 404
    listing = json.loads(http_runs.list_schedules(world.services, Request(caller=ADMIN_CALLER)).body)
    assert [s["schedule"]["name"] for s in listing["items"]] == ["nightly"]
    bad = http_runs.delete_schedule(
        world.services, "nightly", Request(caller=ADMIN_CALLER, query={"cancelActive": "maybe"})
    )
    assert bad.status == 400
    deleted = http_runs.delete_schedule(
        world.services, "nightly", Request(caller=ADMIN_CALLER, query={"cancelActive": "true"})
    )
    assert json.loads(deleted.body) == {"deleted": "nightly", "cancelled": [job_id]}
    assert http_runs.get_schedule(world.services, "nightly", Request(caller=ADMIN_CALLER)).status == 404


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "examples" / "schedules").glob("*.yaml")))
def test_the_schedule_examples_are_valid(path: Path) -> None:
    document = validate_schedule(load_document(path.read_bytes()))
    assert document.schedule.name == path.stem


def test_jobs_in_a_schedules_history_outlive_retention_and_those_that_left_it_are_purged() -> None:
    world = make_world(retention_days=1)
    at(world, START)
    schedules.apply(world.services, document(history={"succeeded": 1, "failed": 0}), "nightly")
    for n in (1, 2):
        at(world, START + dt.timedelta(minutes=10 * n))
        run_tick(world.services)
        finish(world, f"nightly-{START + dt.timedelta(minutes=10 * n):%Y%m%d%H%M}", 0)
    run_tick(world.services)
    at(world, START + dt.timedelta(days=2))
    run_tick(world.services)
    assert "nightly-202611221210" not in world.store.records  # left the history: normal retention
    assert "nightly-202611221220" in world.store.records  # the last succeeded, kept while the schedule shows it
    schedules.delete(world.services, "nightly", cancel_active=False)
    at(world, START + dt.timedelta(days=4))
    run_tick(world.services)
    assert "nightly-202611221220" not in world.store.records


def test_an_array_job_template_with_a_name_too_long_for_its_groups_is_refused() -> None:
    world = make_world()
    long = "n" * 45
    data = {"schedule": {"name": long, "cron": "0 3 * * *"}, "job": {"image": "busybox", "tasks": {"count": 3}}}
    with pytest.raises(InvalidJob) as caught:
        schedules.apply(world.services, data, long)
    assert [e.loc for e in caught.value.errors] == ["schedule.name"]
    short = {**data, "schedule": {"name": "nightly-shards", "cron": "0 3 * * *"}}
    schedules.apply(world.services, short, "nightly-shards")

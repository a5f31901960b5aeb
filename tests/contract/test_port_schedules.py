"""The Schedules and Dependencies ports, run against the fakes and the Table adapters over Azurite."""

from __future__ import annotations

import datetime as dt

import pytest

from dispatcher.domain.document import validate_job
from dispatcher.domain.errors import AlreadyExists, Conflict
from dispatcher.domain.events import schedule_event
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.schedules import Run, ScheduleRecord, validate_schedule
from tests.contract.conftest import JobData

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def schedule(name: str, cron: str = "0 3 * * *") -> ScheduleRecord:
    document = validate_schedule({"schedule": {"name": name, "cron": cron}, "job": {"image": "busybox"}})
    return ScheduleRecord(document=document, created_at=NOW, updated_at=NOW, handled=NOW)


def waiting(job_id: str, *dependencies: str) -> JobRecord:
    spec = validate_job({"id": job_id, "image": "busybox", "dependsOn": list(dependencies)})
    return JobRecord(id=job_id, spec=spec, spec_hash="h", status=Status.WAITING, submitted_at=NOW, updated_at=NOW)


def test_a_schedule_is_created_once_and_read_back_by_its_exact_name(job_data: JobData) -> None:
    job_data.schedules.insert(schedule("nightly"))
    job_data.schedules.insert(schedule("nightly-2"))
    with pytest.raises(AlreadyExists):
        job_data.schedules.insert(schedule("nightly"))
    found = job_data.schedules.get("nightly")
    assert found is not None
    assert found.value == schedule("nightly")
    assert job_data.schedules.get("nightl") is None
    assert [s.value.name for s in job_data.schedules.list(10)] == ["nightly", "nightly-2"]
    assert [s.value.name for s in job_data.schedules.list(1)] == ["nightly"]


def test_replace_and_delete_hold_only_on_the_current_etag(job_data: JobData) -> None:
    first = job_data.schedules.insert(schedule("nightly"))
    changed = first.value.model_copy(update={"active": [Run(job_id="nightly-202611220300", due=NOW)]})
    second = job_data.schedules.replace(first, changed)
    with pytest.raises(Conflict):
        job_data.schedules.replace(first, first.value)
    with pytest.raises(Conflict):
        job_data.schedules.delete(first)
    found = job_data.schedules.get("nightly")
    assert found is not None
    assert found.value.active == changed.active
    job_data.schedules.delete(second)
    assert job_data.schedules.get("nightly") is None
    with pytest.raises(Conflict):
        job_data.schedules.delete(second)


def test_a_schedules_events_go_to_the_outbox_in_the_same_write(job_data: JobData) -> None:
    first = job_data.schedules.insert(schedule("nightly"))
    second = job_data.schedules.replace(first, first.value)
    event = schedule_event("nightly", "fired", NOW, "nightly-202611220300", NOW, instance="test")
    with pytest.raises(Conflict):
        job_data.schedules.replace(first, first.value, [event])
    assert job_data.outbox.pending(10) == []
    job_data.schedules.replace(second, second.value, [event])
    assert [e.id for e in job_data.outbox.pending(10)] == [event.id]


def test_the_waits_index_follows_waiting_records(job_data: JobData) -> None:
    written = job_data.records.insert(waiting("b", "a", "x"))
    job_data.records.insert(waiting("c", "a"))
    assert job_data.dependencies.waiters("a", 10) == ["b", "c"]
    assert job_data.dependencies.waiters("x", 10) == ["b"]
    assert job_data.dependencies.waiters("b", 10) == []
    job_data.records.replace(written, written.value.transition(Status.QUEUED, NOW))
    assert job_data.dependencies.waiters("a", 10) == ["c"]
    assert job_data.dependencies.waiters("x", 10) == []


def test_a_release_row_exists_while_an_ended_job_has_undecided_dependants(job_data: JobData) -> None:
    spec = validate_job({"id": "a", "image": "busybox"})
    a = JobRecord(id="a", spec=spec, spec_hash="h", status=Status.QUEUED, submitted_at=NOW, updated_at=NOW)
    found = job_data.records.insert(a)
    found = job_data.records.replace(found, found.value.model_copy(update={"has_dependants": True}))
    assert job_data.dependencies.released(10) == []
    found = job_data.records.replace(found, found.value.transition(Status.CANCELLED, NOW))
    assert job_data.dependencies.released(10) == ["a"]
    job_data.records.replace(found, found.value.model_copy(update={"dependants_released": True}))
    assert job_data.dependencies.released(10) == []


def test_a_purge_removes_the_release_row_too(job_data: JobData) -> None:
    spec = validate_job({"id": "a", "image": "busybox"})
    ended = JobRecord(
        id="a", spec=spec, spec_hash="h", status=Status.FAILED, submitted_at=NOW, updated_at=NOW, has_dependants=True
    )
    job_data.records.insert(ended)
    assert job_data.dependencies.released(10) == ["a"]
    job_data.retention.purge("a")
    assert job_data.dependencies.released(10) == []

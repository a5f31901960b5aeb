"""The contract of the array rows of the job partition (write_array, tasks, array_groups, arrays), run against the
fake and the Table adapter over Azurite."""

from __future__ import annotations

import datetime as dt

import pytest

from dispatcher.core.arrays import group_record, packed, running_rows
from dispatcher.domain.document import validate_job
from dispatcher.domain.errors import Conflict
from dispatcher.domain.events import progress_event
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.tasks import ArrayState, TaskRun, TaskStatus
from dispatcher.ports import JobQuery
from tests.contract.conftest import JobData

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def parent(job_id: str = "arr", count: int = 200) -> JobRecord:
    spec = validate_job({"id": job_id, "image": "busybox", "cpu": 0.25, "memoryGB": 0.5, "tasks": {"count": count}})
    return JobRecord(
        id=job_id,
        spec=spec,
        spec_hash="h",
        status=Status.QUEUED,
        submitted_at=NOW,
        updated_at=NOW,
        array=ArrayState(count=count),
    )


def pack(job_data: JobData, found_parent: JobRecord, indexes: range) -> tuple[JobRecord, JobRecord]:
    found = job_data.records.get(found_parent.id)
    assert found is not None
    assert found.value.array is not None
    record, state = found.value, found.value.array
    runs = [TaskRun(index=i) for i in indexes]
    name = f"{record.id}-g{state.next_group}"
    group = group_record(record, state.next_group, runs, NOW)
    new = record.model_copy(update={"array": packed(state, name, runs)}).transition(Status.RUNNING, NOW)
    job_data.records.write_array(found, new, groups=[(None, group)], tasks=running_rows(record, name, runs))
    return new, group


def test_an_array_job_is_indexed_while_it_runs_and_never_queued_itself(job_data: JobData) -> None:
    job_data.records.insert(parent("arr"))
    assert job_data.queue.arrays(10) == ["arr"]
    assert [e.job_id for e in job_data.queue.queued(10)] == []
    new, group = pack(job_data, parent("arr"), range(16))
    assert [e.job_id for e in job_data.queue.queued(10)] == [group.id]
    assert job_data.records.array_groups("arr", ended=False, limit=10) == [group.id]
    assert job_data.records.array_groups("arr", ended=True, limit=10) == []
    found = job_data.records.get("arr")
    assert found is not None
    job_data.records.write_array(found, new.transition(Status.CANCELLED, NOW))
    assert job_data.queue.arrays(10) == []


def test_a_group_and_its_task_rows_are_written_with_the_job_in_one_write(job_data: JobData) -> None:
    job_data.records.insert(parent("arr"))
    _, group = pack(job_data, parent("arr"), range(60))  # 60 task rows, two records and their index rows
    rows = job_data.records.tasks("arr", 0, 1000)
    assert [t.index for t in rows] == list(range(60))
    assert {t.status for t in rows} == {TaskStatus.RUNNING}
    assert rows[5].group == group.id
    assert [t.index for t in job_data.records.tasks("arr", 50, 5)] == [50, 51, 52, 53, 54]
    listed, _ = job_data.records.list(JobQuery())
    assert [r.id for r in listed] == ["arr"]  # a group record is not listed as a job
    stale = job_data.records.get("arr")
    assert stale is not None
    again = parent("arr").model_copy(update={"status": Status.RUNNING})
    with pytest.raises(Conflict):  # the same group again: it exists
        job_data.records.write_array(stale, again, groups=[(None, group)])


def test_an_ended_group_is_listed_until_absorbed_and_events_over_a_transaction_go_first(job_data: JobData) -> None:
    job_data.records.insert(parent("arr"))
    _, group = pack(job_data, parent("arr"), range(60))
    found_group = job_data.records.get(group.id)
    assert found_group is not None
    ended = found_group.value.model_copy(update={"status": Status.SUCCEEDED})
    job_data.records.replace(found_group, ended)
    assert job_data.records.array_groups("arr", ended=True, limit=10) == [group.id]
    assert job_data.records.array_groups("arr", ended=False, limit=10) == []
    found, found_group = job_data.records.get("arr"), job_data.records.get(group.id)
    assert found is not None
    assert found_group is not None
    rows = [t.model_copy(update={"status": TaskStatus.SUCCEEDED}) for t in job_data.records.tasks("arr", 0, 100)]
    events = [progress_event(found.value, instance="x")] * 1 + [
        progress_event(found.value.model_copy(update={"array": ArrayState(count=200, succeeded=i)}), instance="x")
        for i in range(1, 45)
    ]  # 60 task rows + 45 events + the records: more than one transaction holds
    marked = found_group.value.model_copy(update={"absorbed": True})
    job_data.records.write_array(found, found.value, groups=[(found_group, marked)], tasks=rows, events=events)
    assert job_data.records.array_groups("arr", ended=True, limit=10) == []
    assert {t.status for t in job_data.records.tasks("arr", 0, 100)} == {TaskStatus.SUCCEEDED}
    assert len(job_data.outbox.pending(100)) == 45


def test_a_stale_group_version_conflicts_and_writes_nothing(job_data: JobData) -> None:
    job_data.records.insert(parent("arr"))
    _, group = pack(job_data, parent("arr"), range(4))
    found, found_group = job_data.records.get("arr"), job_data.records.get(group.id)
    assert found is not None
    assert found_group is not None
    job_data.records.replace(found_group, found_group.value.model_copy(update={"last_error": "x"}))
    with pytest.raises(Conflict):
        job_data.records.write_array(
            found, found.value, groups=[(found_group, found_group.value.model_copy(update={"absorbed": True}))]
        )
    after = job_data.records.get("arr")
    assert after is not None
    assert after.etag == found.etag

"""Array jobs' rows in the ``jobs`` partition: task rows, and the indexes the array run reads.

| RowKey | what |
| --- | --- |
| ``job|{key}|task|{index:06d}`` | one task of an array job, from its first run on (beside its job's record) |
| ``array|{submitted ms}|{key}`` | an array job still running: the reconciler's array run reads these |
| ``groupq|{key}|{group}`` | a group record of job ``key`` still waiting to be launched |
| ``groupend|{key}|{group}`` | a group record of job ``key`` that ended, its results not yet taken into the job |

The index rows are derived from the records, and written in the same transaction as the record they index.
"""

from __future__ import annotations

from typing import Any

from azure.data.tables import TableEntity, UpdateMode

from dispatcher.adapters.azure.tables.layout import JOBS, LAYOUT, job_prefix
from dispatcher.domain.jobs import JobRecord, array_active, group_rows
from dispatcher.domain.tasks import TaskRecord

Operation = tuple[Any, ...]
INDEX_DIGITS = 6


def task_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}task|"


def task_row(job_id: str, index: int) -> str:
    return f"{task_prefix(job_id)}{index:0{INDEX_DIGITS}d}"


def array_row(record: JobRecord) -> str:
    return f"array|{int(record.submitted_at.timestamp() * 1000):015d}|{record.id}"


def group_queued_row(job_id: str, group: str) -> str:
    return f"groupq|{job_id}|{group}"


def group_ended_row(job_id: str, group: str) -> str:
    return f"groupend|{job_id}|{group}"


def task_entity(task: TaskRecord) -> dict[str, Any]:
    return {
        "PartitionKey": JOBS,
        "RowKey": task_row(task.job_id, task.index),
        "Kind": "task",
        "Layout": LAYOUT,
        "JobId": task.job_id,
        "Status": task.status.value,
        "Task": task.model_dump_json(exclude_defaults=True),
    }


def task_from(entity: TableEntity) -> TaskRecord:
    if entity.get("Layout") != LAYOUT:
        raise ValueError(f"row {entity.get('RowKey')!r} has layout {entity.get('Layout')!r}, not {LAYOUT}")
    return TaskRecord.model_validate_json(str(entity["Task"]))


def _row(key: str, job_id: str, kind: str) -> dict[str, Any]:
    return {"PartitionKey": JOBS, "RowKey": key, "Kind": kind, "Layout": LAYOUT, "JobId": job_id}


def _toggle(was: bool, now: bool, key: str, job_id: str, kind: str) -> list[Operation]:
    if was and not now:
        return [("delete", {"PartitionKey": JOBS, "RowKey": key})]
    if now and not was:
        return [("upsert", _row(key, job_id, kind), {"mode": UpdateMode.REPLACE})]
    return []


def array_index_operations(old: JobRecord | None, new: JobRecord) -> list[Operation]:
    """The array rows a write of ``new`` over ``old`` adds or removes."""
    operations = _toggle(old is not None and array_active(old), array_active(new), array_row(new), new.id, "array")
    if new.group_of is not None:
        queued_before, ended_before = group_rows(old) if old is not None else (False, False)
        queued, ended = group_rows(new)
        parent = new.group_of
        operations += _toggle(queued_before, queued, group_queued_row(parent, new.id), new.id, "groupq")
        operations += _toggle(ended_before, ended, group_ended_row(parent, new.id), new.id, "groupend")
    return operations


def task_operations(tasks: list[TaskRecord]) -> list[Operation]:
    return [("upsert", task_entity(t), {"mode": UpdateMode.REPLACE}) for t in tasks]

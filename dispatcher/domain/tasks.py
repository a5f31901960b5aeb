"""Array jobs: the ``tasks`` block of a spec, and the state an array job keeps of its tasks. Pure.

An array job runs one container per task; tasks are packed into container groups, each group a *group record*
(a job record with :attr:`~dispatcher.domain.jobs.JobRecord.group_of` set) that the ordinary launch, reconcile
and finish paths run. The array job's own record holds :class:`ArrayState`: counts, the tasks due for a retry,
the groups not yet absorbed, and where the never-started tasks begin. A task has a row of its own
(:class:`TaskRecord`) from its first run on; a task past :attr:`ArrayState.next_index` has none and is Pending.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator
from pydantic.alias_generators import to_camel

MAX_ITEMS_BYTES = 128 * 1024
"""All items of an array job together, as JSON: they are stored once, in the job's record."""
MAX_ITEM_BYTES = 8 * 1024
"""One item, as its ``TASK_ITEM`` value."""
MAX_GROUP_SEQUENCE = 999_999
"""Group sequence numbers stay within six digits, so ``{id}-g{sequence}`` keeps within ARM's 63 characters."""
GROUP_SUFFIX_MAX = len(f"-g{MAX_GROUP_SEQUENCE}")
MAX_INTERRUPTIONS = 10
"""Runs of one task that ended through no fault of its own (an eviction, a neighbour's stop) before it fails."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class FixedPacking(_Model):
    """Exactly this many tasks per group (the last group may hold fewer)."""

    tasks_per_group: int = Field(ge=1, description="Tasks per container group, at most 60.")


class Tasks(_Model):
    """The tasks of an array job: ``count`` indexed tasks, or one task per item."""

    count: int | None = Field(default=None, description="How many tasks, each seeing TASK_INDEX 0..count-1.")
    items: list[JsonValue] | None = Field(
        default=None, description="One task per item; each task sees its item as TASK_ITEM (JSON unless a string)."
    )
    indexes: list[int] | None = Field(
        default=None,
        description="Run only these tasks (a re-run of the failed ones); each keeps its TASK_INDEX and TASK_COUNT.",
    )
    parallelism: int | None = Field(default=None, description="At most this many tasks running at once.")
    max_failed_tasks: int | None = Field(
        default=None, description="Once more tasks than this have failed for good, the job stops and fails."
    )
    packing: Literal["auto", "none"] | FixedPacking = Field(
        default="auto", description="auto: as many tasks per group as fit; none: one per group; or tasksPerGroup."
    )

    @model_validator(mode="after")
    def _shape(self) -> Tasks:
        if self.count is not None and self.items is not None:
            raise ValueError("give either count or items, not both")
        if self.count is None and self.items is None:
            raise ValueError("give count (how many tasks) or items (one task per item)")
        if self.indexes is not None and any(i >= self.total for i in self.indexes):
            raise ValueError(f"indexes must be below the {self.total} tasks")
        return self

    @field_validator("indexes")
    @classmethod
    def _indexes(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("an empty list of indexes: an array job runs at least one task")
        if any(i < 0 for i in value) or value != sorted(set(value)):
            raise ValueError("indexes are distinct task indexes from 0, in increasing order")
        return value

    @field_validator("count")
    @classmethod
    def _count(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"{value} tasks: an array job has at least one")
        return value

    @field_validator("items")
    @classmethod
    def _items(cls, value: list[JsonValue] | None) -> list[JsonValue] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("an empty item list: an array job has at least one task")
        total = len(json.dumps(value, separators=(",", ":")).encode())
        if total > MAX_ITEMS_BYTES:
            raise ValueError(f"the items take {total} bytes as JSON; at most {MAX_ITEMS_BYTES} are stored")
        big = [i for i, item in enumerate(value) if len(item_text(item).encode()) > MAX_ITEM_BYTES]
        if big:
            raise ValueError(f"item {big[0]} is over the {MAX_ITEM_BYTES} bytes a TASK_ITEM value may have")
        return value

    @field_validator("parallelism")
    @classmethod
    def _parallelism(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"{value}: at least one task must be allowed to run")
        return value

    @field_validator("max_failed_tasks")
    @classmethod
    def _max_failed(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError(f"{value} is negative")
        return value

    @property
    def total(self) -> int:
        """The tasks the job declares: what each task sees as TASK_COUNT."""
        return self.count if self.count is not None else len(self.items or [])

    @property
    def size(self) -> int:
        """The tasks this job runs: all of them, or only ``indexes``."""
        return len(self.indexes) if self.indexes is not None else self.total

    def index_at(self, position: int) -> int:
        """The task index of the ``position``-th task this job runs."""
        return self.indexes[position] if self.indexes is not None else position

    def position_of(self, index: int) -> int | None:
        """Where task ``index`` is among the tasks this job runs, or ``None`` when it runs no such task."""
        if self.indexes is None:
            return index if 0 <= index < self.total else None
        position = bisect.bisect_left(self.indexes, index)
        return position if position < len(self.indexes) and self.indexes[position] == index else None

    def item(self, index: int) -> str | None:
        """The ``TASK_ITEM`` of task ``index``, or ``None`` for a counted array."""
        return None if self.items is None else item_text(self.items[index])


def item_text(item: Any) -> str:
    """An item as its task sees it: a string as it is, anything else as compact JSON."""
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))


class TaskStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"

    @property
    def ended(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskRun(_Record):
    """One run of one task in a group: which task, and what it had used before this run."""

    index: int
    attempts: int = Field(default=0, description="Charged failures before this run.")
    runs: int = Field(default=0, description="Runs before this one, charged or not.")
    interruptions: int = Field(default=0, description="Runs before this one that ended through no fault of its own.")
    groups: list[str] = Field(default_factory=list, description="The groups of its earlier runs.")


class RetryDue(_Record):
    """A task waiting for its next run: after a failure's backoff, or at once after an interruption."""

    index: int
    due: dt.datetime
    attempts: int
    runs: int
    interruptions: int = 0
    groups: list[str] = Field(default_factory=list)


class ArrayState(_Record):
    """What an array job's record keeps of its tasks; bounded by the running tasks and the failed ones."""

    count: int = Field(description="The tasks the job runs.")
    next_index: int = Field(default=0, description="Tasks from this position on have never run.")
    retry: list[RetryDue] = Field(default_factory=list)
    open_groups: list[str] = Field(default_factory=list, description="Group records not yet absorbed.")
    next_group: int = 1
    running: int = Field(default=0, description="Tasks in open groups.")
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    failed_indexes: list[int] = Field(default_factory=list)
    reported: int = Field(default=-1, description="Ended tasks when the last progress event was written.")
    stopping: str | None = Field(default=None, description="Why the job stops its remaining tasks.")

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def pending(self) -> int:
        return self.count - self.ended - self.running

    @property
    def finished(self) -> bool:
        return not self.open_groups and (self.ended == self.count or self.stopping is not None)

    def counts(self) -> dict[str, int]:
        return {
            "total": self.count,
            "pending": self.pending,
            "running": self.running,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
        }


class TaskRecord(_Record):
    """One task of an array job, from its first run on: its row beside the job's record."""

    job_id: str
    index: int
    status: TaskStatus
    attempts: int = Field(default=0, description="Runs that failed and were charged against the retries.")
    runs: int = 0
    interruptions: int = 0
    group: str | None = Field(default=None, description="The group of its latest run.")
    groups: list[str] = Field(default_factory=list, description="Every group it ran in, oldest first.")
    exit_code: int | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    not_before: dt.datetime | None = None
    reason: str | None = None
    cost: float = 0.0
    item: str | None = None

    @property
    def container(self) -> str:
        return task_container(self.index)


def task_container(index: int) -> str:
    """The name of task ``index``'s container in its group."""
    return f"task-{index}"


def task_of_container(name: str) -> int | None:
    prefix = "task-"
    return int(name[len(prefix) :]) if name.startswith(prefix) and name[len(prefix) :].isdigit() else None


def array_group_name(job_id: str, sequence: int) -> str:
    """The deterministic name of an array job's ``sequence``-th group: its group record's id and its ACI name."""
    return f"{job_id}-g{sequence}"

"""Schedules on Azure Table Storage: ``schedule|{name}`` rows in the ``jobs`` partition (see :mod:`.layout`), so a
schedule's write carries its events to the outbox in the same entity group transaction."""

from __future__ import annotations

from collections.abc import Sequence

from azure.core import MatchConditions
from azure.data.tables import TableClient, UpdateMode

from dispatcher.adapters.azure.tables import layout
from dispatcher.adapters.azure.tables.jobs import Operation, etag_of, event_operations, first, read, submit_guarded
from dispatcher.domain.errors import AlreadyExists, Conflict
from dispatcher.domain.events import CloudEvent
from dispatcher.domain.schedules import ScheduleRecord
from dispatcher.ports import Versioned

STALE = (404, 409, 412)
"""What a conditional write of a schedule that changed or went away answers."""


class TableSchedules:
    """The Schedules port."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, name: str) -> Versioned[ScheduleRecord] | None:
        entity = read(self._table, layout.JOBS, layout.schedule_row(name), f"read schedule {name}")
        return layout.versioned_schedule(entity) if entity is not None else None

    def list(self, limit: int) -> list[Versioned[ScheduleRecord]]:
        return first(self._table, "schedule|", limit, layout.versioned_schedule, "list schedules")

    def insert(self, record: ScheduleRecord, events: Sequence[CloudEvent] = ()) -> Versioned[ScheduleRecord]:
        operations: list[Operation] = [("create", layout.schedule_entity(record)), *event_operations(events)]
        action = f"create schedule {record.name}"
        parts = submit_guarded(self._table, operations, action, AlreadyExists(record.name), (409,))
        return Versioned(record, etag_of(parts[0]))

    def replace(
        self, old: Versioned[ScheduleRecord], new: ScheduleRecord, events: Sequence[CloudEvent] = ()
    ) -> Versioned[ScheduleRecord]:
        conditional = {"mode": UpdateMode.REPLACE, "etag": old.etag, "match_condition": MatchConditions.IfNotModified}
        operations: list[Operation] = [("update", layout.schedule_entity(new), conditional), *event_operations(events)]
        parts = submit_guarded(self._table, operations, f"write schedule {new.name}", Conflict(new.name), STALE)
        return Versioned(new, etag_of(parts[0]))

    def delete(self, old: Versioned[ScheduleRecord]) -> None:
        entity = {"PartitionKey": layout.JOBS, "RowKey": layout.schedule_row(old.value.name)}
        guarded = {"etag": old.etag, "match_condition": MatchConditions.IfNotModified}
        operations: list[Operation] = [("delete", entity, guarded)]
        submit_guarded(self._table, operations, f"delete schedule {old.value.name}", Conflict(old.value.name), STALE)

"""Schedules on Azure Table Storage: ``schedule|{name}`` rows in the ``jobs`` partition (see :mod:`.layout`), so a
schedule's write carries its events to the outbox in the same entity group transaction."""

from __future__ import annotations

from collections.abc import Sequence

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from dispatcher.adapters.azure.errors import translated
from dispatcher.adapters.azure.tables import layout
from dispatcher.adapters.azure.tables.jobs import Operation, etag_of, event_operations, first
from dispatcher.domain.errors import AlreadyExists, Conflict
from dispatcher.domain.events import CloudEvent
from dispatcher.domain.schedules import ScheduleRecord
from dispatcher.ports import Versioned


class TableSchedules:
    """The Schedules port."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, name: str) -> Versioned[ScheduleRecord] | None:
        with translated(f"read schedule {name}"):
            try:
                entity = self._table.get_entity(layout.JOBS, layout.schedule_row(name))
            except ResourceNotFoundError:
                return None
        return layout.versioned_schedule(entity)

    def list(self, limit: int) -> list[Versioned[ScheduleRecord]]:
        return first(self._table, "schedule|", limit, layout.versioned_schedule, "list schedules")

    def insert(self, record: ScheduleRecord, events: Sequence[CloudEvent] = ()) -> Versioned[ScheduleRecord]:
        operations: list[Operation] = [("create", layout.schedule_entity(record)), *event_operations(events)]
        with translated(f"create schedule {record.name}"):
            try:
                parts = self._table.submit_transaction(operations)
            except TableTransactionError as exc:
                if exc.index == 0 and exc.status_code == 409:
                    raise AlreadyExists(record.name) from None
                raise
        return Versioned(record, etag_of(parts[0]))

    def replace(
        self, old: Versioned[ScheduleRecord], new: ScheduleRecord, events: Sequence[CloudEvent] = ()
    ) -> Versioned[ScheduleRecord]:
        conditional = {"mode": UpdateMode.REPLACE, "etag": old.etag, "match_condition": MatchConditions.IfNotModified}
        operations: list[Operation] = [("update", layout.schedule_entity(new), conditional), *event_operations(events)]
        with translated(f"write schedule {new.name}"):
            try:
                parts = self._table.submit_transaction(operations)
            except TableTransactionError as exc:
                if exc.index == 0 and exc.status_code in (404, 409, 412):
                    raise Conflict(new.name) from None
                raise
        return Versioned(new, etag_of(parts[0]))

    def delete(self, old: Versioned[ScheduleRecord]) -> None:
        entity = {"PartitionKey": layout.JOBS, "RowKey": layout.schedule_row(old.value.name)}
        operations: list[Operation] = [
            ("delete", entity, {"etag": old.etag, "match_condition": MatchConditions.IfNotModified})
        ]
        with translated(f"delete schedule {old.value.name}"):
            try:
                self._table.submit_transaction(operations)
            except TableTransactionError as exc:
                if exc.status_code in (404, 409, 412):
                    raise Conflict(old.value.name) from None
                raise

"""Usage on Azure Table Storage: the UsageLedger port over the ``usage|`` rows of the jobs partition."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from azure.data.tables import TableClient, TableTransactionError

from dispatcher.adapters.azure.errors import translated
from dispatcher.adapters.azure.tables import layout
from dispatcher.adapters.azure.tables.jobs import first, read
from dispatcher.adapters.azure.tables.ledger import guarded
from dispatcher.domain.usage import FOLD_MAX, DayTotal, UsageEntry


class TableUsage:
    """The UsageLedger port."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def pending(self, limit: int) -> list[UsageEntry]:
        return first(self._table, layout.USAGE_PENDING, limit, layout.usage_pending_from, "read pending usage")

    def day_total(self, day: dt.date, team: str) -> DayTotal:
        row = layout.usage_day_row(day, team)
        entity = read(self._table, layout.JOBS, row, f"read the usage of {team} on {day}")
        return layout.usage_day_from(entity) if entity is not None else DayTotal(day, team)

    def fold(self, total: DayTotal, entries: Sequence[UsageEntry]) -> bool:
        if len(entries) > FOLD_MAX:
            raise ValueError(f"one fold takes at most {FOLD_MAX} entries")
        operations = [guarded(layout.usage_day_entity(total.folded(entries)), total.etag)]
        operations += [
            ("delete", {"PartitionKey": layout.JOBS, "RowKey": f"{layout.USAGE_PENDING}{e.job_id}"}) for e in entries
        ]
        with translated(f"fold the usage of {total.team} on {total.day}"):
            try:
                self._table.submit_transaction(operations)
            except TableTransactionError as exc:
                if exc.status_code in (404, 409, 412):
                    return False  # another run folded some of them, or the total moved on: a later run retries
                raise
        return True

    def totals(self, since: dt.date, until: dt.date) -> list[DayTotal]:
        low = f"{layout.USAGE_DAYS}{since.isoformat()}|"
        high = f"{layout.USAGE_DAYS}{until.isoformat()}|~"
        with translated("read usage"):
            return [
                layout.usage_day_from(entity)
                for entity in self._table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                    parameters={"pk": layout.JOBS, "low": low, "high": high},
                )
            ]

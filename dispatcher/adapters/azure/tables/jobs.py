"""Job records, the queue index, the outbox and retention on Azure Table Storage (``azure-data-tables``).

Five ports over the ``jobs`` partition (see :mod:`.layout`). Only :class:`TableJobRecords` writes: each write is
one entity group transaction holding the record, the index rows it implies and its events.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from dispatcher.adapters.azure.errors import translated
from dispatcher.adapters.azure.tables import layout
from dispatcher.adapters.azure.tables.tasks import (
    array_index_operations,
    task_from,
    task_operations,
    task_prefix,
    task_row,
)
from dispatcher.domain.errors import AlreadyExists, CloudError, Conflict
from dispatcher.domain.events import CloudEvent
from dispatcher.domain.identity import TEAM_LABEL
from dispatcher.domain.jobs import Intent, JobRecord, QueueEntry, intent_of, queue_entry, to_release, waits_of
from dispatcher.domain.tasks import TaskRecord
from dispatcher.domain.usage import usage_entry
from dispatcher.ports import Expired, JobQuery, Versioned

Operation = tuple[Any, ...]
MAX_TRANSACTION = 100
"""Operations in one entity group transaction."""
T = TypeVar("T")


def etag_of(metadata: Any) -> str:
    return str(metadata["etag"])


def _range(table: TableClient, prefix: str, *, extra: str = "", **options: Any) -> Iterator[TableEntity]:
    low, high = layout.prefix_range(prefix)
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high" + (f" and {extra}" if extra else "")
    parameters = {"pk": layout.JOBS, "low": low, "high": high, **options.pop("parameters", {})}
    return iter(table.query_entities(query, parameters=parameters, **options))


def read(table: TableClient, partition: str, row: str, action: str) -> TableEntity | None:
    """One entity by its keys, or ``None`` when there is none."""
    with translated(action):
        try:
            return table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None


def first(
    table: TableClient, prefix: str, limit: int, decode: Callable[[TableEntity], T], action: str, **options: Any
) -> list[T]:
    """The first ``limit`` rows under ``prefix``, in key order, decoded."""
    found: list[T] = []
    with translated(action):
        for entity in _range(table, prefix, results_per_page=min(max(limit, 1), 1000), **options):
            found.append(decode(entity))
            if len(found) >= limit:
                break
    return found


def _index_operations(old: JobRecord | None, new: JobRecord) -> list[Operation]:
    """The index rows a write of ``new`` over ``old`` adds, changes or removes."""
    operations: list[Operation] = []
    before, after = (queue_entry(old) if old else None), queue_entry(new)
    if before is not None and (after is None or layout.queue_row(before) != layout.queue_row(after)):
        operations.append(("delete", {"PartitionKey": layout.JOBS, "RowKey": layout.queue_row(before)}))
    if after is not None and after != before:
        operations.append(("upsert", layout.queue_entity(after), {"mode": UpdateMode.REPLACE}))
    was, now = (intent_of(old) if old else None), intent_of(new)
    if was is not None and (now is None or layout.intent_row(was) != layout.intent_row(now)):
        operations.append(("delete", {"PartitionKey": layout.JOBS, "RowKey": layout.intent_row(was)}))
    if now is not None and now != was:
        operations.append(("upsert", layout.intent_entity(now), {"mode": UpdateMode.REPLACE}))
    if new.status.terminal and (old is None or not old.status.terminal):
        operations.append(("upsert", layout.done_entity(new), {"mode": UpdateMode.REPLACE}))
        used = usage_entry(new)
        if used is not None:  # once: a job ends once, and folding deletes the entry it counts
            operations.append(("upsert", layout.usage_pending_entity(used), {"mode": UpdateMode.REPLACE}))
    waited, waits = (set(waits_of(old)) if old else set()), set(waits_of(new))
    operations += [
        ("delete", {"PartitionKey": layout.JOBS, "RowKey": layout.wait_row(d, new.id)}) for d in sorted(waited - waits)
    ]
    operations += [
        ("upsert", layout.wait_entity(d, new.id), {"mode": UpdateMode.REPLACE}) for d in sorted(waits - waited)
    ]
    released, release = (to_release(old) if old else False), to_release(new)
    if released and not release:
        operations.append(("delete", {"PartitionKey": layout.JOBS, "RowKey": layout.release_row(new.id)}))
    elif release and not released:
        operations.append(("upsert", layout.release_entity(new.id), {"mode": UpdateMode.REPLACE}))
    if new.group_of is None and (old is None or old.status is not new.status or old.labels != new.labels):
        operations += [("upsert", entity, {"mode": UpdateMode.REPLACE}) for entity in layout.listed_entities(new)]
    return operations + array_index_operations(old, new)


def _conditional(etag: str) -> dict[str, Any]:
    return {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}


def submit_guarded(
    table: TableClient, operations: list[Operation], action: str, guard: Exception, statuses: tuple[int, ...]
) -> list[Any]:
    """Submit one entity group transaction; its first operation failing with one of ``statuses`` (the row exists,
    or its ETag moved on) raises ``guard``."""
    with translated(action):
        try:
            return list(table.submit_transaction(operations))
        except TableTransactionError as exc:
            if exc.index == 0 and exc.status_code in statuses:
                raise guard from None
            raise


def event_operations(events: Sequence[CloudEvent]) -> list[Operation]:
    return [("upsert", layout.outbox_entity(e), {"mode": UpdateMode.REPLACE}) for e in events]


def _checked(entity: dict[str, Any], job_id: str) -> dict[str, Any]:
    if layout.record_size(entity) > layout.MAX_RECORD_CHARS:
        raise CloudError(
            f"the record of job {job_id} would exceed Table storage's entity size",
            code="EntityTooLarge",
            transient=False,
        )
    return entity


class TableJobRecords:
    """The JobRecords port: each write is one entity group transaction of the record, its index rows and events."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def ensure_table(self) -> None:
        """Create the table if it does not exist yet."""
        with translated(f"create table {self._table.table_name}"), contextlib.suppress(ResourceExistsError):
            self._table.create_table()

    def insert(self, record: JobRecord, events: Sequence[CloudEvent] = ()) -> Versioned[JobRecord]:
        entity = _checked(layout.record_entity(record), record.id)
        operations: list[Operation] = [("create", entity), *_index_operations(None, record), *event_operations(events)]
        parts = submit_guarded(self._table, operations, f"insert job {record.id}", AlreadyExists(record.id), (409,))
        return Versioned(record, etag_of(parts[0]))

    def get(self, job_id: str) -> Versioned[JobRecord] | None:
        entity = read(self._table, layout.JOBS, layout.record_row(job_id), f"read job {job_id}")
        return Versioned(layout.record_from(entity), etag_of(entity.metadata)) if entity is not None else None

    def replace(
        self, old: Versioned[JobRecord], new: JobRecord, events: Sequence[CloudEvent] = ()
    ) -> Versioned[JobRecord]:
        entity = _checked(layout.record_entity(new), new.id)
        operations: list[Operation] = [
            ("update", entity, _conditional(old.etag)),
            *_index_operations(old.value, new),
            *event_operations(events),
        ]
        parts = self._submit(operations, {0}, new.id, f"write job {new.id}")
        return Versioned(new, etag_of(parts[0]))

    def _submit(self, operations: list[Operation], guarded: set[int], job_id: str, action: str) -> list[Any]:
        """One transaction whose record writes (at ``guarded``) are conditional: one that fails raises Conflict. An
        index row already gone is not deleted again: the rest is written without its delete."""
        with translated(action):
            while True:
                try:
                    return list(self._table.submit_transaction(operations))
                except TableTransactionError as exc:
                    if exc.index in guarded and exc.status_code in (404, 409, 412):
                        raise Conflict(job_id) from None
                    if exc.index not in guarded and exc.status_code == 404 and operations[exc.index][0] == "delete":
                        gone = exc.index
                        operations = operations[:gone] + operations[gone + 1 :]
                        guarded = {i - 1 if i > gone else i for i in guarded}
                        continue
                    raise

    def write_array(
        self,
        old: Versioned[JobRecord],
        new: JobRecord,
        *,
        groups: Sequence[tuple[Versioned[JobRecord] | None, JobRecord]] = (),
        tasks: Sequence[TaskRecord] = (),
        events: Sequence[CloudEvent] = (),
    ) -> Versioned[JobRecord]:
        operations: list[Operation] = [
            ("update", _checked(layout.record_entity(new), new.id), _conditional(old.etag)),
            *_index_operations(old.value, new),
        ]
        guarded = {0}
        for before, group in groups:
            guarded.add(len(operations))
            entity = _checked(layout.record_entity(group), group.id)
            if before is None:
                operations += [("create", entity), *_index_operations(None, group)]
            else:
                operations += [("update", entity, _conditional(before.etag)), *_index_operations(before.value, group)]
        rest = [*task_operations(list(tasks)), *event_operations(events)]
        if len(operations) + len(rest) > MAX_TRANSACTION:  # task rows and events are idempotent: they go first
            with translated(f"write the tasks of job {new.id}"):
                for start in range(0, len(rest), MAX_TRANSACTION):
                    self._table.submit_transaction(rest[start : start + MAX_TRANSACTION])
            rest = []
        parts = self._submit(operations + rest, guarded, new.id, f"write array job {new.id}")
        return Versioned(new, etag_of(parts[0]))

    def tasks(self, job_id: str, start: int, limit: int) -> list[TaskRecord]:
        return first(
            self._table,
            task_prefix(job_id),
            limit,
            task_from,
            f"read the tasks of {job_id}",
            parameters={"low": task_row(job_id, max(start, 0))},
        )

    def array_groups(self, job_id: str, *, ended: bool, limit: int) -> list[str]:
        kind = "groupend" if ended else "groupq"
        return first(self._table, f"{kind}|{job_id}|", limit, layout.job_id_from, f"read the groups of {job_id}")

    def add_conflict(self, record: JobRecord, events: Sequence[CloudEvent] = ()) -> None:
        entity = layout.record_entity(record, layout.conflict_row(record.id, record.spec_hash))
        operations: list[Operation] = [("upsert", entity, {"mode": UpdateMode.REPLACE}), *event_operations(events)]
        with translated(f"record a conflicting submission of {record.id}"):
            self._table.submit_transaction(operations)

    def list(self, query: JobQuery) -> tuple[list[JobRecord], str | None]:
        clauses, parameters = ["Kind eq @kind"], {"kind": "listed"}
        if query.status:
            clauses.append("Status eq @status")
            parameters["status"] = query.status
        if query.since:
            clauses.append("SubmittedAt ge @since")
            parameters["since"] = query.since  # type: ignore[assignment]
        if query.until:
            clauses.append("SubmittedAt le @until")
            parameters["until"] = query.until  # type: ignore[assignment]
        token = _decode_token(query.continuation)
        wanted = dict(query.labels)
        ids: list[str] = []
        with translated("list jobs"):
            low, high = layout.prefix_range(layout.LISTED_OLDEST if query.oldest_first else layout.LISTED_NEWEST)
            pages = self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and " + " and ".join(clauses),
                parameters={"pk": layout.JOBS, "low": low, "high": high, **parameters},
                results_per_page=min(max(query.limit, 1), 1000),
            ).by_page(continuation_token=token)
            for entity in next(pages, []):
                labels = json.loads(str(entity.get("Labels") or "{}"))
                if query.teams is not None and labels.get(TEAM_LABEL) not in query.teams:
                    continue
                if all(labels.get(k) == v for k, v in wanted.items()):
                    ids.append(str(entity["JobId"]))
            next_token = pages.continuation_token  # type: ignore[attr-defined]
        records = [found.value for job_id in ids if (found := self.get(job_id)) is not None]
        return records, _encode_token(next_token)


class TableQueueIndex:
    """The QueueIndex port: the ``queue|`` rows (``teamq|{team}|`` for a team's), in key order (rank, submission
    time, id)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def queued(self, limit: int, team: str | None = None) -> list[QueueEntry]:
        prefix = layout.queue_prefix(team)
        return first(self._table, prefix, limit, layout.queue_entry_from, "read the queue index")

    def depth(self, limit: int, team: str | None = None) -> int:
        rows = first(self._table, layout.queue_prefix(team), limit, bool, "count the queue index", select=["RowKey"])
        return len(rows)

    def arrays(self, limit: int) -> list[str]:
        return first(self._table, "array|", limit, layout.job_id_from, "read the array index")


class TableIntents:
    """The Intents port: the ``intent|`` rows, oldest first."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def stale(self, before: dt.datetime, limit: int) -> list[Intent]:
        return first(
            self._table,
            "intent|",
            limit,
            layout.intent_from,
            "read the intents index",
            extra="RowKey lt @before",
            parameters={"before": layout.intent_before(before)},
        )


class TableDependencies:
    """The Dependencies port: the ``wait|{job}|`` rows of one job's waiters, and the ``release|`` rows."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def waiters(self, job_id: str, limit: int) -> list[str]:
        return first(self._table, f"wait|{job_id}|", limit, layout.job_id_from, f"read the waiters of {job_id}")

    def released(self, limit: int) -> list[str]:
        return first(self._table, "release|", limit, layout.job_id_from, "read the release rows")


class TableOutbox:
    """The Outbox port: the ``outbox|`` rows, oldest first; a published event's row is deleted."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def pending(self, limit: int) -> list[CloudEvent]:
        return first(self._table, "outbox|", limit, layout.event_from, "read the outbox")

    def clear(self, event: CloudEvent) -> None:
        with translated(f"clear event {event.id}"):
            self._table.delete_entity(layout.JOBS, layout.outbox_row(event))


class TableRetention:
    """The Retention port: the ``done|`` rows by end time, and the deletion of one job's rows."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def expired(self, before: dt.datetime, limit: int) -> list[Expired]:
        return first(
            self._table,
            "done|",
            limit,
            lambda entity: Expired(str(entity["JobId"]), str(entity["RowKey"])),
            "read the retention index",
            extra="RowKey lt @before",
            parameters={"before": layout.done_before(before)},
        )

    def purge(self, job_id: str) -> None:
        with translated(f"purge job {job_id}"):
            found = list(
                _range(self._table, layout.job_prefix(job_id), select=["RowKey", "Kind", "JobId", "SubmittedAt"])
            )
            rows = [str(e["RowKey"]) for e in found]
            for entity in found:
                if entity.get("Kind") in ("record", "group"):  # its listing rows, derived from when it was submitted
                    for listed in layout.listed_rows(job_id, entity["SubmittedAt"]):
                        self._table.delete_entity(layout.JOBS, listed)
            for first in range(0, len(rows), 100):
                batch = [("delete", {"PartitionKey": layout.JOBS, "RowKey": row}) for row in rows[first : first + 100]]
                try:
                    self._table.submit_transaction(batch)
                except TableTransactionError:  # a row went meanwhile: delete the rest one by one
                    for _, row in batch:
                        self._table.delete_entity(row["PartitionKey"], row["RowKey"])
            self._table.delete_entity(layout.JOBS, layout.release_row(job_id))

    def forget(self, index_key: str) -> None:
        with translated(f"forget {index_key}"):
            self._table.delete_entity(layout.JOBS, index_key)

    def postpone(self, expired: Expired, until: dt.datetime) -> None:
        operations: list[Operation] = [
            ("upsert", layout.done_entity_at(until, expired.job_id), {"mode": UpdateMode.REPLACE}),
        ]
        if layout.done_row_at(until, expired.job_id) != expired.index_key:
            operations.append(("delete", {"PartitionKey": layout.JOBS, "RowKey": expired.index_key}))
        with translated(f"postpone the purge of {expired.job_id}"):
            try:
                self._table.submit_transaction(operations)
            except TableTransactionError as exc:
                if not (exc.index == 1 and exc.status_code == 404):
                    raise
                self._table.upsert_entity(operations[0][1], mode=UpdateMode.REPLACE)  # the old row was gone


def _encode_token(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, sort_keys=True).encode()).decode()


def _decode_token(token: str | None) -> Any:
    if not token:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise ValueError("the continuation token is not one this API issued") from None
    if not isinstance(decoded, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()):
        raise ValueError("the continuation token is not one this API issued")
    return decoded

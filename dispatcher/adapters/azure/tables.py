"""The job store on Azure Table Storage (``azure-data-tables``); Azurite locally.

One table holds everything, in these partitions:

| PartitionKey | RowKey | what |
| --- | --- | --- |
| ``{job id}`` | ``job`` | the job record as JSON in ``Record0..n``; ``Status``, ``SpecHash``, times as columns |
| ``{job id}`` | ``conflict:{hash}`` | a rejected conflicting submission of the same id |
| ``queue`` | ``{rank}:{submitted ms}:{job id}`` | the queue index: queued jobs in launch order, with each |
| | | job's demand (cores, memory, spot, region, pool, spread group) so the scheduler can pass over |
| | | a job that does not fit without reading its record |
| ``pool:{name}`` | ``state`` | the pool's group and core counts, creates and deletes per window, saturation; |
| | | its ETag guards admission |
| ``pool:{name}`` | ``res:{group}`` | one reservation per launched attempt: the reconciler's active set, with what |
| | | it needs without reading the record (timeout, start recorded, cancel asked) |
| ``done`` | ``{ended at}|{job id}`` | the retention index: terminal jobs, oldest first |

Admission reads the ``state`` row alone, then writes it (conditional on its ETag) and creates the ``res``
row in one entity group transaction, so concurrent admissions to a pool serialize and never over-commit;
a release deletes the ``res`` row and writes the counts back the same way. The scheduler
and reconciler read only the ``queue`` and ``pool:*`` partitions, whose size follows the active jobs,
never the history.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from dispatcher.domain.errors import CloudError
from dispatcher.domain.jobs import JobRecord
from dispatcher.domain.placement import Demand, PoolState, RateWindow, Reservation
from dispatcher.ports import AlreadyExists, Conflict, JobQuery, QueueEntry, Versioned
from dispatcher.settings import Pool

RECORD_ROW = "job"
QUEUE_PARTITION = "queue"
STATE_ROW = "state"
DONE_PARTITION = "done"
MAX_RACES = 8
CHUNK = 30_000  # characters per string property; Table storage allows 64 KiB (32K UTF-16 units)


def _pool_partition(pool: Pool) -> str:
    return f"pool:{pool.name}"


def _queue_row(record: JobRecord) -> str:
    millis = int(record.submitted_at.timestamp() * 1000)
    return f"{record.priority}:{millis:015d}:{record.id}"


def _done_row(record: JobRecord) -> str:
    return f"{record.updated_at.astimezone(dt.UTC).isoformat()}|{record.id}"


def _record_entity(record: JobRecord) -> dict[str, Any]:
    text = record.model_dump_json()
    entity: dict[str, Any] = {
        "PartitionKey": record.id,
        "RowKey": RECORD_ROW,
        "Status": record.status.value,
        "SpecHash": record.spec_hash,
        "SubmittedAt": record.submitted_at,
        "UpdatedAt": record.updated_at,
        "Chunks": (len(text) + CHUNK - 1) // CHUNK,
    }
    for i in range(0, len(text), CHUNK):
        entity[f"Record{i // CHUNK}"] = text[i : i + CHUNK]
    return entity


def record_from_entity(entity: TableEntity) -> JobRecord:
    """A job record from its table entity."""
    text = "".join(str(entity[f"Record{i}"]) for i in range(int(entity["Chunks"])))
    return JobRecord.model_validate_json(text)


def _etag(metadata: Any) -> str:
    return str(metadata["etag"])


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


class TableJobStore:
    """:class:`~dispatcher.ports.JobStore` on one Azure table."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def ensure_table(self) -> None:
        """Create the table if it does not exist yet."""
        try:
            self._table.create_table()
        except ResourceExistsError:
            return

    # Records.

    def _index_if_done(self, record: JobRecord) -> None:
        """List a terminal record in the retention index; written before the record, so none is missed."""
        if record.status.terminal:
            self._table.upsert_entity({"PartitionKey": DONE_PARTITION, "RowKey": _done_row(record), "JobId": record.id})

    def insert(self, record: JobRecord) -> Versioned[JobRecord]:
        self._index_if_done(record)
        try:
            metadata = self._table.create_entity(_record_entity(record))
        except ResourceExistsError:
            raise AlreadyExists(record.id) from None
        return Versioned(record, _etag(metadata))

    def get(self, job_id: str) -> Versioned[JobRecord] | None:
        try:
            entity = self._table.get_entity(job_id, RECORD_ROW)
        except ResourceNotFoundError:
            return None
        return Versioned(record_from_entity(entity), _etag(entity.metadata))

    def replace(self, record: JobRecord, etag: str) -> Versioned[JobRecord]:
        self._index_if_done(record)
        try:
            metadata = self._table.update_entity(
                _record_entity(record),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise Conflict(record.id) from None
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise Conflict(record.id) from None
            raise
        return Versioned(record, _etag(metadata))

    def insert_conflict(self, record: JobRecord) -> None:
        self._index_if_done(record)
        entity = _record_entity(record)
        entity["RowKey"] = f"conflict:{record.spec_hash[:32]}"
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    # The queue index.

    def enqueue(self, record: JobRecord, demand: Demand) -> None:
        self._table.upsert_entity(
            {
                "PartitionKey": QUEUE_PARTITION,
                "RowKey": _queue_row(record),
                "JobId": record.id,
                "Priority": record.priority,
                "SubmittedAt": record.submitted_at,
                "NotBefore": record.not_before.isoformat() if record.not_before else "",
                "Cores": float(demand.cores),
                "MemoryGb": float(demand.memory_gb),
                "Spot": demand.spot,
                "Region": demand.region or "",
                "Pool": demand.pool or "",
                "SpreadGroup": demand.spread_group or "",
            },
            mode=UpdateMode.REPLACE,
        )

    def dequeue(self, record: JobRecord) -> None:
        self._table.delete_entity(QUEUE_PARTITION, _queue_row(record))

    def queued(self, limit: int) -> list[QueueEntry]:
        entries: list[QueueEntry] = []
        query = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": QUEUE_PARTITION}, results_per_page=min(max(limit, 1), 1000)
        )
        for entity in query:
            not_before = str(entity.get("NotBefore") or "")
            entries.append(
                QueueEntry(
                    job_id=str(entity["JobId"]),
                    priority=int(entity["Priority"]),
                    submitted_at=entity["SubmittedAt"],
                    not_before=_parse_time(not_before) if not_before else None,
                    demand=_demand(entity),
                )
            )
            if len(entries) >= limit:
                break
        return entries

    # Pools.

    def pool_state(self, pool: Pool) -> PoolState:
        try:
            entity = self._table.get_entity(_pool_partition(pool), STATE_ROW)
        except ResourceNotFoundError:
            return PoolState(pool)
        if _first_layout(entity):
            return self.reservations(pool)[0]
        return _pool_state(pool, entity)

    def _read_pool(self, pool: Pool, group: str | None = None) -> tuple[PoolState, list[TableEntity]]:
        """The pool's state and the reservation rows its partition holds (only ``group``'s, if given).

        A state row in the first layout, which kept no counts, is counted from every reservation."""
        state, held, first_layout = PoolState(pool), [], False
        query = "PartitionKey eq @pk" + (" and ( RowKey eq @state or RowKey eq @row )" if group else "")
        parameters = {"pk": _pool_partition(pool), "state": STATE_ROW, "row": f"res:{group}"}
        for entity in self._table.query_entities(query, parameters=parameters):
            if entity["RowKey"] == STATE_ROW:
                state, first_layout = _pool_state(pool, entity), _first_layout(entity)
            else:
                held.append(entity)
        if first_layout:
            every = self._read_pool(pool)[1] if group else held
            reservations = [_reservation(e) for e in every]
            state = dataclasses.replace(
                state,
                groups=len(reservations),
                cores=sum(r.cores for r in reservations),
                spread=_spread(reservations),
            )
        return state, held

    def reservations(self, pool: Pool) -> tuple[PoolState, list[Reservation]]:
        state, held = self._read_pool(pool)
        return state, [_reservation(e) for e in held]

    def reserve(self, state: PoolState, reservation: Reservation, now: dt.datetime) -> PoolState | None:
        after = state.with_reservation(reservation, now)
        try:
            parts = self._table.submit_transaction(
                [_state_operation(after), ("create", _reservation_entity(state.pool, reservation))]
            )
        except TableTransactionError as exc:
            if exc.status_code in (409, 412):  # the state changed, or the group holds a reservation already
                return None
            raise CloudError(
                f"pool {state.pool.name}: the reservation was refused: {exc.message}", transient=False
            ) from exc
        return self._as_written(after, parts)

    def _as_written(self, after: PoolState, parts: Sequence[Mapping[str, Any]]) -> PoolState:
        """``after`` with the ETag its transaction returned (read again should none come back)."""
        etag = parts[0].get("etag") if parts else None
        return dataclasses.replace(after, etag=str(etag)) if etag else self.pool_state(after.pool)

    def release(
        self,
        pool: Pool,
        group: str,
        now: dt.datetime,
        *,
        deleted: bool = False,
        known: tuple[PoolState, Reservation] | None = None,
    ) -> PoolState | None:
        if known is not None:
            # Unchanged since the caller read it (its ETag), the state row says no reservation came or went
            # meanwhile, so the group's reservation row is as read: it is deleted unconditionally.
            state, held = known
            after = state.without_reservation(held, now, deleted=deleted)
            row = {"PartitionKey": _pool_partition(pool), "RowKey": f"res:{group}"}
            written = self._write_release(after, ("delete", row))
            if written is not None:
                return written
        for _ in range(MAX_RACES):
            state, found = self._read_pool(pool, group)
            if not found:
                return None
            entity = found[0]
            after = state.without_reservation(_reservation(entity), now, deleted=deleted)
            conditional = {"etag": _etag(entity.metadata), "match_condition": MatchConditions.IfNotModified}
            written = self._write_release(after, ("delete", entity, conditional))
            if written is not None:
                return written  # else another release or an admission changed the pool: re-read
        raise CloudError(
            f"pool {pool.name}: the state kept changing while {group} was released; a later run releases it",
            code="Conflict",
            transient=True,
        )

    def _write_release(self, after: PoolState, delete: tuple[Any, ...]) -> PoolState | None:
        """Write ``after`` and delete the reservation row in one transaction; ``None`` if either had changed."""
        try:
            parts = self._table.submit_transaction([_state_operation(after), delete])
        except TableTransactionError:
            return None
        return self._as_written(after, parts)

    def mark_reservation(
        self, pool: Pool, group: str, *, started: bool = False, cancel_requested: bool = False
    ) -> None:
        flags: dict[str, Any] = {}
        if started:
            flags["Started"] = True
        if cancel_requested:
            flags["CancelRequested"] = True
        if not flags:
            return
        try:
            self._table.update_entity(
                {"PartitionKey": _pool_partition(pool), "RowKey": f"res:{group}", **flags}, mode=UpdateMode.MERGE
            )
        except ResourceNotFoundError:
            return  # released already: nothing is left to mark

    def find_reservation(self, pools: Sequence[Pool], group: str) -> tuple[Pool, Reservation] | None:
        for pool in pools:
            try:
                entity = self._table.get_entity(_pool_partition(pool), f"res:{group}")
            except ResourceNotFoundError:
                continue
            return pool, _reservation(entity)
        return None

    def mark_saturated(self, pool: Pool, until: dt.datetime) -> None:
        self._table.upsert_entity(
            {"PartitionKey": _pool_partition(pool), "RowKey": STATE_ROW, "SaturatedUntil": until.isoformat()},
            mode=UpdateMode.MERGE,
        )

    # Retention.

    def expired(self, before: dt.datetime, limit: int) -> list[tuple[str, str]]:
        query = self._table.query_entities(
            "PartitionKey eq @pk and RowKey lt @before",
            parameters={"pk": DONE_PARTITION, "before": before.astimezone(dt.UTC).isoformat()},
            results_per_page=min(max(limit, 1), 1000),
        )
        found: list[tuple[str, str]] = []
        for entity in query:
            found.append((str(entity["JobId"]), str(entity["RowKey"])))
            if len(found) >= limit:
                break
        return found

    def purge(self, job_id: str) -> None:
        for entity in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": job_id}, select=["RowKey"]):
            self._table.delete_entity(job_id, str(entity["RowKey"]))

    def forget(self, index_key: str) -> None:
        self._table.delete_entity(DONE_PARTITION, index_key)

    # Listing, for people.

    def list_jobs(self, query: JobQuery) -> tuple[list[JobRecord], str | None]:
        clauses, parameters = ["RowKey eq @row"], {"row": RECORD_ROW}
        if query.status:
            clauses.append("Status eq @status")
            parameters["status"] = query.status
        if query.since:
            clauses.append("SubmittedAt ge @since")
            parameters["since"] = query.since  # type: ignore[assignment]
        if query.until:
            clauses.append("SubmittedAt le @until")
            parameters["until"] = query.until  # type: ignore[assignment]
        pages = self._table.query_entities(
            " and ".join(clauses), parameters=parameters, results_per_page=min(max(query.limit, 1), 1000)
        ).by_page(continuation_token=_decode_token(query.continuation))
        records: list[JobRecord] = []
        for entity in next(pages, []):
            record = record_from_entity(entity)
            if all(record.labels.get(k) == v for k, v in query.labels):
                records.append(record)
        return records, _encode_token(pages.continuation_token)  # type: ignore[attr-defined]


def _encode_token(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, sort_keys=True).encode()).decode()


def _decode_token(token: str | None) -> Any:
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise ValueError("the continuation token is not one this API issued") from None


def _demand(entity: TableEntity) -> Demand | None:
    if entity.get("Cores") is None:
        return None  # written before the index kept demands: the scheduler reads the record instead
    return Demand(
        cores=float(entity["Cores"]),
        memory_gb=float(entity["MemoryGb"]),
        spot=bool(entity.get("Spot")),
        region=str(entity.get("Region") or "") or None,
        pool=str(entity.get("Pool") or "") or None,
        spread_group=str(entity.get("SpreadGroup") or "") or None,
    )


def _reservation(entity: TableEntity) -> Reservation:
    timeout = entity.get("TimeoutSeconds")
    return Reservation(
        group=str(entity["RowKey"]).removeprefix("res:"),
        job_id=str(entity["JobId"]),
        attempt=int(entity["Attempt"]),
        cores=float(entity["Cores"]),
        created_at=entity["CreatedAt"],
        spread_group=str(entity.get("SpreadGroup") or "") or None,
        timeout_seconds=int(timeout) if timeout is not None else None,
        started=bool(entity.get("Started")),
        cancel_requested=bool(entity.get("CancelRequested")),
    )


def _reservation_entity(pool: Pool, reservation: Reservation) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": _pool_partition(pool),
        "RowKey": f"res:{reservation.group}",
        "JobId": reservation.job_id,
        "Attempt": reservation.attempt,
        "Cores": float(reservation.cores),
        "CreatedAt": reservation.created_at,
        "SpreadGroup": reservation.spread_group or "",
        "Started": reservation.started,
        "CancelRequested": reservation.cancel_requested,
    }
    if reservation.timeout_seconds is not None:
        entity["TimeoutSeconds"] = reservation.timeout_seconds
    return entity


def _first_layout(entity: TableEntity) -> bool:
    """Whether a pool's state row predates the counts it now carries."""
    return "Groups" not in entity


def _spread(held: Sequence[Reservation]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reservation in held:
        if reservation.spread_group:
            counts[reservation.spread_group] = counts.get(reservation.spread_group, 0) + 1
    return counts


def _window_json(window: RateWindow) -> str:
    return json.dumps({"recent": [round(t, 3) for t in window.recent], "buckets": [list(b) for b in window.buckets]})


def _window(text: Any) -> RateWindow:
    if not text:
        return RateWindow()
    data = json.loads(str(text))
    if isinstance(data, list):  # the first layout: one ISO time per create
        window = RateWindow()
        for moment in sorted(_parse_time(str(t)) for t in data):
            window = window.add(moment)
        return window
    return RateWindow(tuple(float(t) for t in data["recent"]), tuple((int(s), int(c)) for s, c in data["buckets"]))


def _pool_state(pool: Pool, entity: TableEntity) -> PoolState:
    until = str(entity.get("SaturatedUntil") or "")
    return PoolState(
        pool,
        groups=int(entity.get("Groups") or 0),
        cores=float(entity.get("Cores") or 0.0),
        spread={str(k): int(v) for k, v in json.loads(str(entity.get("Spread") or "{}")).items()},
        creates=_window(entity.get("Creates")),
        deletes=_window(entity.get("Deletes")),
        saturated_until=_parse_time(until) if until else None,
        etag=_etag(entity.metadata),
    )


def _state_operation(state: PoolState) -> tuple[Any, ...]:
    """The transaction operation that writes ``state``: a create for a new pool, else conditional on its ETag."""
    row = {
        "PartitionKey": _pool_partition(state.pool),
        "RowKey": STATE_ROW,
        "Groups": state.groups,
        "Cores": float(state.cores),
        "Spread": json.dumps(dict(state.spread), sort_keys=True),
        "Creates": _window_json(state.creates),
        "Deletes": _window_json(state.deletes),
        "SaturatedUntil": state.saturated_until.isoformat() if state.saturated_until else "",
    }
    if state.etag is None:
        return ("create", row)
    return (
        "update",
        row,
        {"mode": UpdateMode.REPLACE, "etag": state.etag, "match_condition": MatchConditions.IfNotModified},
    )

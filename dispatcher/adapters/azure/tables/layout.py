"""The job store's key layout on one Azure table, and the codecs between its entities and the domain's values.

Two partitions hold everything; a row's kind is the first part of its key, and ``|`` (which no record key, pool
name or group name may hold) separates the parts, so no job id and no rejected-submission key can ever name an
index row, and the rows of one job are exactly those under ``job|{key}|``:

| PartitionKey | RowKey | what |
| --- | --- | --- |
| ``jobs`` | ``job|{key}|record`` | the job record as JSON in ``Record0..n``; status, spec hash, times as columns |
| | | (kind ``group`` for an array job's group record, which job listings leave out) |
| ``jobs`` | ``job|{key}|conflict|{hash}`` | a rejected conflicting submission of the same id |
| ``jobs`` | ``queue|{rank}|{submitted ms}|{key}`` | the queue index: launchable queued jobs in launch order, |
| | | with each job's demand, so the scheduler passes over a job that does not fit without reading it |
| ``jobs`` | ``teamq|{team}|{rank}|{submitted ms}|{key}`` | the same for the jobs of a team: one queue per team, |
| | | whose heads fair share chooses among |
| ``jobs`` | ``done|{ended at}|{key}`` | the retention index: terminal jobs, oldest first |
| ``jobs`` | ``listn|{inverted submitted ms}|{key}``, ``listo|{submitted ms}|{key}`` | the listing indexes, newest |
| | | and oldest first, with each job's status and labels (group records are not listed) |
| ``jobs`` | ``intent|{since ms}|{key}`` | an intent left open: a claimed attempt not confirmed created, or inline |
| | | values not yet stored; the reconciler's sweep finds a writer that stopped |
| ``jobs`` | ``outbox|{event ms}|{event id}`` | an event written with its transition and not yet published |
| ``jobs`` | ``wait|{dependency}|{key}`` | the waits index: a waiting job, under each job it waits on |
| ``jobs`` | ``release|{key}`` | a job that ended with waiting dependants not yet decided |
| ``jobs`` | ``schedule|{name}`` | a schedule: its document and what it has fired, as JSON in ``Record0..n`` |
| ``ledger`` | ``pool|{name}|state`` | a pool's group and core counts, creates and deletes per window, saturation |
| ``ledger`` | ``pool|{name}|res|{group}`` | one reservation per attempt's group: the reconciler's active set |
| ``jobs`` | ``usage|job|{key}`` | an ended job's usage, written with its terminal record, until folded |
| ``jobs`` | ``usage|day|{yyyy-mm-dd}|{team}`` | a team's usage on a day, in total and by label pair |
| ``ledger`` | ``team|{name}|state`` | a team's group and core counts over every pool, written with its reservations |

Because a record, its queue entry, its intent, its waits, its release row, its retention entry and its events share
the ``jobs`` partition, one entity group transaction writes them together: the indexes and the outbox can never
disagree with the record; a schedule's row is there too, so its events go with it. The
ledger partition keeps every pool's state and reservations, so an admission (state and reservation, and later a
team's row) is one transaction too. Array jobs' task rows live under ``job|{key}|task|``, beside their job, and
their indexes are in :mod:`.tasks`.

Table storage serves at most about 2,000 entities per second from one partition; a dispatcher is bound far
below that by ACI's quotas (300 creates an hour per region by default).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from azure.data.tables import TableEntity

from dispatcher.domain.events import CloudEvent
from dispatcher.domain.jobs import Intent, IntentKind, JobRecord, QueueEntry
from dispatcher.domain.placement import Demand, PoolState, RateWindow, Reservation, TeamState
from dispatcher.domain.schedules import ScheduleRecord
from dispatcher.domain.usage import DayTotal, Usage, UsageEntry
from dispatcher.ports import Versioned
from dispatcher.settings import Pool

JOBS = "jobs"
LEDGER = "ledger"
LAYOUT = 2
"""The layout version every entity carries; a reader of another version refuses it instead of misreading it."""
CHUNK = 30_000
"""Characters per string property: Table storage allows 64 KiB, 32K UTF-16 code units."""
MAX_RECORD_CHARS = 450_000
"""An entity is at most 1 MiB, counted in UTF-16: a record's JSON stays well under it."""


def prefix_range(prefix: str) -> tuple[str, str]:
    """The RowKey range ``[low, high)`` of every key that starts with ``prefix``."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def record_row(job_id: str) -> str:
    return f"job|{job_id}|record"


def job_prefix(job_id: str) -> str:
    return f"job|{job_id}|"


def conflict_row(job_id: str, spec_hash: str) -> str:
    return f"job|{job_id}|conflict|{spec_hash[:32]}"


def queue_prefix(team: str | None) -> str:
    """Where a team's queue is: ``teamq|{team}|``; jobs of no team are in ``queue|``, as before there were teams."""
    return f"teamq|{team}|" if team is not None else "queue|"


def queue_row(entry: QueueEntry) -> str:
    millis = int(entry.submitted_at.timestamp() * 1000)
    return f"{queue_prefix(entry.team)}{entry.priority}|{millis:015d}|{entry.job_id}"


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def intent_row(intent: Intent) -> str:
    millis = int(intent.since.timestamp() * 1000)
    return f"intent|{millis:015d}|{intent.job_id}"


def intent_before(moment: dt.datetime) -> str:
    """The first intent key recorded at ``moment`` or later."""
    return f"intent|{int(moment.timestamp() * 1000):015d}"


def done_row(record: JobRecord) -> str:
    return done_row_at(record.updated_at, record.id)


def done_row_at(moment: dt.datetime, job_id: str) -> str:
    return f"done|{_instant(moment)}|{job_id}"


def done_before(moment: dt.datetime) -> str:
    """The first retention key of a job that ended at ``moment`` or later."""
    return f"done|{_instant(moment)}"


def wait_row(dependency: str, job_id: str) -> str:
    return f"wait|{dependency}|{job_id}"


def release_row(job_id: str) -> str:
    return f"release|{job_id}"


LISTED_NEWEST = "listn|"
LISTED_OLDEST = "listo|"
MILLIS_MAX = 10**15 - 1


def listed_rows(job_id: str, submitted_at: dt.datetime) -> tuple[str, str]:
    """A record's rows in the two listing indexes: newest first, and oldest first."""
    millis = int(submitted_at.timestamp() * 1000)
    return f"{LISTED_NEWEST}{MILLIS_MAX - millis:015d}|{job_id}", f"{LISTED_OLDEST}{millis:015d}|{job_id}"


def listed_entities(record: JobRecord) -> list[dict[str, Any]]:
    """The listing rows of a record: what a listing filters on, so it reads only the records it shows."""
    return [
        {
            "PartitionKey": JOBS,
            "RowKey": row,
            "Kind": "listed",
            "Layout": LAYOUT,
            "JobId": record.id,
            "Status": record.status.value,
            "SubmittedAt": record.submitted_at,
            "Labels": json.dumps(record.labels, sort_keys=True),
        }
        for row in listed_rows(record.id, record.submitted_at)
    ]


def schedule_row(name: str) -> str:
    return f"schedule|{name}"


def outbox_row(event: CloudEvent) -> str:
    millis = int(event.time.timestamp() * 1000)
    return f"outbox|{millis:015d}|{event.id}"


def pool_prefix(pool: Pool) -> str:
    return f"pool|{pool.name}|"


def state_row(pool: Pool) -> str:
    return f"pool|{pool.name}|state"


def reservation_row(pool: Pool, group: str) -> str:
    return f"pool|{pool.name}|res|{group}"


def team_row(team: str) -> str:
    return f"team|{team}|state"


# --- job rows -------------------------------------------------------------------------------------------------


def _chunks(text: str, prefix: str) -> dict[str, Any]:
    """``text`` cut into string properties ``{prefix}0..n`` that each fit Table storage's 64 KiB."""
    parts = {f"{prefix}{i // CHUNK}": text[i : i + CHUNK] for i in range(0, len(text), CHUNK)}
    return {"Chunks": len(parts), **parts}


def _joined(entity: TableEntity, prefix: str) -> str:
    return "".join(str(entity[f"{prefix}{i}"]) for i in range(int(entity["Chunks"])))


def record_entity(record: JobRecord, row: str | None = None) -> dict[str, Any]:
    """The entity of a record (or, under ``row``, of a conflict)."""
    text = record.model_dump_json(by_alias=True, exclude_defaults=True)
    return {
        "PartitionKey": JOBS,
        "RowKey": row or record_row(record.id),
        "Kind": ("record" if record.group_of is None else "group") if row is None else "conflict",
        "Layout": LAYOUT,
        "JobId": record.id,
        "Status": record.status.value,
        "SpecHash": record.spec_hash,
        "SubmittedAt": record.submitted_at,
        "UpdatedAt": record.updated_at,
        **_chunks(text, "Record"),
    }


def record_size(entity: dict[str, Any]) -> int:
    return sum(len(entity[f"Record{i}"]) for i in range(int(entity["Chunks"])))


def _check_layout(entity: TableEntity) -> None:
    if entity.get("Layout") != LAYOUT:
        raise ValueError(f"row {entity.get('RowKey')!r} has layout {entity.get('Layout')!r}, not {LAYOUT}")


def record_from(entity: TableEntity) -> JobRecord:
    _check_layout(entity)
    return JobRecord.model_validate_json(_joined(entity, "Record"))


def queue_entity(entry: QueueEntry) -> dict[str, Any]:
    demand = entry.demand
    return {
        "PartitionKey": JOBS,
        "RowKey": queue_row(entry),
        "Kind": "queue",
        "Layout": LAYOUT,
        "JobId": entry.job_id,
        "Priority": entry.priority,
        "SubmittedAt": entry.submitted_at,
        "NotBefore": entry.not_before.isoformat() if entry.not_before else "",
        "Cores": float(demand.cores),
        "MemoryGb": float(demand.memory_gb),
        "Spot": demand.spot,
        "Region": demand.region or "",
        "Pool": demand.pool or "",
        "SpreadGroup": demand.spread_group or "",
        "Team": entry.team or "",
    }


def queue_entry_from(entity: TableEntity) -> QueueEntry:
    _check_layout(entity)
    not_before = str(entity.get("NotBefore") or "")
    return QueueEntry(
        job_id=str(entity["JobId"]),
        priority=int(entity["Priority"]),
        submitted_at=entity["SubmittedAt"],
        not_before=dt.datetime.fromisoformat(not_before) if not_before else None,
        demand=Demand(
            cores=float(entity["Cores"]),
            memory_gb=float(entity["MemoryGb"]),
            spot=bool(entity.get("Spot")),
            region=str(entity.get("Region") or "") or None,
            pool=str(entity.get("Pool") or "") or None,
            spread_group=str(entity.get("SpreadGroup") or "") or None,
        ),
        team=str(entity.get("Team") or "") or None,
    )


def intent_entity(intent: Intent) -> dict[str, Any]:
    return {
        "PartitionKey": JOBS,
        "RowKey": intent_row(intent),
        "Kind": "intent",
        "Layout": LAYOUT,
        "JobId": intent.job_id,
        "Intent": intent.kind.value,
        "Since": intent.since,
    }


def intent_from(entity: TableEntity) -> Intent:
    _check_layout(entity)
    return Intent(str(entity["JobId"]), IntentKind(str(entity["Intent"])), entity["Since"])


def done_entity(record: JobRecord) -> dict[str, Any]:
    return done_entity_at(record.updated_at, record.id)


def done_entity_at(moment: dt.datetime, job_id: str) -> dict[str, Any]:
    return {
        "PartitionKey": JOBS,
        "RowKey": done_row_at(moment, job_id),
        "Kind": "done",
        "Layout": LAYOUT,
        "JobId": job_id,
    }


def outbox_entity(event: CloudEvent) -> dict[str, Any]:
    return {
        "PartitionKey": JOBS,
        "RowKey": outbox_row(event),
        "Kind": "outbox",
        "Layout": LAYOUT,
        "JobId": event.job_id,
        **_chunks(event.to_json(), "Event"),
    }


def event_from(entity: TableEntity) -> CloudEvent:
    _check_layout(entity)
    return CloudEvent.model_validate_json(_joined(entity, "Event"))


def wait_entity(dependency: str, job_id: str) -> dict[str, Any]:
    return {
        "PartitionKey": JOBS,
        "RowKey": wait_row(dependency, job_id),
        "Kind": "wait",
        "Layout": LAYOUT,
        "JobId": job_id,
    }


def release_entity(job_id: str) -> dict[str, Any]:
    return {"PartitionKey": JOBS, "RowKey": release_row(job_id), "Kind": "release", "Layout": LAYOUT, "JobId": job_id}


def job_id_from(entity: TableEntity) -> str:
    _check_layout(entity)
    return str(entity["JobId"])


def schedule_entity(record: ScheduleRecord) -> dict[str, Any]:
    text = record.model_dump_json(by_alias=True, exclude_defaults=True)
    return {
        "PartitionKey": JOBS,
        "RowKey": schedule_row(record.name),
        "Kind": "schedule",
        "Layout": LAYOUT,
        "UpdatedAt": record.updated_at,
        **_chunks(text, "Record"),
    }


def versioned_schedule(entity: TableEntity) -> Versioned[ScheduleRecord]:
    _check_layout(entity)
    return Versioned(ScheduleRecord.model_validate_json(_joined(entity, "Record")), str(entity.metadata["etag"]))


# --- ledger rows ----------------------------------------------------------------------------------------------


def reservation_entity(pool: Pool, reservation: Reservation) -> dict[str, Any]:
    return {
        "PartitionKey": LEDGER,
        "RowKey": reservation_row(pool, reservation.group),
        "Kind": "reservation",
        "Layout": LAYOUT,
        "JobId": reservation.job_id,
        "Attempt": reservation.attempt,
        "Cores": float(reservation.cores),
        "CreatedAt": reservation.created_at,
        "SpreadGroup": reservation.spread_group or "",
        "TimeoutSeconds": reservation.timeout_seconds,
        "Started": reservation.started,
        "CancelRequested": reservation.cancel_requested,
        "Team": reservation.team or "",
    }


def reservation_from(entity: TableEntity) -> Reservation:
    _check_layout(entity)
    return Reservation(
        group=str(entity["RowKey"]).rsplit("|", 1)[-1],
        job_id=str(entity["JobId"]),
        attempt=int(entity["Attempt"]),
        cores=float(entity["Cores"]),
        created_at=entity["CreatedAt"],
        timeout_seconds=int(entity["TimeoutSeconds"]),
        spread_group=str(entity.get("SpreadGroup") or "") or None,
        started=bool(entity.get("Started")),
        cancel_requested=bool(entity.get("CancelRequested")),
        team=str(entity.get("Team") or "") or None,
    )


def _window_json(window: RateWindow) -> str:
    return json.dumps({"recent": [round(t, 3) for t in window.recent], "buckets": [list(b) for b in window.buckets]})


def _window(text: Any) -> RateWindow:
    if not text:
        return RateWindow()
    data = json.loads(str(text))
    return RateWindow(tuple(float(t) for t in data["recent"]), tuple((int(s), int(c)) for s, c in data["buckets"]))


def state_entity(state: PoolState) -> dict[str, Any]:
    return {
        "PartitionKey": LEDGER,
        "RowKey": state_row(state.pool),
        "Kind": "pool",
        "Layout": LAYOUT,
        "Groups": state.groups,
        "Cores": float(state.cores),
        "Spread": json.dumps(dict(state.spread), sort_keys=True),
        "Creates": _window_json(state.creates),
        "Deletes": _window_json(state.deletes),
        "SaturatedUntil": state.saturated_until.isoformat() if state.saturated_until else "",
    }


def state_from(pool: Pool, entity: TableEntity) -> PoolState:
    _check_layout(entity)
    until = str(entity.get("SaturatedUntil") or "")
    return PoolState(
        pool,
        groups=int(entity.get("Groups") or 0),
        cores=float(entity.get("Cores") or 0.0),
        spread={str(k): int(v) for k, v in json.loads(str(entity.get("Spread") or "{}")).items()},
        creates=_window(entity.get("Creates")),
        deletes=_window(entity.get("Deletes")),
        saturated_until=dt.datetime.fromisoformat(until) if until else None,
        etag=str(entity.metadata["etag"]),
    )


def team_entity(state: TeamState) -> dict[str, Any]:
    return {
        "PartitionKey": LEDGER,
        "RowKey": team_row(state.team),
        "Kind": "team",
        "Layout": LAYOUT,
        "Groups": state.groups,
        "Cores": float(state.cores),
    }


def team_from(team: str, entity: TableEntity) -> TeamState:
    _check_layout(entity)
    return TeamState(
        team, int(entity.get("Groups") or 0), float(entity.get("Cores") or 0.0), str(entity.metadata["etag"])
    )


USAGE_PENDING = "usage|job|"
USAGE_DAYS = "usage|day|"


def _usage_columns(usage: Usage) -> dict[str, Any]:
    return {
        "Jobs": usage.jobs,
        "VcpuSeconds": float(usage.vcpu_seconds),
        "GbSeconds": float(usage.gb_seconds),
        "Cost": float(usage.cost),
    }


def _usage(entity: Mapping[str, Any]) -> Usage:
    return Usage(
        int(entity.get("Jobs") or 0),
        float(entity.get("VcpuSeconds") or 0.0),
        float(entity.get("GbSeconds") or 0.0),
        float(entity.get("Cost") or 0.0),
    )


def usage_pending_entity(entry: UsageEntry) -> dict[str, Any]:
    return {
        "PartitionKey": JOBS,
        "RowKey": f"{USAGE_PENDING}{entry.job_id}",
        "Kind": "usage",
        "Layout": LAYOUT,
        "JobId": entry.job_id,
        "Day": entry.day.isoformat(),
        "Team": entry.team,
        "Labels": json.dumps(dict(entry.labels), sort_keys=True),
        **_usage_columns(entry.usage),
    }


def usage_pending_from(entity: TableEntity) -> UsageEntry:
    _check_layout(entity)
    return UsageEntry(
        str(entity["JobId"]),
        dt.date.fromisoformat(str(entity["Day"])),
        str(entity["Team"]),
        json.loads(str(entity.get("Labels") or "{}")),
        _usage(entity),
    )


def usage_day_row(day: dt.date, team: str) -> str:
    return f"{USAGE_DAYS}{day.isoformat()}|{team}"


def usage_day_entity(total: DayTotal) -> dict[str, Any]:
    by_label = {pair: [u.jobs, u.vcpu_seconds, u.gb_seconds, u.cost] for pair, u in total.by_label.items()}
    return {
        "PartitionKey": JOBS,
        "RowKey": usage_day_row(total.day, total.team),
        "Kind": "usage-day",
        "Layout": LAYOUT,
        **_usage_columns(total.usage),
        **_chunks(json.dumps(by_label, sort_keys=True), "Labels"),
    }


def usage_day_from(entity: TableEntity) -> DayTotal:
    _check_layout(entity)
    _, _, day, team = str(entity["RowKey"]).split("|", 3)
    by_label = {
        pair: Usage(int(v[0]), float(v[1]), float(v[2]), float(v[3]))
        for pair, v in json.loads(_joined(entity, "Labels")).items()
    }
    return DayTotal(dt.date.fromisoformat(day), team, _usage(entity), by_label, str(entity.metadata["etag"]))

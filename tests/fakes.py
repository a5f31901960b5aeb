"""In-memory fakes of the dispatcher's ports, with state tests can inspect (``created``, ``deleted``, ...).

The contract suites in ``tests/contract/test_port_*.py`` run the same tests against these fakes and against the
Azure adapters over the devstack emulators, so the fakes cannot drift from the real behaviour. Each fake counts
its own reads, and takes the failures a test wants through ``fail_next`` (errors its next calls raise), so no
test monkeypatches a fake.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatcher.adapters.azure.mapping import build_container_group
from dispatcher.core.scheduling import order_key
from dispatcher.domain.errors import AlreadyExists, CloudError, Conflict, SecretNotFound
from dispatcher.domain.events import CloudEvent
from dispatcher.domain.jobs import (
    Intent,
    JobRecord,
    OutputSummary,
    QueueEntry,
    Status,
    array_active,
    group_rows,
    intent_of,
    queue_entry,
    to_release,
    waits_of,
)
from dispatcher.domain.observed import ContainerView, GroupSummary, GroupView
from dispatcher.domain.placement import PoolState, RegionUsage, Reservation, TeamState
from dispatcher.domain.schedules import ScheduleRecord
from dispatcher.domain.tasks import TaskRecord
from dispatcher.domain.usage import DayTotal, UsageEntry, usage_entry
from dispatcher.ports import CreateResult, Expired, GroupRequest, JobQuery, OutputEntry, OutputPage, Versioned
from dispatcher.service.services import Services
from dispatcher.settings import DispatcherSettings, Pool


class Faults:
    """Errors a fake's next calls raise, by method name: ``faults.add("publish", CloudError(...))``."""

    def __init__(self) -> None:
        self._next: dict[str, list[Exception]] = {}
        self._down: list[tuple[Callable[[], bool], Exception]] = []

    def add(self, method: str, *errors: Exception) -> None:
        self._next.setdefault(method, []).extend(errors)

    def down_while(self, active: Callable[[], bool], error: Exception | None = None) -> None:
        """Fail every call while ``active()`` holds: an outage, e.g. until a fake clock passes a moment."""
        self._down.append((active, error or outage()))

    def check(self, method: str) -> None:
        for active, error in self._down:
            if active():
                raise error
        pending = self._next.get(method)
        if pending:
            raise pending.pop(0)


def outage(what: str = "the service") -> CloudError:
    return CloudError(f"{what} is unreachable", status=503, transient=True)


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.current = start or dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
        self.slept: list[float] = []

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += dt.timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


class FakeJobData:
    """Records with their derived queue and retention indexes and the outbox, as one atomic store.

    Implements the JobRecords, QueueIndex, Intents, Outbox and Retention ports, as the Table adapter's classes do
    over one partition. ``reads`` counts reads by method, ``got`` lists the ids ``get`` read; ``faults`` fails the
    next calls of a method.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._etags = itertools.count(1)
        self.records: dict[str, tuple[JobRecord, str]] = {}
        self.conflicts: list[JobRecord] = []
        self.queue: dict[str, QueueEntry] = {}
        self.intents: dict[str, Intent] = {}
        self.done: dict[str, str] = {}
        self.waits: set[tuple[str, str]] = set()
        self.releases: set[str] = set()
        self.pending: dict[str, CloudEvent] = {}
        self.usage_pending: dict[str, UsageEntry] = {}
        self.usage_days: dict[tuple[dt.date, str], DayTotal] = {}
        self.task_rows: dict[tuple[str, int], TaskRecord] = {}
        self.reads: Counter[str] = Counter()
        self.got: list[str] = []
        self.faults = Faults()

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    def _pend(self, events: Sequence[CloudEvent]) -> None:
        for event in events:
            self.pending[f"{event.time.timestamp():020.3f}|{event.id}"] = event

    def _keep(self, old: JobRecord | None, new: JobRecord, events: Sequence[CloudEvent]) -> None:
        entry = queue_entry(new)
        if entry is None:
            self.queue.pop(new.id, None)
        else:
            self.queue[new.id] = entry
        intent = intent_of(new)
        if intent is None:
            self.intents.pop(new.id, None)
        else:
            self.intents[new.id] = intent
        if new.status.terminal and (old is None or not old.status.terminal):
            self.done[f"{new.updated_at.astimezone(dt.UTC).isoformat()}|{new.id}"] = new.id
            used = usage_entry(new)
            if used is not None:
                self.usage_pending[new.id] = used
        self.waits = {w for w in self.waits if w[1] != new.id} | {(d, new.id) for d in waits_of(new)}
        if to_release(new):
            self.releases.add(new.id)
        else:
            self.releases.discard(new.id)
        self._pend(events)

    # UsageLedger

    def pending_usage(self, limit: int) -> list[UsageEntry]:
        with self._lock:
            return [self.usage_pending[k] for k in sorted(self.usage_pending)][:limit]

    def day_total(self, day: dt.date, team: str) -> DayTotal:
        with self._lock:
            return self.usage_days.get((day, team)) or DayTotal(day, team)

    def fold(self, total: DayTotal, entries: Sequence[UsageEntry]) -> bool:
        with self._lock:
            current = self.usage_days.get((total.day, total.team))
            if (current.etag if current else None) != total.etag or any(
                e.job_id not in self.usage_pending for e in entries
            ):
                return False
            for e in entries:
                del self.usage_pending[e.job_id]
            folded = total.folded(entries)
            self.usage_days[(total.day, total.team)] = dataclasses.replace(folded, etag=self._etag())
            return True

    def totals(self, since: dt.date, until: dt.date) -> list[DayTotal]:
        with self._lock:
            return [t for (day, _), t in sorted(self.usage_days.items()) if since <= day <= until]

    # JobRecords

    def insert(self, record: JobRecord, events: Sequence[CloudEvent] = ()) -> Versioned[JobRecord]:
        with self._lock:
            self.faults.check("insert")
            if record.id in self.records:
                raise AlreadyExists(record.id)
            etag = self._etag()
            self.records[record.id] = (record, etag)
            self._keep(None, record, events)
            return Versioned(record, etag)

    def get(self, job_id: str) -> Versioned[JobRecord] | None:
        with self._lock:
            self.reads["get"] += 1
            self.got.append(job_id)
            self.faults.check("get")
            found = self.records.get(job_id)
            return Versioned(*found) if found else None

    def replace(
        self, old: Versioned[JobRecord], new: JobRecord, events: Sequence[CloudEvent] = ()
    ) -> Versioned[JobRecord]:
        with self._lock:
            self.faults.check("replace")
            current = self.records.get(new.id)
            if current is None or current[1] != old.etag:
                raise Conflict(new.id)
            etag = self._etag()
            self.records[new.id] = (new, etag)
            self._keep(current[0], new, events)
            return Versioned(new, etag)

    def add_conflict(self, record: JobRecord, events: Sequence[CloudEvent] = ()) -> None:
        with self._lock:
            self.faults.check("add_conflict")
            if all(c.spec_hash != record.spec_hash or c.id != record.id for c in self.conflicts):
                self.conflicts.append(record)
            self._pend(events)

    def list(self, query: JobQuery) -> tuple[list[JobRecord], str | None]:
        with self._lock:
            self.reads["list"] += 1
            records = sorted(
                (r for r, _ in self.records.values() if r.group_of is None),
                key=lambda r: (r.submitted_at, r.id),
                reverse=not query.oldest_first,
            )
        if query.continuation is not None and not query.continuation.isdigit():
            raise ValueError("the continuation token is not one this API issued")
        chosen = [
            r
            for r in records
            if (query.status is None or r.status.value == query.status)
            and (query.since is None or r.submitted_at >= query.since)
            and (query.until is None or r.submitted_at <= query.until)
            and all(r.labels.get(k) == v for k, v in query.labels)
            and (query.teams is None or r.labels.get("team") in query.teams)
        ]
        start = int(query.continuation or 0)
        more = start + query.limit < len(chosen)
        return chosen[start : start + query.limit], str(start + query.limit) if more else None

    def write_array(
        self,
        old: Versioned[JobRecord],
        new: JobRecord,
        *,
        groups: Sequence[tuple[Versioned[JobRecord] | None, JobRecord]] = (),
        tasks: Sequence[TaskRecord] = (),
        events: Sequence[CloudEvent] = (),
    ) -> Versioned[JobRecord]:
        with self._lock:
            self.faults.check("write_array")
            current = self.records.get(new.id)
            if current is None or current[1] != old.etag:
                raise Conflict(new.id)
            for before, group in groups:
                existing = self.records.get(group.id)
                if (before is None) != (existing is None) or (before and existing and existing[1] != before.etag):
                    raise Conflict(group.id)
            etag = self._etag()
            self.records[new.id] = (new, etag)
            self._keep(current[0], new, events)
            for before, group in groups:
                self.records[group.id] = (group, self._etag())
                self._keep(before.value if before else None, group, ())
            for task in tasks:
                self.task_rows[(task.job_id, task.index)] = task
            return Versioned(new, etag)

    def tasks(self, job_id: str, start: int, limit: int) -> list[TaskRecord]:
        with self._lock:
            self.reads["tasks"] += 1
            rows = sorted(
                (t for (j, i), t in self.task_rows.items() if j == job_id and i >= start), key=lambda t: t.index
            )
            return rows[:limit]

    def array_groups(self, job_id: str, *, ended: bool, limit: int) -> list[str]:
        with self._lock:
            self.reads["array_groups"] += 1
            self.faults.check("array_groups")
            found = sorted(r.id for r, _ in self.records.values() if r.group_of == job_id and group_rows(r)[ended])
            return found[:limit]

    # QueueIndex

    def depth(self, limit: int, team: str | None = None) -> int:
        with self._lock:
            self.reads["depth"] += 1
            self.faults.check("depth")
            return min(sum(1 for e in self.queue.values() if e.team == team), limit)

    def arrays(self, limit: int) -> list[str]:
        with self._lock:
            self.reads["arrays"] += 1
            self.faults.check("arrays")
            active = sorted(
                (r for r, _ in self.records.values() if array_active(r)), key=lambda r: (r.submitted_at, r.id)
            )
            return [r.id for r in active][:limit]

    def queued(self, limit: int, team: str | None = None) -> list[QueueEntry]:
        with self._lock:
            self.reads["queued"] += 1
            self.faults.check("queued")
            return sorted((e for e in self.queue.values() if e.team == team), key=order_key)[:limit]

    # Intents

    def stale(self, before: dt.datetime, limit: int) -> list[Intent]:
        with self._lock:
            self.reads["stale"] += 1
            self.faults.check("stale")
            found = sorted((i for i in self.intents.values() if i.since < before), key=lambda i: (i.since, i.job_id))
            return found[:limit]

    # Dependencies

    def waiters(self, job_id: str, limit: int) -> list[str]:
        with self._lock:
            self.reads["waiters"] += 1
            self.faults.check("waiters")
            return sorted(w for d, w in self.waits if d == job_id)[:limit]

    def released(self, limit: int) -> list[str]:
        with self._lock:
            self.reads["released"] += 1
            self.faults.check("released")
            return sorted(self.releases)[:limit]

    # Outbox

    def pending_events(self) -> list[CloudEvent]:
        return [self.pending[k] for k in sorted(self.pending)]

    def clear(self, event: CloudEvent) -> None:
        with self._lock:
            self.faults.check("clear")
            for key in [k for k, e in self.pending.items() if e.id == event.id and e.time == event.time]:
                del self.pending[key]

    # Retention

    def expired(self, before: dt.datetime, limit: int) -> list[Expired]:
        with self._lock:
            self.reads["expired"] += 1
            cutoff = before.astimezone(dt.UTC).isoformat()
            return [Expired(job_id, key) for key, job_id in sorted(self.done.items()) if key < cutoff][:limit]

    def purge(self, job_id: str) -> None:
        with self._lock:
            self.faults.check("purge")
            self.records.pop(job_id, None)
            self.task_rows = {k: t for k, t in self.task_rows.items() if k[0] != job_id}
            self.conflicts = [c for c in self.conflicts if c.id != job_id]
            self.releases.discard(job_id)

    def forget(self, index_key: str) -> None:
        with self._lock:
            self.done.pop(index_key, None)

    def postpone(self, expired: Expired, until: dt.datetime) -> None:
        with self._lock:
            self.faults.check("postpone")
            self.done.pop(expired.index_key, None)
            self.done[f"{until.astimezone(dt.UTC).isoformat()}|{expired.job_id}"] = expired.job_id

    # For assertions

    def status(self, job_id: str) -> Status:
        return self.records[job_id][0].status

    def record(self, job_id: str) -> JobRecord:
        return self.records[job_id][0]


@dataclass
class FakeUsage:
    """The UsageLedger port over the fake job data (whose writes record pending usage, as the table's do)."""

    data: FakeJobData

    def pending(self, limit: int) -> list[UsageEntry]:
        return self.data.pending_usage(limit)

    def day_total(self, day: dt.date, team: str) -> DayTotal:
        return self.data.day_total(day, team)

    def fold(self, total: DayTotal, entries: Sequence[UsageEntry]) -> bool:
        return self.data.fold(total, entries)

    def totals(self, since: dt.date, until: dt.date) -> list[DayTotal]:
        return self.data.totals(since, until)


class FakeSchedules:
    """The Schedules port over a :class:`FakeJobData`, whose outbox holds their events (as the table's partition
    does)."""

    def __init__(self, data: FakeJobData) -> None:
        self._data = data
        self.rows: dict[str, tuple[ScheduleRecord, str]] = {}
        self.faults = Faults()

    def get(self, name: str) -> Versioned[ScheduleRecord] | None:
        with self._data._lock:
            self.faults.check("get")
            found = self.rows.get(name)
            return Versioned(*found) if found else None

    def list(self, limit: int) -> list[Versioned[ScheduleRecord]]:
        with self._data._lock:
            self.faults.check("list")
            return [Versioned(*self.rows[n]) for n in sorted(self.rows)][:limit]

    def insert(self, record: ScheduleRecord, events: Sequence[CloudEvent] = ()) -> Versioned[ScheduleRecord]:
        with self._data._lock:
            self.faults.check("insert")
            if record.name in self.rows:
                raise AlreadyExists(record.name)
            etag = self._data._etag()
            self.rows[record.name] = (record, etag)
            self._data._pend(events)
            return Versioned(record, etag)

    def replace(
        self, old: Versioned[ScheduleRecord], new: ScheduleRecord, events: Sequence[CloudEvent] = ()
    ) -> Versioned[ScheduleRecord]:
        with self._data._lock:
            self.faults.check("replace")
            current = self.rows.get(new.name)
            if current is None or current[1] != old.etag:
                raise Conflict(new.name)
            etag = self._data._etag()
            self.rows[new.name] = (new, etag)
            self._data._pend(events)
            return Versioned(new, etag)

    def delete(self, old: Versioned[ScheduleRecord]) -> None:
        with self._data._lock:
            self.faults.check("delete")
            current = self.rows.get(old.value.name)
            if current is None or current[1] != old.etag:
                raise Conflict(old.value.name)
            del self.rows[old.value.name]


class FakeOutbox:
    """The Outbox view of a :class:`FakeJobData` (its ``pending`` method name is taken by the dict)."""

    def __init__(self, data: FakeJobData) -> None:
        self._data = data

    def pending(self, limit: int) -> list[CloudEvent]:
        with self._data._lock:
            self._data.reads["pending"] += 1
            self._data.faults.check("pending")
            return self._data.pending_events()[:limit]

    def clear(self, event: CloudEvent) -> None:
        self._data.clear(event)


class FakeLedger:
    """Pool states and reservations in dictionaries, with ETags as counters; ``reads`` counts reads by method."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._etags = itertools.count(1)
        self.held: dict[str, dict[str, Reservation]] = {}
        self.pools: dict[str, PoolState] = {}
        self.teams: dict[str, TeamState] = {}
        self.reads: Counter[str] = Counter()
        self.faults = Faults()

    def team_state(self, team: str) -> TeamState:
        with self._lock:
            self.reads["team"] += 1
            return self.teams.get(team) or TeamState(team)

    def _write_team(self, team: TeamState) -> None:
        self.teams[team.team] = dataclasses.replace(team, etag=f'W/"{next(self._etags)}"')

    def _state(self, pool: Pool) -> PoolState:
        state = self.pools.get(pool.name)
        return state if state is not None else PoolState(pool)

    def _write(self, state: PoolState) -> PoolState:
        written = self.pools[state.pool.name] = dataclasses.replace(state, etag=f'W/"{next(self._etags)}"')
        return written

    def state(self, pool: Pool) -> PoolState:
        with self._lock:
            self.reads["state"] += 1
            self.faults.check("state")
            return self._state(pool)

    def active(self, pool: Pool) -> tuple[PoolState, list[Reservation]]:
        with self._lock:
            self.reads["active"] += 1
            self.faults.check("active")
            return self._state(pool), list(self.held.get(pool.name, {}).values())

    def reserve(
        self, state: PoolState, reservation: Reservation, now: dt.datetime, team: TeamState | None = None
    ) -> PoolState | None:
        with self._lock:
            self.faults.check("reserve")
            held = self.held.setdefault(state.pool.name, {})
            if self._state(state.pool).etag != state.etag or reservation.group in held:
                return None
            if team is not None and (self.teams.get(team.team) or TeamState(team.team)).etag != team.etag:
                return None
            held[reservation.group] = reservation
            if team is not None:
                self._write_team(team.taking(reservation))
            return self._write(state.with_reservation(reservation, now))

    def release(
        self, state: PoolState, reservation: Reservation, now: dt.datetime, *, deleted: bool = False
    ) -> PoolState:
        with self._lock:  # ``state`` only spares a read, and this ledger reads nothing
            self.faults.check("release")
            found = self.held.get(state.pool.name, {}).pop(reservation.group, None)
            if found is None:
                return self._state(state.pool)
            if found.team is not None:
                self._write_team((self.teams.get(found.team) or TeamState(found.team)).giving_back(found))
            return self._write(self._state(state.pool).without_reservation(found, now, deleted=deleted))

    def mark(self, pool: Pool, group: str, *, started: bool = False, cancel_requested: bool = False) -> None:
        with self._lock:
            held = self.held.get(pool.name, {})
            found = held.get(group)
            if found is not None:
                held[group] = dataclasses.replace(
                    found, started=found.started or started, cancel_requested=found.cancel_requested or cancel_requested
                )

    def find(self, pool: Pool, group: str) -> Reservation | None:
        with self._lock:
            self.reads["find"] += 1
            return self.held.get(pool.name, {}).get(group)

    def saturate(self, pool: Pool, until: dt.datetime) -> None:
        with self._lock:
            self._write(dataclasses.replace(self._state(pool), saturated_until=until))


class FakeContainerGroups:
    """Container groups by (pool, name), built from each request by the real mapping; tests set instance views in
    ``views``. ``faults`` fails the next calls; ``gets``, ``puts``, ``stopped`` and ``deleted`` count calls."""

    def __init__(self, settings: DispatcherSettings) -> None:
        self.settings = settings
        self.created: dict[tuple[str, str], Any] = {}
        self.requests: dict[tuple[str, str], GroupRequest] = {}
        self.deleted: list[tuple[str, str]] = []
        self.stopped: list[tuple[str, str]] = []
        self.views: dict[tuple[str, str], GroupView] = {}
        self.log_text: dict[tuple[str, str, str], str] = {}
        self.log_times: dict[tuple[str, str, str], list[str]] = {}
        self.puts = 0
        self.gets = 0
        self.log_reads = 0
        self.got: list[str] = []
        self.faults = Faults()
        self.provisioning_state = "Succeeded"
        self.applied_then_failed = 0
        self.region: RegionUsage | None = None
        """What ``usage`` answers: set it for another workload in the region (``None``: ACI reports nothing)."""
        self.usage_reads = 0
        """The next creates are applied and then answered with a 503, as a lost response would be."""

    def create(self, pool: Pool, name: str, request: GroupRequest) -> CreateResult:
        self.puts += 1
        self.faults.check("create")
        group = build_container_group(request, self.settings)
        self.created[(pool.name, name)] = group
        self.requests[(pool.name, name)] = request
        if self.applied_then_failed:
            self.applied_then_failed -= 1
            raise CloudError(f"create {name}: the answer was lost", status=503, transient=True)
        return CreateResult(self.provisioning_state)

    def delete(self, pool: Pool, name: str) -> None:
        self.faults.check("delete")
        if self.created.pop((pool.name, name), None) is not None:
            self.deleted.append((pool.name, name))

    def list(self, pool: Pool) -> dict[str, GroupSummary]:
        self.faults.check("list")
        return {
            name: GroupSummary(name, self.provisioning_state, dict(group.tags or {}))
            for (pool_name, name), group in self.created.items()
            if pool_name == pool.name
        }

    def get(self, pool: Pool, name: str) -> GroupView | None:
        self.gets += 1
        self.got.append(name)
        self.faults.check("get")
        group = self.created.get((pool.name, name))
        if group is None:
            return None
        default = GroupView(
            name,
            self.provisioning_state,
            "Running",
            dict(group.tags or {}),
            tuple(ContainerView(c.name, "Running", start_time=None) for c in group.containers),
        )
        return self.views.get((pool.name, name), default)

    def usage(self, pool: Pool) -> RegionUsage | None:
        self.faults.check("usage")
        self.usage_reads += 1
        return self.region

    def stop(self, pool: Pool, name: str) -> None:
        self.faults.check("stop")
        if (pool.name, name) in self.created:
            self.stopped.append((pool.name, name))

    def logs(self, pool: Pool, name: str, container: str, tail: int | None = None, *, timestamps: bool = False) -> str:
        """``log_text`` of the container; with ``timestamps``, each line stamped with the time ``log_times`` gives it
        (by default a nanosecond apart from 2026-01-01, in line order), as ACI stamps them."""
        self.log_reads += 1
        self.faults.check("logs")
        key = (pool.name, name, container)
        lines = self.log_text.get(key, "").splitlines(keepends=True)
        times = self.log_times.get(key) or [f"2026-01-01T00:00:00.{n + 1:09d}Z" for n in range(len(lines))]
        stamped = [f"{at} {line}" if timestamps else line for at, line in zip(times, lines, strict=True)]
        if tail is not None:
            stamped = stamped[max(len(stamped) - tail, 0) :] if tail > 0 else []
        return "".join(stamped)

    def finish(self, pool: Pool, name: str, *exit_codes: int, at: dt.datetime) -> None:
        """Make the group's containers terminate with ``exit_codes``, as ACI would report it."""
        group = self.created[(pool.name, name)]
        containers = tuple(
            ContainerView(c.name, "Terminated", code, start_time=at, finish_time=at)
            for c, code in zip(group.containers, exit_codes, strict=True)
        )
        state = "Succeeded" if all(code == 0 for code in exit_codes) else "Failed"
        self.views[(pool.name, name)] = GroupView(name, "Succeeded", state, dict(group.tags or {}), containers)

    def environment(self, pool: Pool, name: str, container: str = "main") -> dict[str, str]:
        """What a container of a created group sees in its environment, secure values included."""
        group = self.created[(pool.name, name)]
        found = next(c for c in group.containers if c.name == container)
        return {v.name: v.value if v.value is not None else v.secure_value for v in found.environment_variables or []}


class FakeSecrets:
    """One vault: versions per name, soft-deleted names that cannot be reused; ``reads`` counts lookups.

    ``stall`` runs at every read, so a test can let time pass inside a launch (a slow vault).
    """

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.stall: Callable[[], None] | None = None
        self.versions: dict[str, list[tuple[str, str]]] = {}
        self.deleted: set[str] = set()
        self.tags: dict[str, dict[str, str]] = {}
        self.reads = 0
        self.faults = Faults()
        for name, value in (values or {}).items():
            self.versions[name] = [("v0", value)]

    def get(self, key: str) -> str:
        self.reads += 1
        if self.stall is not None:
            self.stall()
        self.faults.check("get")
        name, _, version = key.partition("/")
        versions = self.versions.get(name, [])
        chosen = (
            next((v for v in versions if v[0] == version), None) if version else (versions[-1] if versions else None)
        )
        if chosen is None:
            raise SecretNotFound(key)
        return chosen[1]

    def set(self, name: str, value: str, *, tags: Mapping[str, str]) -> str:
        self.faults.check("set")
        if name in self.deleted:
            raise CloudError(f"write secret {name!r}: Conflict: deleted but recoverable", status=409, transient=False)
        version = uuid.uuid4().hex
        self.versions.setdefault(name, []).append((version, value))
        self.tags[name] = dict(tags)
        return version

    def delete(self, name: str) -> None:
        self.faults.check("delete")
        if self.versions.pop(name, None) is not None:
            self.deleted.add(name)

    def values(self) -> list[str]:
        return [value for versions in self.versions.values() for _, value in versions]


class FakeShares:
    """Shares by name, each a map of file path to bytes; ``page`` lists one folder as Azure Files does."""

    def __init__(self) -> None:
        self.shares: dict[str, dict[str, bytes]] = {}
        self.folders: set[tuple[str, str]] = set()
        self.faults = Faults()

    def ensure(self, share: str) -> None:
        self.faults.check("ensure")
        self.shares.setdefault(share, {})

    def ensure_folder(self, share: str, path: str) -> None:
        self.faults.check("ensure_folder")
        if share not in self.shares:
            raise CloudError(f"no share {share!r}", code="ShareNotFound", status=404, transient=False)
        self.folders.add((share, path))

    def delete(self, share: str) -> None:
        self.shares.pop(share, None)

    def read(self, share: str, path: str) -> bytes | None:
        return self.shares.get(share, {}).get(path)

    def put(self, share: str, path: str, data: bytes = b"") -> None:
        self.shares.setdefault(share, {})[path] = data

    def _children(self, share: str, folder: str) -> list[OutputEntry] | None:
        files = self.shares.get(share)
        if files is None:
            return None
        prefix = f"{folder}/" if folder else ""
        children: dict[str, OutputEntry] = {}
        for path, data in files.items():
            if not path.startswith(prefix):
                continue
            head, sep, _ = path[len(prefix) :].partition("/")
            children[head] = OutputEntry(head, True) if sep else OutputEntry(head, False, len(data))
        if folder and not children:
            return None
        return [children[name] for name in sorted(children)]

    def page(self, share: str, folder: str, continuation: str | None, limit: int) -> OutputPage:
        children = self._children(share, folder)
        if children is None:
            raise CloudError(f"no folder {folder!r}", code="ResourceNotFound", status=404, transient=False)
        start = int(continuation or 0)
        more = start + limit < len(children)
        return OutputPage(children[start : start + limit], str(start + limit) if more else None)

    def summary(self, share: str, limit: int) -> OutputSummary:
        files = sorted(self.shares.get(share, {}).items())
        counted = files[:limit]
        return OutputSummary(
            files=len(counted),
            bytes=sum(len(d) for _, d in counted),
            first=[p for p, _ in counted[:100]],
            complete=len(files) <= limit,
        )


@dataclass
class FakeLogStore:
    """Harvested logs by path."""

    blobs: dict[str, str] = field(default_factory=dict)

    def put(self, path: str, text: str) -> str:
        self.blobs.setdefault(path, text)
        return f"job-logs/{path}"

    def get(self, path: str) -> str | None:
        return self.blobs.get(path)

    def delete_job(self, job_id: str) -> None:
        self.blobs = {path: text for path, text in self.blobs.items() if not path.startswith(f"{job_id}/")}


class FakeEvents:
    """Published events, in order; ``faults`` fails the next publishes."""

    def __init__(self) -> None:
        self.published: list[CloudEvent] = []
        self.faults = Faults()

    def publish(self, event: CloudEvent) -> None:
        self.faults.check("publish")
        self.published.append(event)

    def types(self) -> list[str]:
        return [e.kind for e in self.published]


@dataclass
class FakeWaker:
    """The reconciler runs asked for, in order; ``faults`` fails the next requests."""

    times: list[dt.datetime] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)

    def wake_at(self, when: dt.datetime) -> None:
        self.faults.check("wake_at")
        self.times.append(when)


@dataclass
class FakeJobQueue:
    """Sent messages, in order; ``down`` makes sends and probes fail."""

    sent: list[tuple[bytes, str, str]] = field(default_factory=list)
    properties: list[dict[str, str]] = field(default_factory=list)
    """The application properties of each message sent, in the same order."""
    dead_letters: int = 0
    down: bool = False

    def send(
        self, body: bytes, message_id: str, content_type: str, properties: Mapping[str, str] | None = None
    ) -> None:
        if self.down:
            raise CloudError("Service Bus is unreachable", transient=True)
        self.sent.append((body, message_id, content_type))
        self.properties.append(dict(properties or {}))

    def probe(self) -> None:
        if self.down:
            raise CloudError("Service Bus is unreachable", transient=True)

    def dead_letter_count(self, limit: int) -> int:
        self.probe()
        return min(self.dead_letters, limit)


POOL = Pool(
    name="p1", subscription_id="sub", resource_group="rg-jobs", location="westeurope", max_groups=2, max_cores=4
)


@dataclass
class World:
    """Services over fakes, with each fake at hand for assertions."""

    services: Services
    store: FakeJobData
    ledger: FakeLedger
    groups: FakeContainerGroups
    secrets: FakeSecrets
    job_secrets: FakeSecrets
    shares: FakeShares
    events: FakeEvents
    clock: FakeClock
    logs: FakeLogStore
    queue: FakeJobQueue

    @property
    def schedules(self) -> FakeSchedules:
        schedules = self.services.schedules
        assert isinstance(schedules, FakeSchedules)
        return schedules

    def record(self, job_id: str) -> JobRecord:
        return self.store.record(job_id)


def make_world(*pools: Pool, **settings: object) -> World:
    """A world of fakes. Each run reads every running group (``sweep_seconds`` as short as the interval) and does
    the upkeep (``upkeep_seconds`` 0) unless a test says otherwise: most tests change something and expect the
    next run, at any time, to act on it."""
    settings = {"sweep_seconds": 5, "reconcile_interval_seconds": 5, "upkeep_seconds": 0, **settings}
    config = DispatcherSettings(pools=list(pools or [POOL]), storage_account="acct", **settings)  # type: ignore[arg-type]
    store, ledger, groups, events, clock = (
        FakeJobData(),
        FakeLedger(),
        FakeContainerGroups(config),
        FakeEvents(),
        FakeClock(),
    )
    secrets = FakeSecrets({"storage-account-key": "key"})
    job_secrets = FakeSecrets({"api-token": "tok"})
    shares, logs, queue = FakeShares(), FakeLogStore(), FakeJobQueue()
    services = Services(
        settings=config,
        records=store,
        queue=store,
        intents=store,
        outbox=FakeOutbox(store),
        retention=store,
        ledger=ledger,
        dependencies=store,
        schedules=FakeSchedules(store),
        groups=groups,
        secrets=secrets,
        job_secrets=job_secrets,
        shares=shares,
        events=events,
        logs=logs,
        jobs_queue=queue,
        clock=clock,
        usage=FakeUsage(store),
        waker=FakeWaker(),
    )
    return World(services, store, ledger, groups, secrets, job_secrets, shares, events, clock, logs, queue)

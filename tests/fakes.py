"""In-memory fakes of the dispatcher's ports, with state tests can inspect (``created``, ``deleted``, ...).

The contract suites in tests/contract run the same tests against these fakes and against the Azure
adapters over the devstack emulators, so the fakes cannot drift from the real behaviour.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatcher.domain.errors import CloudError, SecretNotFound
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.observed import ContainerView, GroupSummary, GroupView
from dispatcher.domain.placement import Demand, PoolState, Reservation
from dispatcher.ports import AlreadyExists, Conflict, CreateResult, JobQuery, QueueEntry, Versioned
from dispatcher.service.services import Services
from dispatcher.settings import DispatcherSettings, Pool


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.current = start or dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += dt.timedelta(seconds=seconds)


class FakeJobStore:
    """Records, queue index and pool reservations in dictionaries, with ETags as counters."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._etags = itertools.count(1)
        self.records: dict[str, tuple[JobRecord, str]] = {}
        self.conflicts: list[JobRecord] = []
        self.queue: dict[str, QueueEntry] = {}
        self.held: dict[str, dict[str, Reservation]] = {}
        self.pools: dict[str, PoolState] = {}
        self.done: dict[str, str] = {}

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    def _index_if_done(self, record: JobRecord) -> None:
        if record.status.terminal:
            self.done[f"{record.updated_at.astimezone(dt.UTC).isoformat()}|{record.id}"] = record.id

    def insert(self, record: JobRecord) -> Versioned[JobRecord]:
        with self._lock:
            self._index_if_done(record)
            if record.id in self.records:
                raise AlreadyExists(record.id)
            etag = self._etag()
            self.records[record.id] = (record, etag)
            return Versioned(record, etag)

    def get(self, job_id: str) -> Versioned[JobRecord] | None:
        with self._lock:
            found = self.records.get(job_id)
            return Versioned(*found) if found else None

    def replace(self, record: JobRecord, etag: str) -> Versioned[JobRecord]:
        with self._lock:
            self._index_if_done(record)
            current = self.records.get(record.id)
            if current is None or current[1] != etag:
                raise Conflict(record.id)
            new = self._etag()
            self.records[record.id] = (record, new)
            return Versioned(record, new)

    def insert_conflict(self, record: JobRecord) -> None:
        with self._lock:
            self._index_if_done(record)
            if all(c.spec_hash != record.spec_hash or c.id != record.id for c in self.conflicts):
                self.conflicts.append(record)

    def enqueue(self, record: JobRecord, demand: Demand) -> None:
        with self._lock:
            self.queue[record.id] = QueueEntry(
                record.id, record.priority, record.submitted_at, record.not_before, demand
            )

    def dequeue(self, record: JobRecord) -> None:
        with self._lock:
            self.queue.pop(record.id, None)

    def queued(self, limit: int) -> list[QueueEntry]:
        with self._lock:
            ordered = sorted(self.queue.values(), key=lambda e: (e.priority, e.submitted_at, e.job_id))
            return ordered[:limit]

    def _state(self, pool: Pool) -> PoolState:
        with self._lock:
            state = self.pools.get(pool.name)
            return state if state is not None else PoolState(pool)

    def pool_state(self, pool: Pool) -> PoolState:
        return self._state(pool)

    def reservations(self, pool: Pool) -> tuple[PoolState, list[Reservation]]:
        with self._lock:
            return self._state(pool), list(self.held.get(pool.name, {}).values())

    def _write_state(self, state: PoolState) -> PoolState:
        written = self.pools[state.pool.name] = dataclasses.replace(state, etag=self._etag())
        return written

    def reserve(self, state: PoolState, reservation: Reservation, now: dt.datetime) -> PoolState | None:
        with self._lock:
            held = self.held.setdefault(state.pool.name, {})
            if self._state(state.pool).etag != state.etag or reservation.group in held:
                return None
            held[reservation.group] = reservation
            return self._write_state(state.with_reservation(reservation, now))

    def release(
        self,
        pool: Pool,
        group: str,
        now: dt.datetime,
        *,
        deleted: bool = False,
        known: tuple[PoolState, Reservation] | None = None,
    ) -> PoolState | None:
        with self._lock:  # ``known`` only spares a read, and this store reads nothing
            found = self.held.get(pool.name, {}).pop(group, None)
            if found is None:
                return None
            return self._write_state(self._state(pool).without_reservation(found, now, deleted=deleted))

    def mark_reservation(
        self, pool: Pool, group: str, *, started: bool = False, cancel_requested: bool = False
    ) -> None:
        with self._lock:
            held = self.held.get(pool.name, {})
            found = held.get(group)
            if found is not None:
                held[group] = dataclasses.replace(
                    found, started=found.started or started, cancel_requested=found.cancel_requested or cancel_requested
                )

    def find_reservation(self, pools: Sequence[Pool], group: str) -> tuple[Pool, Reservation] | None:
        with self._lock:
            for pool in pools:
                found = self.held.get(pool.name, {}).get(group)
                if found is not None:
                    return pool, found
            return None

    def mark_saturated(self, pool: Pool, until: dt.datetime) -> None:
        with self._lock:
            self._write_state(dataclasses.replace(self._state(pool), saturated_until=until))

    def expired(self, before: dt.datetime, limit: int) -> list[tuple[str, str]]:
        with self._lock:
            cutoff = before.astimezone(dt.UTC).isoformat()
            return [(job_id, key) for key, job_id in sorted(self.done.items()) if key < cutoff][:limit]

    def purge(self, job_id: str) -> None:
        with self._lock:
            self.records.pop(job_id, None)
            self.conflicts = [c for c in self.conflicts if c.id != job_id]

    def forget(self, index_key: str) -> None:
        with self._lock:
            self.done.pop(index_key, None)

    def list_jobs(self, query: JobQuery) -> tuple[list[JobRecord], str | None]:
        with self._lock:
            records = sorted((r for r, _ in self.records.values()), key=lambda r: r.id)
        chosen = [
            r
            for r in records
            if (query.status is None or r.status.value == query.status)
            and (query.since is None or r.submitted_at >= query.since)
            and (query.until is None or r.submitted_at <= query.until)
            and all(r.labels.get(k) == v for k, v in query.labels)
        ]
        start = int(query.continuation or 0)
        page = chosen[start : start + query.limit]
        more = start + query.limit < len(chosen)
        return page, str(start + query.limit) if more else None

    def status(self, job_id: str) -> Status:
        return self.records[job_id][0].status


@dataclass
class FakeContainerGroups:
    """Container groups by (pool, name), whose instance views tests set in ``views``.

    ``fail_next`` makes the next creates raise the given errors; ``gets`` and ``stopped`` count reads and stops.
    """

    created: dict[tuple[str, str], Any] = field(default_factory=dict)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    views: dict[tuple[str, str], GroupView] = field(default_factory=dict)
    log_text: dict[tuple[str, str, str], str] = field(default_factory=dict)
    puts: int = 0
    gets: int = 0
    fail_next: list[CloudError] = field(default_factory=list)
    provisioning_state: str = "Succeeded"

    def create(self, pool: Pool, name: str, group: Any) -> CreateResult:
        self.puts += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.created[(pool.name, name)] = group
        return CreateResult(self.provisioning_state)

    def delete(self, pool: Pool, name: str) -> None:
        if self.created.pop((pool.name, name), None) is not None:
            self.deleted.append((pool.name, name))

    def list(self, pool: Pool) -> dict[str, GroupSummary]:
        return {
            name: GroupSummary(name, self.provisioning_state, dict(group.tags or {}))
            for (pool_name, name), group in self.created.items()
            if pool_name == pool.name
        }

    def get(self, pool: Pool, name: str) -> GroupView | None:
        self.gets += 1
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

    def stop(self, pool: Pool, name: str) -> None:
        if (pool.name, name) in self.created:
            self.stopped.append((pool.name, name))

    def logs(self, pool: Pool, name: str, container: str, tail: int | None = None) -> str:
        return self.log_text.get((pool.name, name, container), "")

    def finish(self, pool: Pool, name: str, *exit_codes: int, at: dt.datetime) -> None:
        """Make the group's containers terminate with ``exit_codes``, as ACI would report it."""
        group = self.created[(pool.name, name)]
        containers = tuple(
            ContainerView(c.name, "Terminated", code, start_time=at, finish_time=at)
            for c, code in zip(group.containers, exit_codes, strict=True)
        )
        state = "Succeeded" if all(code == 0 for code in exit_codes) else "Failed"
        self.views[(pool.name, name)] = GroupView(name, "Succeeded", state, dict(group.tags or {}), containers)


@dataclass
class FakeSecrets:
    """Secrets from a dictionary; ``reads`` counts lookups."""

    values: dict[str, str] = field(default_factory=dict)
    reads: int = 0

    def get(self, key: str) -> str:
        self.reads += 1
        try:
            return self.values[key]
        except KeyError:
            raise SecretNotFound(key) from None


@dataclass
class FakeShares:
    """Shares by name, with the files in each."""

    shares: dict[str, list[str]] = field(default_factory=dict)

    def ensure(self, share: str) -> None:
        self.shares.setdefault(share, [])

    def files(self, share: str) -> list[str]:
        return sorted(self.shares.get(share, []))

    def delete(self, share: str) -> None:
        self.shares.pop(share, None)

    def read(self, share: str, path: str) -> bytes | None:
        return f"content of {path}".encode() if path in self.shares.get(share, []) else None


@dataclass
class FakeLogStore:
    """Harvested logs by path."""

    blobs: dict[str, str] = field(default_factory=dict)

    def put(self, path: str, text: str) -> str:
        self.blobs[path] = text
        return f"job-logs/{path}"

    def get(self, path: str) -> str | None:
        return self.blobs.get(path)

    def delete_job(self, job_id: str) -> None:
        self.blobs = {path: text for path, text in self.blobs.items() if not path.startswith(f"{job_id}/")}


@dataclass
class FakeEvents:
    """Published events, in order."""

    published: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, event: dict[str, Any]) -> None:
        self.published.append(event)

    def types(self) -> list[str]:
        return [e["type"].rsplit(".", 1)[-1] for e in self.published]


@dataclass
class FakeJobQueue:
    """Sent submissions, in order; ``down`` makes sends and probes fail."""

    sent: list[tuple[bytes, str, str]] = field(default_factory=list)
    down: bool = False

    def send(self, body: bytes, message_id: str, content_type: str) -> None:
        if self.down:
            raise ConnectionError("Service Bus is unreachable")
        self.sent.append((body, message_id, content_type))

    def probe(self) -> None:
        if self.down:
            raise ConnectionError("Service Bus is unreachable")


POOL = Pool(
    name="p1", subscription_id="sub", resource_group="rg-jobs", location="westeurope", max_groups=2, max_cores=4
)


@dataclass
class World:
    """Services over fakes, with each fake at hand for assertions."""

    services: Services
    store: FakeJobStore
    groups: FakeContainerGroups
    secrets: FakeSecrets
    shares: FakeShares
    events: FakeEvents
    clock: FakeClock
    logs: FakeLogStore
    queue: FakeJobQueue


def make_world(*pools: Pool, **settings: object) -> World:
    store, groups, events, clock = FakeJobStore(), FakeContainerGroups(), FakeEvents(), FakeClock()
    secrets = FakeSecrets({"api-token": "tok", "storage-account-key": "key"})
    shares = FakeShares()
    config = DispatcherSettings(pools=list(pools or [POOL]), storage_account="acct", **settings)  # type: ignore[arg-type]
    logs, queue = FakeLogStore(), FakeJobQueue()
    services = Services(config, store, groups, secrets, shares, events, clock, logs, queue)
    return World(services, store, groups, secrets, shares, events, clock, logs, queue)

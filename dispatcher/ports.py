"""The narrow ports through which the core reaches the outside, one per outside system.

Each contract is in the docstring. The Azure adapters in ``dispatcher/azure/`` implement them with the
official SDKs; tests use inspectable in-memory fakes, and one contract suite runs against both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from dispatcher.domain.errors import DispatcherError
from dispatcher.domain.jobs import JobRecord
from dispatcher.domain.observed import GroupSummary, GroupView
from dispatcher.domain.placement import Demand, PoolState, Reservation
from dispatcher.settings import Pool

T = TypeVar("T")


class Conflict(DispatcherError):
    """Another writer changed the entity since it was read (an ETag mismatch); re-read and re-decide."""


class AlreadyExists(DispatcherError):
    """An entity that may be created only once already exists."""


@dataclass(frozen=True)
class Versioned(Generic[T]):
    """A value as read from the store, with the ETag a conditional write must present."""

    value: T
    etag: str


@dataclass(frozen=True)
class QueueEntry:
    """A queued job as the queue index lists it, in launch order."""

    job_id: str
    priority: int
    submitted_at: dt.datetime
    not_before: dt.datetime | None = None
    demand: Demand | None = None
    """What the job needs, so the scheduler can pass over a job that does not fit without reading its record
    (``None`` on entries written before the index kept it)."""


@dataclass(frozen=True)
class JobQuery:
    """A page of jobs: filters, page size, and the continuation token of the previous page."""

    status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    labels: tuple[tuple[str, str], ...] = ()
    limit: int = 50
    continuation: str | None = None


class JobStore(Protocol):
    """Job records, the queue index and pool reservations.

    - ``insert`` creates a record once; a second insert of the same id raises :class:`AlreadyExists`.
    - ``replace`` writes only if the record still has ``etag``; otherwise it raises :class:`Conflict`.
    - The queue index lists queued jobs by priority, then arrival, without scanning history; ``enqueue``
      keeps the job's demand in its entry.
    - ``pool_state`` is one read: the pool's counts, windows and ETag, not its reservations.
    - ``reservations`` reads the pool's state and every reservation it holds: the reconciler's active set.
    - ``reserve`` takes capacity in a pool atomically with its counters, conditional on the pool state's
      ETag, and returns the state it wrote, with its new ETag; ``None`` when another writer got there first
      (or the group holds a reservation already). It never over-commits.
    - ``release`` is idempotent: releasing a group twice frees its capacity once; ``deleted`` counts the
      delete of its group in the pool's delete windows. It returns the state it wrote, with its new ETag, or
      ``None`` when nothing was held. ``known`` is the pool's state and the group's reservation as the caller
      read them: the release then writes without reading, unless the state has changed since.
    - ``mark_reservation`` records on a held reservation that its start is recorded or a cancel was asked,
      so the reconciler reads the record only when it must; a released one is left alone.
    - A record written in a terminal status is also listed in a retention index; ``expired`` returns
      ``(job id, index key)`` pairs of jobs that ended before a time, oldest first, without scanning
      history. ``purge`` deletes everything stored under a job id; ``forget`` drops one index entry.
    - ``list_jobs`` pages through job records by status and submission time (for people, not for the
      scheduler); it returns the next page's continuation token, or ``None`` on the last page.
    """

    def insert(self, record: JobRecord) -> Versioned[JobRecord]: ...

    def get(self, job_id: str) -> Versioned[JobRecord] | None: ...

    def replace(self, record: JobRecord, etag: str) -> Versioned[JobRecord]: ...

    def insert_conflict(self, record: JobRecord) -> None: ...

    def enqueue(self, record: JobRecord, demand: Demand) -> None: ...

    def dequeue(self, record: JobRecord) -> None: ...

    def queued(self, limit: int) -> list[QueueEntry]: ...

    def pool_state(self, pool: Pool) -> PoolState: ...

    def reserve(self, state: PoolState, reservation: Reservation, now: dt.datetime) -> PoolState | None: ...

    def reservations(self, pool: Pool) -> tuple[PoolState, list[Reservation]]: ...

    def release(
        self,
        pool: Pool,
        group: str,
        now: dt.datetime,
        *,
        deleted: bool = False,
        known: tuple[PoolState, Reservation] | None = None,
    ) -> PoolState | None: ...

    def mark_reservation(
        self, pool: Pool, group: str, *, started: bool = False, cancel_requested: bool = False
    ) -> None: ...

    def find_reservation(self, pools: Sequence[Pool], group: str) -> tuple[Pool, Reservation] | None: ...

    def mark_saturated(self, pool: Pool, until: dt.datetime) -> None: ...

    def expired(self, before: dt.datetime, limit: int) -> list[tuple[str, str]]: ...

    def purge(self, job_id: str) -> None: ...

    def forget(self, index_key: str) -> None: ...

    def list_jobs(self, query: JobQuery) -> tuple[list[JobRecord], str | None]: ...


@dataclass(frozen=True)
class CreateResult:
    """What ARM said to a create: the provisioning state it reported."""

    provisioning_state: str


class ContainerGroups(Protocol):
    """ACI container groups in capacity pools.

    - ``create`` is idempotent for the same name (ARM PUT is create-or-update); it returns once ARM has
      accepted the request, without waiting for provisioning. It raises
      :class:`~dispatcher.domain.errors.CloudError` with ``code`` ``ContainerGroupQuotaReached`` when the quota
      is reached, ``transient=True`` for throttling and server errors that outlasted the retry budget, and
      ``transient=False`` for a request ACI rejects (400).
    - ``delete`` and ``stop`` are idempotent: an absent group is already deleted or stopped.
    - ``list`` is one paged call and carries no instance view; ``get`` does, and returns ``None`` when
      the group is absent. ``logs`` returns ``""`` for an absent group.
    """

    def create(self, pool: Pool, name: str, group: Any) -> CreateResult: ...

    def delete(self, pool: Pool, name: str) -> None: ...

    def list(self, pool: Pool) -> dict[str, GroupSummary]: ...

    def get(self, pool: Pool, name: str) -> GroupView | None: ...

    def stop(self, pool: Pool, name: str) -> None: ...

    def logs(self, pool: Pool, name: str, container: str, tail: int | None = None) -> str: ...


class LogStore(Protocol):
    """Harvested logs. ``put`` writes the full text under ``path`` (overwriting) and returns its reference;
    ``delete_job`` deletes every log of a job (paths start with ``{job id}/``); ``get`` reads one, or ``None``."""

    def put(self, path: str, text: str) -> str: ...

    def delete_job(self, job_id: str) -> None: ...

    def get(self, path: str) -> str | None: ...


class Secrets(Protocol):
    """The secret store. ``get`` returns a secret's value or raises :class:`~dispatcher.domain.errors.SecretNotFound`.

    ``key`` is ``name`` or ``name/version``. Values are never logged or kept.
    """

    def get(self, key: str) -> str: ...


class Shares(Protocol):
    """Azure Files shares. ``ensure`` creates a share if it does not exist yet, and is idempotent;
    ``files`` lists every file path in a share, ``[]`` when the share does not exist; ``delete`` removes a
    share and is idempotent; ``read`` returns a file's bytes, or ``None`` when it does not exist."""

    def ensure(self, share: str) -> None: ...

    def files(self, share: str) -> list[str]: ...

    def delete(self, share: str) -> None: ...

    def read(self, share: str, path: str) -> bytes | None: ...


class JobQueue(Protocol):
    """The jobs queue. ``send`` enqueues one submission; ``message_id`` is the job id, for duplicate detection.
    ``probe`` reads from the queue without taking anything, and raises if it cannot."""

    def send(self, body: bytes, message_id: str, content_type: str) -> None: ...

    def probe(self) -> None: ...


class Events(Protocol):
    """Lifecycle events. ``publish`` sends at least once; consumers deduplicate by the event id."""

    def publish(self, event: dict[str, Any]) -> None: ...


class Clock(Protocol):
    """The time. Tests move it by hand."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

"""The narrow ports through which the service layer reaches the outside, each shaped for the code that uses it.

Each contract is in the docstring. The Azure adapters in ``dispatcher/adapters/azure/`` implement them with
the official SDKs; tests use inspectable in-memory fakes (``tests/fakes.py``), and one contract suite per port
(``tests/contract/test_port_*.py``) runs against both. Every port raises only the dispatcher's own errors
(:mod:`dispatcher.domain.errors`): each adapter translates its SDK's exceptions in one place.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from dispatcher.domain.events import CloudEvent
from dispatcher.domain.jobs import Intent, JobRecord, OutputSummary, QueueEntry
from dispatcher.domain.observed import GroupSummary, GroupView
from dispatcher.domain.placement import PoolState, RegionUsage, Reservation, TeamState
from dispatcher.domain.schedules import ScheduleRecord
from dispatcher.domain.spec import JobSpec
from dispatcher.domain.tasks import TaskRecord
from dispatcher.domain.usage import DayTotal, UsageEntry
from dispatcher.settings import ContainerLogs, Pool

T = TypeVar("T")


@dataclass(frozen=True)
class Versioned(Generic[T]):
    """A value as read from the store, with the ETag a conditional write must present."""

    value: T
    etag: str


@dataclass(frozen=True)
class JobQuery:
    """A page of jobs: filters, page size, and the continuation token of the previous page."""

    status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    labels: tuple[tuple[str, str], ...] = ()
    limit: int = 50
    continuation: str | None = None
    oldest_first: bool = False
    """Newest first by default: both orders are indexes by submission time, not a sort of a page."""
    teams: tuple[str, ...] | None = None
    """Only jobs of these teams (their ``team`` label); ``None`` for every job (an admin's listing)."""


@dataclass(frozen=True)
class Expired:
    """A terminal job past retention, as the retention index lists it."""

    job_id: str
    index_key: str


class JobRecords(Protocol):
    """Job records: the one source of truth.

    Every write keeps, in the same atomic write as the record:

    - the record's queue index entry (:func:`~dispatcher.domain.jobs.queue_entry`), present exactly while the
      record is queued and launchable, so the index never disagrees with the record;
    - its open intent (:func:`~dispatcher.domain.jobs.intent_of`), present exactly while the record leaves one;
    - its retention index entry, from the write that makes it terminal on;
    - its rows in the waits index (:func:`~dispatcher.domain.jobs.waits_of`) while it waits, and its release row
      (:func:`~dispatcher.domain.jobs.to_release`) while it has ended with dependants not yet decided;
    - the ``events`` given, pending in the :class:`Outbox` until published.

    ``insert`` creates a record once (:class:`~dispatcher.domain.errors.AlreadyExists` the second time).
    ``replace`` writes ``new`` only if the record still has ``old``'s ETag, else raises
    :class:`~dispatcher.domain.errors.Conflict`. ``add_conflict`` keeps a rejected conflicting submission of an
    existing id beside its record, once per spec hash. ``list`` pages through records for people (never for
    the scheduler), newest first (or oldest first) by submission time, and returns the next page's continuation
    token, or ``None`` on the last page; a token it did not issue raises ``ValueError``.
    """

    def insert(self, record: JobRecord, events: Sequence[CloudEvent] = ()) -> Versioned[JobRecord]: ...

    def get(self, job_id: str) -> Versioned[JobRecord] | None: ...

    def replace(
        self, old: Versioned[JobRecord], new: JobRecord, events: Sequence[CloudEvent] = ()
    ) -> Versioned[JobRecord]: ...

    def add_conflict(self, record: JobRecord, events: Sequence[CloudEvent] = ()) -> None: ...

    def write_array(
        self,
        old: Versioned[JobRecord],
        new: JobRecord,
        *,
        groups: Sequence[tuple[Versioned[JobRecord] | None, JobRecord]] = (),
        tasks: Sequence[TaskRecord] = (),
        events: Sequence[CloudEvent] = (),
    ) -> Versioned[JobRecord]:
        """Write an array job's record over ``old`` with its groups' records (each inserted when its old version is
        ``None``, else replaced conditionally), its task rows and ``events``: atomically when they fit one transaction,
        else the task rows and events (idempotent) first. Conflict when any record changed or a new one exists."""
        ...

    def tasks(self, job_id: str, start: int, limit: int) -> list[TaskRecord]:
        """The task rows of an array job from index ``start`` on, in index order, at most ``limit``."""
        ...

    def array_groups(self, job_id: str, *, ended: bool, limit: int) -> list[str]:
        """The group records of an array job still waiting to be launched, or (``ended``) ended and not absorbed."""
        ...

    def list(self, query: JobQuery) -> tuple[list[JobRecord], str | None]: ...


class QueueIndex(Protocol):
    """The queue index, read by the scheduler: queued jobs of ``team`` (of no team when ``None``) in
    :func:`~dispatcher.core.scheduling.order_key` order, at most ``limit``, without reading any record or any
    history. Written only by :class:`JobRecords`."""

    def queued(self, limit: int, team: str | None = None) -> list[QueueEntry]: ...

    def depth(self, limit: int, team: str | None = None) -> int:
        """How many jobs ``queued`` would return with ``limit``, without decoding them."""
        ...

    def arrays(self, limit: int) -> list[str]:
        """Array jobs still running (:func:`~dispatcher.domain.jobs.array_active`), in submission order."""
        ...


class Intents(Protocol):
    """Intents left open (an attempt claimed and not confirmed created, inline values not yet stored), read by the
    reconciler's sweep: those recorded before ``before``, oldest first, at most ``limit``, without reading any
    record or history. Written only by :class:`JobRecords`."""

    def stale(self, before: dt.datetime, limit: int) -> list[Intent]: ...


class Dependencies(Protocol):
    """The waits index, read when a job with dependants ends: ``waiters`` lists the jobs waiting on ``job_id``;
    ``released`` the jobs that ended with dependants not yet decided, at most ``limit`` each, without reading any
    record. Written only by :class:`JobRecords`."""

    def waiters(self, job_id: str, limit: int) -> list[str]: ...

    def released(self, limit: int) -> list[str]: ...


class Schedules(Protocol):
    """Schedules, each written with its events (pending in the :class:`Outbox`) in one atomic write.

    ``insert`` raises :class:`~dispatcher.domain.errors.AlreadyExists` for a name in use; ``replace`` and
    ``delete`` raise :class:`~dispatcher.domain.errors.Conflict` unless the schedule still has ``old``'s ETag.
    ``list`` gives the first ``limit`` by name.
    """

    def get(self, name: str) -> Versioned[ScheduleRecord] | None: ...

    def list(self, limit: int) -> list[Versioned[ScheduleRecord]]: ...

    def insert(self, record: ScheduleRecord, events: Sequence[CloudEvent] = ()) -> Versioned[ScheduleRecord]: ...

    def replace(
        self, old: Versioned[ScheduleRecord], new: ScheduleRecord, events: Sequence[CloudEvent] = ()
    ) -> Versioned[ScheduleRecord]: ...

    def delete(self, old: Versioned[ScheduleRecord]) -> None: ...


class Outbox(Protocol):
    """Events written with their transitions and not yet published.

    ``pending`` lists them oldest first, at most ``limit``, without reading history: a published event is
    cleared. ``clear`` is idempotent.
    """

    def pending(self, limit: int) -> list[CloudEvent]: ...

    def clear(self, event: CloudEvent) -> None: ...


class Retention(Protocol):
    """Terminal jobs by the time they ended.

    ``expired`` lists the jobs that ended before ``before``, oldest first, at most ``limit``, without reading
    history. ``purge`` deletes every row stored for one job (its record, its conflicts) and nothing of any
    other job; ``forget`` drops one retention index entry; ``postpone`` moves one to ``until``, so the job is
    considered again one retention period later. All three are idempotent.
    """

    def expired(self, before: dt.datetime, limit: int) -> list[Expired]: ...

    def purge(self, job_id: str) -> None: ...

    def forget(self, index_key: str) -> None: ...

    def postpone(self, expired: Expired, until: dt.datetime) -> None: ...


class PoolLedger(Protocol):
    """Each pool's capacity: its counts and rate windows, and one reservation per attempt's group.

    - ``state`` is one read: the pool's counts, windows and ETag, not its reservations.
    - ``active`` reads the state and every reservation the pool holds: the reconciler's active set.
    - ``reserve`` takes capacity atomically with the counts, conditional on ``state``'s ETag, and returns the
      state it wrote with its new ETag; ``None`` when another writer got there first or the group already
      holds a reservation. It never over-commits.
    - ``release`` frees a reservation's capacity atomically with the counts, once however often it is called;
      ``deleted`` counts the group's delete in the delete windows. It writes on ``state`` when that is still
      current and reads again otherwise, and returns the pool's state as it left it.
    - ``mark`` records on a held reservation that its start is recorded, or that a cancel was asked; a
      released one is left alone. ``find`` reads one reservation, or ``None``.
    - ``saturate`` keeps the pool out of placement until ``until`` (ACI said its quota was reached).
    - ``team_state`` reads what a team holds over every pool. A reservation of a team is taken with ``team`` (its
      state as read): its row is written in the same transaction, conditional on its ETag, so concurrent admissions
      of one team serialize on it; ``release`` gives the reservation's share back in the release's transaction.
    """

    def state(self, pool: Pool) -> PoolState: ...

    def active(self, pool: Pool) -> tuple[PoolState, list[Reservation]]: ...

    def reserve(
        self, state: PoolState, reservation: Reservation, now: dt.datetime, team: TeamState | None = None
    ) -> PoolState | None: ...

    def team_state(self, team: str) -> TeamState: ...

    def release(
        self, state: PoolState, reservation: Reservation, now: dt.datetime, *, deleted: bool = False
    ) -> PoolState: ...

    def mark(self, pool: Pool, group: str, *, started: bool = False, cancel_requested: bool = False) -> None: ...

    def find(self, pool: Pool, group: str) -> Reservation | None: ...

    def saturate(self, pool: Pool, until: dt.datetime) -> None: ...


@dataclass(frozen=True)
class GroupRequest:
    """Everything one attempt's container group is made from, fixed before its first create.

    ``created`` is the attempt's claim time, so the group's tags (and so its whole body) are the same however
    often it is built. ``job_secrets`` and ``dispatcher_secrets`` map vault keys to resolved values; they exist
    only here and in the create call.
    """

    job_id: str
    attempt: int
    spec: JobSpec
    location: str
    created: dt.datetime
    timeout_seconds: int
    job_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    dispatcher_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    workspace: str | None = None
    """The workspace share a workspace volume mounts: the job's own, or for a group record its array job's."""
    container_logs: ContainerLogs | None = None
    """The pool's Log Analytics workspace for container output; its key is among ``dispatcher_secrets``."""
    identity: str | None = None
    """The resource id of the user-assigned identity the job named, from its team's allowlist."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The job's labels (its ``team`` among them), tagged on the group for Cost Management."""


@dataclass(frozen=True)
class CreateResult:
    """What ARM said to a create: the provisioning state it reported."""

    provisioning_state: str


class ContainerGroups(Protocol):
    """ACI container groups in capacity pools.

    - ``create`` builds the group from ``request`` and PUTs it under ``name``; it returns once ARM has accepted
      the request, without waiting for provisioning. It raises
      :class:`~dispatcher.domain.errors.CloudError` with ``code`` ``ContainerGroupQuotaReached`` when the quota
      is reached, ``transient=True`` for throttling and server errors that outlasted the retry budget, and
      ``transient=False`` for a request ACI rejects (400).
    - ``delete`` and ``stop`` are idempotent: an absent group is already deleted or stopped.
    - ``usage`` is one read of ACI's usages for the pool's region (everything there, not only the dispatcher's).
    - ``list`` is one paged call and carries no instance view; ``get`` does, and returns ``None`` when the
      group is absent. ``logs`` returns ``""`` for an absent group; ``timestamps``: each line begins with the time
      ACI gives it and a space (:mod:`dispatcher.domain.logs`).
    """

    def create(self, pool: Pool, name: str, request: GroupRequest) -> CreateResult: ...

    def delete(self, pool: Pool, name: str) -> None: ...

    def list(self, pool: Pool) -> dict[str, GroupSummary]: ...

    def get(self, pool: Pool, name: str) -> GroupView | None: ...

    def stop(self, pool: Pool, name: str) -> None: ...

    def usage(self, pool: Pool) -> RegionUsage | None:
        """ACI's count of container groups and cores in the pool's subscription and region, against the quota;
        ``None`` when ACI reports neither."""
        ...

    def logs(
        self, pool: Pool, name: str, container: str, tail: int | None = None, *, timestamps: bool = False
    ) -> str: ...


class LogStore(Protocol):
    """Harvested logs. ``put`` writes the full text under ``path`` unless a log is there already, and returns its
    reference: the first harvest's log stands, since a later harvest of the same attempt (two runs racing, or a
    recovery) may find the group deleted and read an empty log. ``get`` reads one, or ``None``; ``delete_job``
    deletes every log of a job (paths start with ``{job id}/``)."""

    def put(self, path: str, text: str) -> str: ...

    def get(self, path: str) -> str | None: ...

    def delete_job(self, job_id: str) -> None: ...


class Secrets(Protocol):
    """One vault's secrets. Values are never logged or kept.

    ``get`` returns a secret's value by ``name`` or ``name/version``, or raises
    :class:`~dispatcher.domain.errors.SecretNotFound`. ``set`` writes a new version and returns its id;
    ``tags`` are stored with it. ``delete`` deletes a secret (soft-deleted where the vault keeps deleted
    secrets) and is idempotent.
    """

    def get(self, key: str) -> str: ...

    def set(self, name: str, value: str, *, tags: Mapping[str, str]) -> str: ...

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class OutputEntry:
    """One entry of a workspace folder: a file with its size, or a folder."""

    name: str
    is_directory: bool
    size: int = 0


@dataclass(frozen=True)
class OutputPage:
    """One page of one workspace folder; ``continuation`` fetches the next, ``None`` on the last page."""

    entries: list[OutputEntry]
    continuation: str | None = None


class Shares(Protocol):
    """Azure Files shares.

    ``ensure`` creates a share if it does not exist yet; ``delete`` removes one; both are idempotent.
    ``read`` returns a file's bytes, or ``None`` when it does not exist. ``page`` lists one folder (``""`` is the
    share's root) a page at a time, or raises :class:`~dispatcher.domain.errors.CloudError` with code
    ``ResourceNotFound`` for a missing folder. ``summary`` counts the files under the share's root, visiting at
    most ``limit`` entries, and never loops: a listing that repeats a folder or goes deeper than the bound
    ends the count as incomplete.
    """

    def ensure(self, share: str) -> None: ...

    def ensure_folder(self, share: str, path: str) -> None:
        """Create folder ``path`` (``a/b``: ``a`` first) in an existing share if it does not exist yet."""
        ...

    def delete(self, share: str) -> None: ...

    def read(self, share: str, path: str) -> bytes | None: ...

    def page(self, share: str, folder: str, continuation: str | None, limit: int) -> OutputPage: ...

    def summary(self, share: str, limit: int) -> OutputSummary: ...


class JobQueue(Protocol):
    """The jobs queue. ``send`` enqueues one message; ``message_id`` is the job id, for duplicate detection.
    ``probe`` reads from the queue without taking anything, and raises if it cannot. ``dead_letter_count`` peeks
    at the dead-letter queue: how many messages it holds, counting up to ``limit``."""

    def send(
        self, body: bytes, message_id: str, content_type: str, properties: Mapping[str, str] | None = None
    ) -> None: ...

    def probe(self) -> None: ...

    def dead_letter_count(self, limit: int) -> int: ...


class Waker(Protocol):
    """What runs the reconciler soon, between its timer's runs: ``wake_at`` schedules a run at ``when`` or a few
    seconds after; requests for the same moment make one run. Raises :class:`~dispatcher.domain.errors.CloudError`."""

    def wake_at(self, when: dt.datetime) -> None: ...


@dataclass(frozen=True)
class DeadLetter:
    """A message in the jobs queue's dead-letter queue, as ``dispatcher dlq list`` shows it.

    ``job_id`` is the job it submits: its ``dispatcher-job-id`` property, else its message id.
    """

    sequence_number: int
    message_id: str
    job_id: str
    content_type: str | None
    reason: str | None
    description: str | None
    enqueued_at: dt.datetime | None
    delivery_count: int
    size: int


class DeadLetters(Protocol):
    """The jobs queue's dead letters. ``replay`` sends each chosen one back to the queue as a new message (id from
    :func:`~dispatcher.domain.naming.replay_message_id`, the job id in a property), then removes it."""

    def peek(self, limit: int) -> list[DeadLetter]: ...

    def replay(self, chosen: Callable[[DeadLetter], bool], limit: int) -> list[DeadLetter]: ...


class Events(Protocol):
    """Lifecycle events. ``publish`` sends at least once; consumers deduplicate by the event id."""

    def publish(self, event: CloudEvent) -> None: ...


class UsageLedger(Protocol):
    """Usage by day and team. ``pending`` lists ended jobs' entries not folded yet (written by :class:`JobRecords`
    with each terminal record); ``fold`` adds entries of one day and team to ``total`` (as read by ``day_total``)
    and deletes them in one transaction, conditional on the total's ETag: ``False`` when another writer got there
    first. ``totals`` reads the days from ``since`` to ``until``, both included."""

    def pending(self, limit: int) -> list[UsageEntry]: ...

    def day_total(self, day: dt.date, team: str) -> DayTotal: ...

    def fold(self, total: DayTotal, entries: Sequence[UsageEntry]) -> bool: ...

    def totals(self, since: dt.date, until: dt.date) -> list[DayTotal]: ...


class Tokens(Protocol):
    """Validates the API's bearer tokens: signature, issuer, audience, tenant and lifetime."""

    def claims(self, token: str) -> Mapping[str, Any]:
        """The token's claims; raises :class:`~dispatcher.domain.errors.InvalidToken` for a token the API does not
        accept, :class:`~dispatcher.domain.errors.CloudError` when the issuer's keys cannot be read."""
        ...


class Clock(Protocol):
    """The time, and waiting. Tests move it by hand: their ``sleep`` advances it."""

    def now(self) -> dt.datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class OffsetClock(SystemClock):
    """devstack only: the real clock plus the seconds written in ``path`` (none if it is missing), so a test can
    move the dispatcher's time forward (a schedule's next due time) without waiting for it."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def now(self) -> dt.datetime:
        try:
            offset = float(self._path.read_text() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return super().now() + dt.timedelta(seconds=offset)

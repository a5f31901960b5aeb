"""The ports the service layer works through, bundled; built once by ``dispatcher.bootstrap`` or by a test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cachetools import TTLCache

from dispatcher.domain.placement import Elsewhere, PoolState
from dispatcher.ports import (
    Clock,
    ContainerGroups,
    Dependencies,
    Events,
    Intents,
    JobQueue,
    JobRecords,
    LogStore,
    Outbox,
    PoolLedger,
    QueueIndex,
    Retention,
    Schedules,
    Secrets,
    Shares,
    Tokens,
    UsageLedger,
    Waker,
)
from dispatcher.settings import DispatcherSettings


@dataclass
class Cursors:
    """Where each pool's round over its running groups goes on in the next reconciler run of this process.

    A round longer than one run's read budget resumes from here; a new process starts the round over, which
    only delays it by a run.
    """

    by_pool: dict[str, int] = field(default_factory=dict)
    upkeep_at: float | None = None
    """When this process's runs last did their upkeep (epoch seconds; see :func:`~dispatcher.service.tick.run_tick`)."""
    arrays: bool = True
    """Whether an array job may be running: the array index's last read found one, or this process recorded one
    since. Between upkeeps a run reads the index only then (an empty read costs a query per run); an array job
    recorded by another process is advanced from the next upkeep on, its first groups packed by its intake."""


SHARED_READ_SECONDS = 3.0
SHARED_READS = 512
"""Container logs kept for sharing at most (each at most ACI's 4 MB)."""


class SharedReads:
    """Live log reads kept for a few seconds by (pool, group, container), by the services' clock."""

    def __init__(self, seconds: float = SHARED_READ_SECONDS) -> None:
        self._now = 0.0
        self._cache: TTLCache[tuple[str, str, str], str] = TTLCache(SHARED_READS, seconds, timer=lambda: self._now)
        self._lock = threading.Lock()

    def read(self, key: tuple[str, str, str], now: float, load: Callable[[], str]) -> str:
        with self._lock:
            self._now = max(self._now, now)
            found = self._cache.get(key)
        if found is not None:
            return found
        content = load()
        with self._lock:
            self._cache[key] = content
        return content


REGION_USAGE_SECONDS = 60.0
"""How long a read of ACI's usage for a region stands: one ARM read a minute per region at most."""


class RegionReads:
    """What this process last read of ACI's usage in each region, as what it leaves to each pool there
    (:class:`~dispatcher.domain.placement.Elsewhere`); a read older than twice its lifespan is not used."""

    def __init__(self, seconds: float = REGION_USAGE_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._read: dict[tuple[str, str], float] = {}
        self._pools: dict[str, tuple[float, Elsewhere]] = {}

    def due(self, region: tuple[str, str], now: float) -> bool:
        with self._lock:
            return now - self._read.get(region, -float("inf")) >= self.seconds

    def record(self, region: tuple[str, str], now: float, pools: Mapping[str, Elsewhere]) -> None:
        with self._lock:
            self._read[region] = now
            self._pools.update({name: (now, elsewhere) for name, elsewhere in pools.items()})

    def elsewhere(self, pool: str, now: float) -> Elsewhere | None:
        with self._lock:
            found = self._pools.get(pool)
        return found[1] if found is not None and now - found[0] < 2 * self.seconds else None


class RecentStates:
    """The pools' states as this process last read them, and when (services' clock, epoch seconds).

    Intake reuses them to see that no pool has room for a new job, sparing a ledger read per pool and per job in a
    burst: a stale "no room" only leaves the job to the reconciler's next run, which runs within an interval while
    groups are held and launches it. Room is never taken from here: a job that may fit has the states read again.
    """

    def __init__(self) -> None:
        self._kept: tuple[float, list[PoolState]] | None = None
        self._lock = threading.Lock()

    def keep(self, states: list[PoolState], now: float) -> None:
        with self._lock:
            self._kept = (now, list(states))

    def within(self, seconds: float, now: float) -> list[PoolState] | None:
        """The states kept less than ``seconds`` ago, or ``None``."""
        with self._lock:
            kept = self._kept
        return kept[1] if kept is not None and 0 <= now - kept[0] < seconds else None


@dataclass(frozen=True)
class Services:
    """Everything a service function needs from the outside."""

    settings: DispatcherSettings
    records: JobRecords
    queue: QueueIndex
    intents: Intents
    outbox: Outbox
    retention: Retention
    ledger: PoolLedger
    dependencies: Dependencies
    schedules: Schedules
    groups: ContainerGroups
    secrets: Secrets
    """The dispatcher's own vault: storage account keys, registry passwords. No job can name these."""
    job_secrets: Secrets
    """The job-secrets vault: what jobs reference, and where their inline values are stored."""
    shares: Shares
    events: Events
    logs: LogStore
    jobs_queue: JobQueue
    clock: Clock
    usage: UsageLedger
    """Usage by day and team: written with the records, folded by the reconciler, read by the usage report."""
    tokens: Tokens | None = None
    """Validates the API's bearer tokens; ``None`` when sign-in is not configured (function keys only)."""
    waker: Waker | None = None
    """Runs the reconciler soon while work is active (``None``: only its timer runs it)."""
    cursors: Cursors = field(default_factory=Cursors)
    recent_states: RecentStates = field(default_factory=RecentStates)
    log_reads: SharedReads = field(default_factory=SharedReads)
    regions: RegionReads = field(default_factory=RegionReads)

"""The ports the service layer works through, bundled; built once by ``dispatcher.bootstrap`` or by a test."""

from __future__ import annotations

from dataclasses import dataclass, field

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
)
from dispatcher.settings import DispatcherSettings


@dataclass
class Cursors:
    """Where each pool's round over its running groups goes on in the next reconciler run of this process.

    A round longer than one run's read budget resumes from here; a new process starts the round over, which
    only delays it by a run.
    """

    by_pool: dict[str, int] = field(default_factory=dict)


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
    cursors: Cursors = field(default_factory=Cursors)

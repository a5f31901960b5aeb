"""The ports the core works through, bundled; built once by ``dispatcher.bootstrap`` or by a test."""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.ports import Clock, ContainerGroups, Events, JobQueue, JobStore, LogStore, Secrets, Shares
from dispatcher.settings import DispatcherSettings


@dataclass(frozen=True)
class Services:
    """Everything a handler needs from the outside."""

    settings: DispatcherSettings
    store: JobStore
    groups: ContainerGroups
    secrets: Secrets
    shares: Shares
    events: Events
    clock: Clock
    logs: LogStore
    queue: JobQueue

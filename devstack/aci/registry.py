"""The emulator's memory: deployed container groups and the long-running operations that track them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from devstack.aci.runtime import GroupRuntime
from devstack.aci.spec import GroupSpec

GroupKey = tuple[str, str, str]
"""(subscription, resource group in lower case, group name)."""


def group_key(subscription: str, resource_group: str, name: str) -> GroupKey:
    """Resource groups are case-insensitive in ARM; names of container groups are lowercase already."""
    return (subscription.lower(), resource_group.lower(), name)


@dataclass
class GroupRecord:
    """One deployed container group: its request body, parsed spec and runtime."""

    subscription: str
    resource_group: str
    name: str
    body: dict[str, Any]
    spec: GroupSpec
    runtime: GroupRuntime
    created_at: float
    region: str
    stopped: bool = False
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Operation:
    """A long-running operation, polled through its ``Azure-AsyncOperation`` URL.

    ``kind`` is "create", "start" (done when the group is provisioned) or "delete" (done once ``ready_at``).
    """

    subscription: str
    region: str
    kind: str
    group: GroupKey
    group_uid: str
    started_at: float
    ready_at: float
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


class Registry:
    """Groups by key and operations by id, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._groups: dict[GroupKey, GroupRecord] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._cores: dict[tuple[str, str], float] = {}
        self._operations: dict[str, Operation] = {}

    def get(self, key: GroupKey) -> GroupRecord | None:
        """The group at ``key``, if deployed."""
        with self.lock:
            return self._groups.get(key)

    def put(self, record: GroupRecord) -> None:
        """Store (or replace) a group."""
        key = group_key(record.subscription, record.resource_group, record.name)
        with self.lock:
            self.remove(key)
            self._groups[key] = record
            self._count(record, 1)

    def remove(self, key: GroupKey) -> GroupRecord | None:
        """Forget a group and return it."""
        with self.lock:
            record = self._groups.pop(key, None)
            if record is not None:
                self._count(record, -1)
            return record

    def set_stopped(self, record: GroupRecord, stopped: bool) -> None:
        """Mark a group stopped (its cores stop counting against the quota) or deployed again."""
        with self.lock:
            if record.stopped != stopped:
                self._count(record, -1)
                record.stopped = stopped
                self._count(record, 1)

    def _count(self, record: GroupRecord, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) ``record`` in its region's totals; a stopped group's cores don't count."""
        region = (record.subscription.lower(), record.region)
        self._counts[region] = self._counts.get(region, 0) + sign
        if not record.stopped:
            self._cores[region] = self._cores.get(region, 0.0) + sign * record.spec.cpu

    def region_usage(self, subscription: str, region: str) -> tuple[int, float]:
        """(groups, cores of the groups not stopped) of ``subscription`` in ``region``, kept as groups come and go.

        Quota checks run on every create, so these are running totals rather than a scan of every group.
        """
        key = (subscription.lower(), region)
        with self.lock:
            return self._counts.get(key, 0), round(self._cores.get(key, 0.0), 6)

    def groups(self) -> list[GroupRecord]:
        """Every group, sorted by resource group and name so pages are stable."""
        with self.lock:
            return sorted(self._groups.values(), key=lambda r: (r.subscription, r.resource_group.lower(), r.name))

    def find(self, name: str, resource_group: str | None = None) -> Iterator[GroupRecord]:
        """Groups called ``name`` (in ``resource_group`` when given)."""
        for record in self.groups():
            if record.name == name and (
                resource_group is None or record.resource_group.lower() == resource_group.lower()
            ):
                yield record

    def add_operation(self, operation: Operation) -> None:
        """Track an operation."""
        with self.lock:
            self._operations[operation.id] = operation

    def operation(self, operation_id: str) -> Operation | None:
        """The operation with ``operation_id``."""
        with self.lock:
            return self._operations.get(operation_id)

    def clear(self) -> list[GroupRecord]:
        """Forget everything; returns the groups so their runtimes can be terminated."""
        with self.lock:
            records = list(self._groups.values())
            self._groups.clear()
            self._counts.clear()
            self._cores.clear()
            self._operations.clear()
            return records

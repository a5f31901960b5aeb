"""What ACI reports about container groups, as plain data the reconciler's decisions read.

``GroupSummary`` is what the paged list returns (no instance view, exactly as ARM does); ``GroupView``
is what ``get`` returns, with the state of the group and of each container.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AciEvent:
    """One event ACI recorded for a container or group, e.g. ``Failed``: "Failed to pull image ..."."""

    name: str
    message: str = ""
    type: str = "Normal"
    count: int = 1
    last_timestamp: dt.datetime | None = None


@dataclass(frozen=True)
class ContainerView:
    """One container's instance view."""

    name: str
    state: str | None = None
    exit_code: int | None = None
    start_time: dt.datetime | None = None
    finish_time: dt.datetime | None = None
    detail_status: str | None = None
    restart_count: int = 0
    events: tuple[AciEvent, ...] = ()

    @property
    def terminated(self) -> bool:
        return self.state == "Terminated"


@dataclass(frozen=True)
class GroupSummary:
    """A group as the list call shows it: its name, tags and provisioning state only."""

    name: str
    provisioning_state: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupView:
    """A group as ``get`` shows it, with its instance view."""

    name: str
    provisioning_state: str | None = None
    state: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    containers: tuple[ContainerView, ...] = ()
    init_containers: tuple[ContainerView, ...] = ()
    events: tuple[AciEvent, ...] = ()

    @property
    def finished(self) -> bool:
        """Every container has terminated (and none will be restarted), or the group says it is done."""
        if self.state in ("Succeeded", "Failed", "Stopped"):
            return True
        return bool(self.containers) and all(c.terminated for c in self.containers) and self.state != "Running"

    @property
    def all_events(self) -> tuple[AciEvent, ...]:
        return self.events + tuple(e for c in (*self.init_containers, *self.containers) for e in c.events)

    @property
    def started_at(self) -> dt.datetime | None:
        starts = [c.start_time for c in self.containers if c.start_time is not None]
        return min(starts) if starts else None

    @property
    def finished_at(self) -> dt.datetime | None:
        ends = [c.finish_time for c in self.containers if c.finish_time is not None]
        return max(ends) if ends else None

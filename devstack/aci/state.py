"""Instance views: the states and events of groups and containers, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ContainerState:
    """One container state (Waiting, Running or Terminated) with its times, exit code and detail."""

    state: str
    start_time: float | None = None
    finish_time: float | None = None
    exit_code: int | None = None
    detail_status: str = ""


@dataclass(frozen=True)
class Event:
    """A container or group event, like ``Pulling``, ``Started`` or ``FailedMount``."""

    name: str
    message: str
    first_timestamp: float
    last_timestamp: float
    count: int = 1
    type: str = "Normal"


@dataclass(frozen=True)
class ContainerView:
    """The instance view of one container."""

    restart_count: int = 0
    current: ContainerState | None = None
    previous: ContainerState | None = None
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class GroupView:
    """Everything GET shows of a group at one moment; ``failure`` is the (code, message) of a failed deployment."""

    provisioning_state: str
    state: str
    events: tuple[Event, ...] = ()
    containers: dict[str, ContainerView] = field(default_factory=dict)
    init_containers: dict[str, ContainerView] = field(default_factory=dict)
    failure: tuple[str, str] | None = None


@dataclass(frozen=True)
class ProvisioningFailure:
    """Why a deployment fails before its containers start: an image pull or a volume mount."""

    kind: str  # "image_pull" | "mount"
    message: str
    container: str | None = None

    @property
    def event_name(self) -> str:
        """The event ACI records for this failure."""
        return "Failed" if self.kind == "image_pull" else "FailedMount"

    @property
    def error_code(self) -> str:
        """The error code of the failed long-running operation."""
        return "InaccessibleImage" if self.kind == "image_pull" else "FailedMount"


def terminal_group_state(exit_codes: list[int]) -> str:
    """A group whose containers all ended is Succeeded when every exit code is 0, else Failed."""
    return "Succeeded" if all(code == 0 for code in exit_codes) else "Failed"


def restarts(policy: str, exit_code: int) -> bool:
    """Whether ``restartPolicy`` restarts a container that exited with ``exit_code``."""
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

"""Settings of the devstack ACI emulator: mode, quotas, throttling, faults and simulation rules per region."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from devstack.tls import TLSFiles

Mode = Literal["run", "simulate"]


@dataclass(frozen=True)
class QuotaLimits:
    """ACI quotas of one subscription in one region; the defaults are the service's defaults."""

    container_groups: int = 100
    cores: int = 100
    creates_per_5_minutes: int = 100
    creates_per_hour: int = 300
    deletes_per_5_minutes: int = 100
    deletes_per_hour: int = 300


@dataclass(frozen=True)
class ThrottleLimits:
    """ARM token buckets per subscription and operation kind (capacity, refill per emulated second)."""

    reads: tuple[int, float] = (250, 25.0)
    writes: tuple[int, float] = (200, 10.0)
    deletes: tuple[int, float] = (200, 10.0)


@dataclass(frozen=True)
class RegionFaults:
    """Standing faults of one region: a share of creates that fail to pull, or no capacity at all."""

    image_pull_failure_rate: float = 0.0
    capacity_unavailable: bool = False


@dataclass(frozen=True)
class SimulatedContainer:
    """What a simulation rule sees of one container: its group, name, command and plain env values."""

    group: str
    name: str
    command: tuple[str, ...]
    environment: Mapping[str, str]
    tags: Mapping[str, str]


@dataclass(frozen=True)
class SimulatedOutcome:
    """How long a simulated container runs (emulated seconds), how it exits and what it logs."""

    duration_seconds: float
    exit_code: int
    log: str = ""


SimulationRule = Callable[[SimulatedContainer], SimulatedOutcome | None]


@dataclass(frozen=True)
class SimulationRules:
    """Rules for simulate mode.

    A container's outcome is, in order: the first ``rules`` entry that returns an outcome; else the
    ``DEVSTACK_SIM_DURATION`` / ``DEVSTACK_SIM_EXIT_CODE`` / ``DEVSTACK_SIM_LOG`` environment variables
    (or tags) of the container spec; else the defaults. Provisioning latency is drawn uniformly from
    ``provisioning_latency_seconds`` (emulated seconds).
    """

    default_duration_seconds: float = 5.0
    default_exit_code: int = 0
    provisioning_latency_seconds: tuple[float, float] = (1.0, 3.0)
    rules: tuple[SimulationRule, ...] = ()
    seed: int = 0

    def latency(self, rng: random.Random) -> float:
        """Draw one provisioning latency in emulated seconds."""
        low, high = self.provisioning_latency_seconds
        return low if high <= low else rng.uniform(low, high)


@dataclass
class AciConfig:
    """Everything an :class:`~devstack.aci.emulator.AciEmulator` needs.

    ``files_root / account / share`` is the folder of an Azure Files share (shared with the Files
    emulator). ``storage_accounts`` maps account names to keys; when it is empty, keys are not checked.
    ``time_scale`` speeds up emulated time (quota windows, token refill, simulated durations, timestamps).
    ``lro_retry_after_seconds`` is the ``Retry-After`` of long-running operations (keep it above 0: the SDK
    treats 0 as "absent" and falls back to its 30 s polling interval). ``restart_backoff_seconds`` is the
    first delay before a run-mode restart (it doubles up to 5 minutes, like CrashLoopBackOff).
    ``page_size`` is how many groups one list page holds.
    """

    state_dir: Path
    files_root: Path
    tls: TLSFiles
    mode: Mode = "run"
    time_scale: float = 1.0
    storage_accounts: dict[str, str] = field(default_factory=dict)
    quotas: dict[str, QuotaLimits] = field(default_factory=dict)
    default_quota: QuotaLimits = field(default_factory=QuotaLimits)
    faults: dict[str, RegionFaults] = field(default_factory=dict)
    throttle: ThrottleLimits = field(default_factory=ThrottleLimits)
    simulation: SimulationRules = field(default_factory=SimulationRules)
    lro_retry_after_seconds: float = 1.0
    restart_backoff_seconds: float = 1.0
    page_size: int = 100
    port: int = 0
    put_answers: Mapping[str, float] = field(default_factory=lambda: {"Pending": 1.0})
    """The ``provisioningState`` a create's answer says, drawn in these proportions (seeded): the real service
    answers ``Pending``; a test or the benchmark can ask for ``Creating`` or ``Succeeded`` too, so that both of a
    client's branches run."""

    def quota_for(self, region: str) -> QuotaLimits:
        """The quota of ``region`` (a normalised location name)."""
        return self.quotas.get(normalise_region(region), self.default_quota)

    def faults_for(self, region: str) -> RegionFaults:
        """The standing faults of ``region``."""
        return self.faults.get(normalise_region(region), RegionFaults())


def normalise_region(location: str) -> str:
    """ARM location names compare without case or spaces: ``West Europe`` is ``westeurope``."""
    return location.replace(" ", "").lower()

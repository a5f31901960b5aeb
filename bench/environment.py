"""One benchmark environment: devstack in simulation mode on a stepped clock, and the real dispatcher's services."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.clock import DispatcherClock, SteppedClock
from devstack.aci.config import QuotaLimits, SimulationRules, ThrottleLimits
from devstack.stack import Stack, StackOptions
from dispatcher.adapters.azure.aci import AciContainerGroups
from dispatcher.adapters.azure.servicebus import ServiceBusEvents
from dispatcher.bootstrap import build_services
from dispatcher.service.services import Services
from dispatcher.settings import DispatcherSettings, Pool

OURS_SUBSCRIPTION = "00000000-0000-0000-0000-00000000be01"
NAIVE_SUBSCRIPTION = "00000000-0000-0000-0000-00000000be02"
REGIONS = ("westeurope", "northeurope", "swedencentral")
INSTANCE = "bench"
_ENVIRON_LOCK = threading.Lock()


@dataclass(frozen=True)
class PoolPlan:
    """A capacity pool of the scenario: its region and limits (the dispatcher's and, by default, ACI's)."""

    name: str
    region: str
    max_groups: int = 100
    max_cores: float = 100
    creates_per_5min: int = 100
    creates_per_hour: int = 300

    def pool(self, subscription: str) -> Pool:
        return Pool(
            name=self.name,
            subscription_id=subscription,
            resource_group=f"bench-{self.name}",
            location=self.region,
            max_groups=self.max_groups,
            max_cores=self.max_cores,
            creates_per_5min=self.creates_per_5min,
            creates_per_hour=self.creates_per_hour,
        )

    def quota(self) -> QuotaLimits:
        """ACI's quota in the pool's region, matching the pool's limits (the defaults are ACI's defaults)."""
        return QuotaLimits(
            container_groups=self.max_groups,
            cores=int(self.max_cores),
            creates_per_5_minutes=self.creates_per_5min,
            creates_per_hour=self.creates_per_hour,
            deletes_per_5_minutes=self.creates_per_5min,
            deletes_per_hour=self.creates_per_hour,
        )


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the duration, then the previous environment back."""
    with _ENVIRON_LOCK:
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class Environment:
    """A started devstack (ACI simulated, Files, Key Vault, Service Bus, Azurite) whose ACI runs on a stepped clock.

    ``services`` is the real dispatcher's ports, built by ``build_services`` from the stack's settings, with
    the clock replaced by one on the same emulated time.
    """

    def __init__(
        self,
        state_dir: Path,
        plans: list[PoolPlan],
        *,
        unthrottled: bool = False,
        seed: int = 7,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.plans = plans
        self.clock = SteppedClock()
        overrides: dict[str, Any] = {
            "quotas": {p.region: p.quota() for p in plans},
            "simulation": SimulationRules(provisioning_latency_seconds=(1.0, 3.0), seed=seed),
            "page_size": 100,
        }
        if unthrottled:
            big = (10**9, 10.0**9)
            overrides["throttle"] = ThrottleLimits(reads=big, writes=big, deletes=big)
        self.pools = [p.pool(OURS_SUBSCRIPTION) for p in plans]
        self.naive_pools = [p.pool(NAIVE_SUBSCRIPTION) for p in plans]
        extra = {
            "DISPATCHER_INSTANCE": INSTANCE,
            "DISPATCHER_POOLS": json.dumps([p.model_dump(by_alias=True) for p in self.pools]),
            "DISPATCHER_TICK_BUDGET_SECONDS": "36000",
            "DISPATCHER_ORPHAN_GRACE_SECONDS": "600",
            "DISPATCHER_STUCK_GRACE_SECONDS": "300",
            "DISPATCHER_SATURATION_COOLDOWN_SECONDS": "60",
            **(settings or {}),
        }
        self.stack = Stack(
            StackOptions(
                state_dir=state_dir,
                aci_mode="simulate",
                runner=False,
                extra_settings=extra,
                aci_overrides=overrides,
                azurite_in_memory=True,
            )
        )
        self._services: Services | None = None

    def start(self) -> Environment:
        self.stack.start()
        self.stack.aci.service.clock = self.clock
        with _environment(self.stack.settings()):
            settings = DispatcherSettings()
        built = build_services(settings)
        self._services = dataclasses.replace(built, clock=DispatcherClock(self.clock))
        return self

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the environment is not started")
        return self._services

    @property
    def aci_url(self) -> str:
        return self.stack.aci.url

    @property
    def ca_bundle(self) -> str:
        return str(self.stack.tls.ca)

    def groups_in(self, subscription: str, region: str | None = None) -> int:
        """Container groups that exist now in ``subscription`` (in ``region``, else in the scenario's regions): what
        counts against the quota, from the emulator's running totals."""
        regions = [region] if region is not None else sorted({p.region for p in self.plans})
        registry = self.stack.aci.service.registry
        return sum(registry.region_usage(subscription, r)[0] for r in regions)

    def windows(self, subscription: str, pools: Sequence[Pool]) -> dict[str, int]:
        """Creates and deletes in the last 5 minutes and the last hour as ACI counts them, summed over ``pools``'
        regions: a timeline sample's ``creates_5min``, ``creates_hour``, ``deletes_5min`` and ``deletes_hour``."""
        rates, now = self.stack.aci.service.rates, self.clock.now()
        counts = dict.fromkeys(("creates_5min", "creates_hour", "deletes_5min", "deletes_hour"), 0)
        for region in {p.location for p in pools}:
            for action in ("creates", "deletes"):
                five, hour = rates.usage(subscription, region, action, now)
                counts[f"{action}_5min"] += five
                counts[f"{action}_hour"] += hour
        return counts

    def deletions(self, subscription: str) -> dict[str, float]:
        """When ACI accepted the delete of each group of ``subscription`` (emulated epoch seconds), by name."""
        operations = self.stack.aci.service.registry._operations  # read-only look at the emulator's memory
        return {
            op.group[2]: op.started_at
            for op in list(operations.values())
            if op.kind == "delete" and op.group[0] == subscription.lower()
        }

    def stop(self) -> None:
        if self._services is not None:
            groups, events = self._services.groups, self._services.events
            if isinstance(groups, AciContainerGroups):
                groups.close()
            if isinstance(events, ServiceBusEvents):
                events.close()
            self._services = None
        self.stack.stop()

    def __enter__(self) -> Environment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

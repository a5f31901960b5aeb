"""ACI quotas (groups, cores, create and delete rates) and ARM throttling token buckets, in emulated time."""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from dataclasses import dataclass

from devstack.aci.config import QuotaLimits, ThrottleLimits
from devstack.aci.errors import ArmError

FIVE_MINUTES = 300.0
ONE_HOUR = 3600.0
OPERATION_KINDS = ("reads", "writes", "deletes")


def quota_exceeded(quota: str, region: str, limit: int, usage: int, requested: int) -> ArmError:
    """The 409 ``ContainerGroupQuotaReached`` error, worded like the service's."""
    return ArmError(
        409,
        "ContainerGroupQuotaReached",
        f"Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota '{quota}' exceeded in "
        f"region '{region}'. Limit: '{limit}', Usage: '{usage}' Requested: '{requested}'.",
    )


@dataclass(frozen=True)
class RegionUsage:
    """What a region holds right now: groups and cores of groups that are not stopped."""

    container_groups: int
    cores: int


class RateWindows:
    """Sliding 5-minute and 1-hour windows of creates and deletes per (subscription, region)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str, str], deque[float]] = defaultdict(deque)

    def _count(self, key: tuple[str, str, str], now: float, window: float) -> int:
        events = self._events[key]
        while events and events[0] <= now - ONE_HOUR:
            events.popleft()
        return sum(1 for moment in events if moment > now - window)

    def admit(self, subscription: str, region: str, action: str, limits: QuotaLimits, now: float) -> None:
        """Record one ``action`` ("creates" or "deletes") or raise ``ContainerGroupQuotaReached`` (409)."""
        per_5 = limits.creates_per_5_minutes if action == "creates" else limits.deletes_per_5_minutes
        per_hour = limits.creates_per_hour if action == "creates" else limits.deletes_per_hour
        name = "ContainerGroupCreates" if action == "creates" else "ContainerGroupDeletes"
        key = (subscription, region, action)
        with self._lock:
            in_5 = self._count(key, now, FIVE_MINUTES)
            if in_5 + 1 > per_5:
                raise quota_exceeded(f"{name}PerFiveMinutes", region, per_5, in_5, 1)
            in_hour = self._count(key, now, ONE_HOUR)
            if in_hour + 1 > per_hour:
                raise quota_exceeded(f"{name}PerHour", region, per_hour, in_hour, 1)
            self._events[key].append(now)

    def usage(self, subscription: str, region: str, action: str, now: float) -> tuple[int, int]:
        """(count in the last 5 minutes, count in the last hour) of ``action``."""
        key = (subscription, region, action)
        with self._lock:
            return self._count(key, now, FIVE_MINUTES), self._count(key, now, ONE_HOUR)


def check_capacity(region: str, limits: QuotaLimits, usage: RegionUsage, cores_requested: float) -> None:
    """Raise ``ContainerGroupQuotaReached`` when one more group of ``cores_requested`` does not fit."""
    if usage.container_groups + 1 > limits.container_groups:
        raise quota_exceeded("ContainerGroups", region, limits.container_groups, usage.container_groups, 1)
    requested = math.ceil(cores_requested)
    if usage.cores + requested > limits.cores:
        raise quota_exceeded("StandardCores", region, limits.cores, usage.cores, requested)


class TokenBuckets:
    """ARM throttling: one token bucket per subscription and kind (reads, writes, deletes)."""

    def __init__(self, limits: ThrottleLimits) -> None:
        self._limits = {"reads": limits.reads, "writes": limits.writes, "deletes": limits.deletes}
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def _refilled(self, key: tuple[str, str], now: float) -> float:
        capacity, rate = self._limits[key[1]]
        tokens, last = self._buckets.get(key, (float(capacity), now))
        return min(float(capacity), tokens + max(0.0, now - last) * rate)

    def take(self, subscription: str, kind: str, now: float) -> tuple[bool, int, float]:
        """Take one token: (allowed, tokens remaining, emulated seconds until the next token)."""
        key = (subscription, kind)
        _, rate = self._limits[kind]
        with self._lock:
            tokens = self._refilled(key, now)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return True, int(tokens - 1.0), 0.0
            self._buckets[key] = (tokens, now)
            return False, 0, (1.0 - tokens) / rate if rate > 0 else ONE_HOUR

    def drain(self, subscription: str, kind: str, now: float, hold: float = 1.0) -> None:
        """Empty a bucket so that its next token arrives ``hold`` emulated seconds from ``now``.

        Tests use it to provoke 429 without sending hundreds of requests; the hold keeps the bucket empty
        on a loaded machine, where the next request may come tens of milliseconds later.
        """
        _, rate = self._limits[kind]
        with self._lock:
            self._buckets[(subscription, kind)] = (1.0 - rate * hold, now)

    def reset(self) -> None:
        """Refill every bucket."""
        with self._lock:
            self._buckets.clear()

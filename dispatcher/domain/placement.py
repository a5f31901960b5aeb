"""What a job needs from a pool, and what a pool holds: its ledger of reservations and rate windows. Pure.

A pool's usage is counted from its reservations: one per launched attempt, taken before the group is
created and released after it is deleted. The counts live beside the reservations, so admission reads one
row. Creates and deletes are counted over ACI's two windows, 5 minutes and 1 hour, so the dispatcher never
asks for a create or a delete that ACI would refuse with ContainerGroupQuotaReached.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from dispatcher.domain.spec import JobSpec
from dispatcher.settings import Pool, Team

FIVE_MINUTES = dt.timedelta(minutes=5)
ONE_HOUR = dt.timedelta(hours=1)
EPSILON = 1e-9
GROUP_MIN_CORES = 1.0
GROUP_MIN_MEMORY_GB = 1.0
"""ACI allocates, and bills, at least 1 vCPU and 1 GB to a container group, though one container may ask for less
(container-instances-container-groups.md, "Minimum and maximum allocation"): admission counts that."""


@dataclass(frozen=True)
class Demand:
    """What a job needs from a pool."""

    cores: float
    memory_gb: float
    spot: bool = False
    region: str | None = None
    pool: str | None = None
    spread_group: str | None = None

    @classmethod
    def of(cls, spec: JobSpec) -> Demand:
        """What the job's group is allocated: its containers' requests summed, at least ACI's group minimum."""
        return cls(
            cores=max(spec.total_cpu, GROUP_MIN_CORES),
            memory_gb=max(spec.total_memory_gb, GROUP_MIN_MEMORY_GB),
            spot=spec.priority == "Spot",
            region=spec.placement.region,
            pool=spec.placement.pool,
            spread_group=spec.placement.spread_group,
        )


@dataclass(frozen=True)
class Reservation:
    """Capacity held in a pool by one attempt's group."""

    group: str
    job_id: str
    attempt: int
    cores: float
    created_at: dt.datetime
    timeout_seconds: int
    spread_group: str | None = None
    started: bool = False
    cancel_requested: bool = False
    team: str | None = None
    """The team whose usage the reservation counts in (its row in the ledger), when it has one."""

    @property
    def earliest_deadline(self) -> dt.datetime:
        """No attempt times out before this: its timeout counted from the reservation, which precedes the launch."""
        return self.created_at + dt.timedelta(seconds=self.timeout_seconds)


BUCKET_SECONDS = 10


def _epoch(moment: dt.datetime) -> float:
    return moment.timestamp()


@dataclass(frozen=True)
class RateWindow:
    """Events (creates or deletes) counted over ACI's two sliding windows, 5 minutes and 1 hour.

    The last 5 minutes are kept exactly, as epoch seconds: at most the 5-minute limit of them. The hour
    is kept as counts per 10-second bucket, at most 360, so the window stays small however high a pool's
    hourly limit is raised. A bucket counts until its end leaves the hour, so the hourly count is never
    lower than ACI's; it can be higher by the events of one 10-second bucket, for at most 10 seconds.
    """

    recent: tuple[float, ...] = ()
    buckets: tuple[tuple[int, int], ...] = ()

    def last_5min(self, now: dt.datetime) -> int:
        since = _epoch(now - FIVE_MINUTES)
        return sum(1 for t in self.recent if t > since)

    def last_hour(self, now: dt.datetime) -> int:
        since = _epoch(now - ONE_HOUR)
        return sum(count for start, count in self.buckets if start + BUCKET_SECONDS > since)

    def per_minute(self, now: dt.datetime, minutes: int = 60) -> list[tuple[int, int]]:
        """Events in each of the last ``minutes`` whole minutes up to ``now`` (epoch second of the minute, count),
        oldest first, from the hour's buckets."""
        start = int(_epoch(now) // 60) * 60 - (minutes - 1) * 60
        counts = dict.fromkeys(range(start, start + 60 * minutes, 60), 0)
        for bucket, count in self.buckets:
            minute = bucket // 60 * 60
            if minute in counts:
                counts[minute] += count
        return sorted(counts.items())

    def pruned(self, now: dt.datetime) -> RateWindow:
        """Without the events that no window counts any more."""
        five, hour = _epoch(now - FIVE_MINUTES), _epoch(now - ONE_HOUR)
        return RateWindow(
            tuple(t for t in self.recent if t > five),
            tuple((start, count) for start, count in self.buckets if start + BUCKET_SECONDS > hour),
        )

    def add(self, now: dt.datetime) -> RateWindow:
        """With one more event at ``now``; events no window counts any more are dropped."""
        kept = self.pruned(now)
        at = _epoch(now)
        start = int(at // BUCKET_SECONDS) * BUCKET_SECONDS
        counts = dict(kept.buckets)
        counts[start] = counts.get(start, 0) + 1
        return RateWindow((*kept.recent, at), tuple(sorted(counts.items())))


@dataclass(frozen=True)
class RegionUsage:
    """ACI's own count of a subscription's container groups and cores in a region (its usages API), against the
    region's quota: whatever runs there, the dispatcher or not."""

    groups: int
    group_limit: int
    cores: float
    core_limit: float


@dataclass(frozen=True)
class Elsewhere:
    """What a pool's region holds beside the pool, as of one read of ACI's usage: other workloads, and the
    dispatcher's other pools there, against the region's quota. Fixed at the read: the pool's own reservations
    since then are counted by the pool, not here."""

    groups: int
    cores: float
    group_limit: int
    core_limit: float

    @classmethod
    def of(cls, usage: RegionUsage, state: PoolState) -> Elsewhere:
        """From a read of the region's usage and the pool's state read with it (its reservations, which include
        groups not created yet: so others are never counted twice, at worst a little short)."""
        return cls(
            groups=max(usage.groups - state.groups, 0),
            cores=max(usage.cores - state.cores, 0.0),
            group_limit=usage.group_limit,
            core_limit=usage.core_limit,
        )


@dataclass(frozen=True)
class PoolState:
    """A pool's limits and what it holds now: counts kept beside its reservations, so admission is one read."""

    pool: Pool
    groups: int = 0
    cores: float = 0.0
    spread: Mapping[str, int] = field(default_factory=dict)
    creates: RateWindow = RateWindow()
    deletes: RateWindow = RateWindow()
    saturated_until: dt.datetime | None = None
    etag: str | None = field(default=None, compare=False)
    elsewhere: Elsewhere | None = field(default=None, compare=False)
    """The rest of the region's quota in use, when ACI's usage was read (``None``: not read)."""

    def spread_members(self, spread_group: str | None) -> int:
        return 0 if spread_group is None else self.spread.get(spread_group, 0)

    def refusal(self, demand: Demand, now: dt.datetime) -> str | None:
        """Why this pool cannot take ``demand`` now, or ``None`` if it can."""
        limits = self.pool
        if demand.pool is not None and demand.pool != limits.name:
            return f"the job is pinned to pool {demand.pool}"
        if demand.region is not None and demand.region.lower() != limits.location.lower():
            return f"the job is pinned to region {demand.region}"
        if demand.spot and not limits.spot:
            return "Spot is not allowed in this pool"
        if self.saturated_until is not None and now < self.saturated_until:
            return f"ACI reported the quota reached; cooling down until {self.saturated_until:%H:%M:%S}"
        if self.groups + 1 > limits.max_groups:
            return f"{self.groups} of {limits.max_groups} container groups in use"
        if self.cores + demand.cores > limits.max_cores + EPSILON:
            return f"{self.cores:g} of {limits.max_cores:g} cores in use, {demand.cores:g} more requested"
        shared = self.elsewhere
        if shared is not None and shared.groups + self.groups + 1 > shared.group_limit:
            return (
                f"the region's quota of {shared.group_limit} container groups is in use: {shared.groups} outside "
                f"this pool, {self.groups} in it"
            )
        if shared is not None and shared.cores + self.cores + demand.cores > shared.core_limit + EPSILON:
            return (
                f"the region's quota of {shared.core_limit:g} cores is in use: {shared.cores:g} outside this pool, "
                f"{self.cores:g} in it, {demand.cores:g} more requested"
            )
        if self.creates.last_5min(now) + 1 > limits.creates_per_5min:
            return f"{limits.creates_per_5min} creates in the last 5 minutes"
        if self.creates.last_hour(now) + 1 > limits.creates_per_hour:
            return f"{limits.creates_per_hour} creates in the last hour"
        return self.delete_pacing(now)

    def groups_room(self, now: dt.datetime) -> int:
        """How many more groups the pool may create now, by its group count, its create windows and the delete
        windows it paces creates to; cores and the region's share are counted apart."""
        limits = self.pool
        room = [
            limits.max_groups - self.groups,
            limits.creates_per_5min - self.creates.last_5min(now),
            limits.creates_per_hour - self.creates.last_hour(now),
        ]
        room += [limit - held - self.groups for _, held, limit in self._paced_windows(now)]
        return max(min(room), 0)

    def _paced_windows(self, now: dt.datetime) -> list[tuple[str, int, int]]:
        """The delete windows creates are paced to: (name, deletes in it, its limit)."""
        limits, mode = self.pool, self.pool.pace_deletes
        windows = []
        if mode == "both":
            windows.append(("5 minutes", self.deletes.last_5min(now), limits.creates_per_5min))
        if mode in ("both", "hour"):
            windows.append(("hour", self.deletes.last_hour(now), limits.creates_per_hour))
        return windows

    def delete_pacing(self, now: dt.datetime) -> str | None:
        """Why one more group now could leave a delete waiting on ACI's delete quota, or ``None``.

        The rule, for each window paced to (``Pool.pace_deletes``): the groups held, one more, and the deletes
        already in the window never exceed the window's limit. Every group held needs one delete, and may end at
        any moment; if all ended now their deletes would fit. Releasing a group keeps the sum (one group fewer,
        one delete more), a window sliding on lowers it, and admission never raises it past the limit: so whenever
        a group ends, its delete fits that window at once.
        """
        for window, held, limit in self._paced_windows(now):
            if self.groups + 1 + held > limit:
                return (
                    f"pacing creates to ACI's delete quota: {self.groups} groups held and {held} deletes in the last "
                    f"{window} leave no delete for one more group within that window's {limit}"
                )
        return None

    def delete_refusal(self, now: dt.datetime) -> str | None:
        """Why ACI would refuse one more delete now (its delete quota equals the create quota), or ``None``."""
        limits = self.pool
        if self.deletes.last_5min(now) + 1 > limits.creates_per_5min:
            return f"{limits.creates_per_5min} deletes in the last 5 minutes"
        if self.deletes.last_hour(now) + 1 > limits.creates_per_hour:
            return f"{limits.creates_per_hour} deletes in the last hour"
        return None

    def with_reservation(self, reservation: Reservation, now: dt.datetime) -> PoolState:
        """The state after ``reservation`` is taken and its create counted."""
        spread = dict(self.spread)
        if reservation.spread_group:
            spread[reservation.spread_group] = spread.get(reservation.spread_group, 0) + 1
        return replace(
            self,
            groups=self.groups + 1,
            cores=self.cores + reservation.cores,
            spread=spread,
            creates=self.creates.add(now),
            deletes=self.deletes.pruned(now),
        )

    def without_reservation(self, reservation: Reservation, now: dt.datetime, *, deleted: bool) -> PoolState:
        """The state after ``reservation`` is released; ``deleted`` counts the delete of its group."""
        spread = dict(self.spread)
        if reservation.spread_group and spread.get(reservation.spread_group, 0) > 0:
            spread[reservation.spread_group] -= 1
            if not spread[reservation.spread_group]:
                del spread[reservation.spread_group]
        return replace(
            self,
            groups=max(self.groups - 1, 0),
            cores=max(self.cores - reservation.cores, 0.0),
            spread=spread,
            creates=self.creates.pruned(now),
            deletes=self.deletes.add(now) if deleted else self.deletes.pruned(now),
        )

    def with_delete(self, now: dt.datetime) -> PoolState:
        """The state after one more delete is counted."""
        return replace(self, deletes=self.deletes.add(now))


@dataclass(frozen=True)
class TeamState:
    """What a team's jobs hold at once, over every pool: written in the same transaction as the pool's state and
    the reservation whenever one of its reservations is taken or released, so admissions of a team serialize on
    this row and never over-commit its limits."""

    team: str
    groups: int = 0
    cores: float = 0.0
    etag: str | None = field(default=None, compare=False)

    def refusal(self, demand: Demand, limits: Team) -> str | None:
        """Why the team may not take ``demand`` now under ``limits``, or ``None`` if it may."""
        if limits.max_groups is not None and self.groups + 1 > limits.max_groups:
            return f"team {self.team} holds {self.groups} of its {limits.max_groups} container groups"
        if limits.max_cores is not None and self.cores + demand.cores > limits.max_cores + EPSILON:
            return (
                f"team {self.team} holds {self.cores:g} of its {limits.max_cores:g} cores, {demand.cores:g} more asked"
            )
        return None

    def taking(self, reservation: Reservation) -> TeamState:
        return replace(self, groups=self.groups + 1, cores=self.cores + reservation.cores)

    def giving_back(self, reservation: Reservation) -> TeamState:
        return replace(self, groups=max(self.groups - 1, 0), cores=max(self.cores - reservation.cores, 0.0))

"""Which capacity pool a job goes to, and whether a pool can take one more group now. Pure.

A pool's usage is counted from its reservations: one per launched attempt, taken before the group is
created and released after it is deleted. Creates are counted over ACI's two windows, 5 minutes and
1 hour, so the dispatcher never asks for a create that ACI would refuse with ContainerGroupQuotaReached.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dispatcher.settings import Pool
from dispatcher.spec import JobSpec

FIVE_MINUTES = dt.timedelta(minutes=5)
ONE_HOUR = dt.timedelta(hours=1)
EPSILON = 1e-9


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
        return cls(
            cores=spec.total_cpu,
            memory_gb=spec.total_memory_gb,
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
    spread_group: str | None = None


@dataclass(frozen=True)
class PoolState:
    """A pool's limits and what it holds now."""

    pool: Pool
    reservations: tuple[Reservation, ...] = ()
    creates: tuple[dt.datetime, ...] = ()
    saturated_until: dt.datetime | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def groups(self) -> int:
        return len(self.reservations)

    @property
    def cores(self) -> float:
        return sum(r.cores for r in self.reservations)

    def creates_since(self, since: dt.datetime) -> int:
        return sum(1 for t in self.creates if t > since)

    def spread_members(self, spread_group: str | None) -> int:
        return 0 if spread_group is None else sum(1 for r in self.reservations if r.spread_group == spread_group)

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
        if self.creates_since(now - FIVE_MINUTES) + 1 > limits.creates_per_5min:
            return f"{limits.creates_per_5min} creates in the last 5 minutes"
        if self.creates_since(now - ONE_HOUR) + 1 > limits.creates_per_hour:
            return f"{limits.creates_per_hour} creates in the last hour"
        return None

    def with_reservation(self, reservation: Reservation, now: dt.datetime) -> PoolState:
        """The state after ``reservation`` is taken and its create counted; old creates fall out of the window."""
        recent = tuple(t for t in self.creates if t > now - ONE_HOUR)
        return PoolState(
            pool=self.pool,
            reservations=(*self.reservations, reservation),
            creates=(*recent, now),
            saturated_until=self.saturated_until,
            etag=self.etag,
        )


def can_ever_fit(demand: Demand, pools: Iterable[Pool]) -> bool:
    """Whether some pool could take the job if it were empty: otherwise waiting is pointless."""
    return any(
        (demand.pool is None or demand.pool == p.name)
        and (demand.region is None or demand.region.lower() == p.location.lower())
        and (not demand.spot or p.spot)
        and p.max_groups >= 1
        and demand.cores <= p.max_cores + EPSILON
        and p.creates_per_5min >= 1
        and p.creates_per_hour >= 1
        for p in pools
    )


def place(demand: Demand, pools: Sequence[PoolState], now: dt.datetime) -> PoolState | None:
    """The pool to launch in, or ``None`` when none can take the job now.

    Among the pools that can take it: fewest members of the job's spread group first (soft anti-affinity),
    then the most free capacity scaled by the pool's weight, then the pool's name, so the choice is stable.
    """
    fitting = [state for state in pools if state.refusal(demand, now) is None]
    if not fitting:
        return None

    def rank(state: PoolState) -> tuple[int, float, str]:
        limits = state.pool
        free_groups = (limits.max_groups - state.groups) / max(limits.max_groups, 1)
        free_cores = (limits.max_cores - state.cores) / max(limits.max_cores, EPSILON)
        return (state.spread_members(demand.spread_group), -min(free_groups, free_cores) * limits.weight, limits.name)

    return min(fitting, key=rank)


def refusals(demand: Demand, pools: Sequence[PoolState], now: dt.datetime) -> dict[str, str]:
    """Why each pool refuses the job, for the record and the user."""
    return {state.pool.name: reason for state in pools if (reason := state.refusal(demand, now)) is not None}

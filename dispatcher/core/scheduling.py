"""The scheduling order: which queued job is tried next, and which pool it goes to. Pure.

This module owns the order. The queue index lists entries by :func:`order_key`; the scheduler walks them and
asks :func:`worth_trying` of each, and :func:`place` chooses the pool. Later policies (packing, fair share,
pacing) extend these functions rather than add their own. :mod:`dispatcher.service.schedule` performs the
launches these decisions call for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from dispatcher.domain.jobs import QueueEntry
from dispatcher.domain.placement import EPSILON, Demand, PoolState
from dispatcher.domain.spec import JobSpec
from dispatcher.settings import DispatcherSettings, Pool

PRIORITY_RANK = {"Regular": 0, "Spot": 1}
"""Regular jobs go before Spot jobs; within a rank, the earlier submission goes first."""


def priority_rank(spec: JobSpec) -> int:
    """The rank a job is queued at: lower runs first."""
    return PRIORITY_RANK[spec.priority]


def order_key(entry: QueueEntry) -> tuple[int, dt.datetime, str]:
    """The queue's order: rank, then submission time, then id (so that the order is total)."""
    return (entry.priority, entry.submitted_at, entry.job_id)


def is_due(entry: QueueEntry, now: dt.datetime) -> bool:
    """Whether a queued job may launch now: a retry waits for its backoff."""
    return entry.not_before is None or entry.not_before <= now


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


def has_room(states: Sequence[PoolState], now: dt.datetime) -> bool:
    """Whether some pool could take the smallest job now; when none can, the queue is not worth reading."""
    smallest = Demand(cores=0.0, memory_gb=0.0)
    return any(s.refusal(smallest, now) is None for s in states)


def worth_trying(entry: QueueEntry, states: Sequence[PoolState], pools: Sequence[Pool], now: dt.datetime) -> bool:
    """Whether the scheduler should try to launch ``entry`` now, judged from its index entry alone.

    A retry in backoff waits; a job that fits no pool now is passed over without reading its record, so that
    it does not block smaller jobs behind it. A job that can never fit is tried, so that it fails with a reason.
    """
    if not is_due(entry, now):
        return False
    return not can_ever_fit(entry.demand, pools) or place(entry.demand, states, now) is not None


def queues(settings: DispatcherSettings) -> list[str | None]:
    """The queues the scheduler reads: jobs of no team, then each configured team's."""
    return [None, *sorted(settings.teams)]


@dataclass(frozen=True)
class Held:
    """What a team's jobs hold now, over every pool."""

    cores: float = 0.0
    groups: int = 0

    def plus(self, demand: Demand) -> Held:
        return Held(self.cores + demand.cores, self.groups + 1)


def dominant_share(held: Held, pools: Sequence[Pool], weight: float) -> float:
    """Dominant-resource fairness: the larger of the team's share of every pool's cores and of their groups,
    divided by the team's weight; the team with the smallest goes next."""
    cores = sum(p.max_cores for p in pools) or 1.0
    groups = sum(p.max_groups for p in pools) or 1
    return max(held.cores / cores, held.groups / groups) / weight


def next_fair(
    heads: Mapping[str | None, Sequence[QueueEntry]],
    taken: Mapping[str | None, int],
    held: Mapping[str | None, Held],
    weights: Mapping[str | None, float],
    pools: Sequence[Pool],
) -> tuple[str | None, QueueEntry] | None:
    """The next entry to try: the first not yet ``taken`` of the queue whose team has the smallest weighted
    dominant share (:func:`dominant_share`), the older entry breaking a tie (:func:`order_key`); within a team its
    own order, priority first. ``None`` when every head is taken. The caller counts what each launch holds."""
    waiting = [team for team, entries in heads.items() if taken.get(team, 0) < len(entries)]
    if not waiting:
        return None

    def rank(team: str | None) -> tuple[float, tuple[int, dt.datetime, str]]:
        share = dominant_share(held.get(team, Held()), pools, weights.get(team, 1.0))
        return share, order_key(heads[team][taken.get(team, 0)])

    team = min(waiting, key=rank)
    return team, heads[team][taken.get(team, 0)]

"""Launch queued jobs in the scheduling order (:mod:`dispatcher.core.scheduling`) while some pool has room.

The pools' states come first (as the reconciler just read or wrote them), so a run with every pool full reads
nothing else. Then the head of each queue (jobs of no team, and each team's): the next job tried is the head of
the team with the smallest weighted dominant share (:func:`~dispatcher.core.scheduling.next_fair`), so one team's
burst does not hold another team's job back past the run in which capacity frees. Each launch returns the state
its reservation wrote, so pools are read again only after some other write. A queued job that fits no pool now is
passed over by its index entry alone, without reading its record. Each launch is contained: one that fails is
recorded on its job and the scheduler goes on with the next.
"""

from __future__ import annotations

import math

from dispatcher.core.scheduling import Held, has_room, next_fair, queues, worth_trying
from dispatcher.domain.jobs import QueueEntry
from dispatcher.service.launch import Capacity, Outcome, try_launch
from dispatcher.service.records import note_error_of
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services

SCHEDULE_BATCH = 200
"""Entries tried from the head of each queue per run, at most."""
HEAD_FIRST = 20
"""Entries first read from the head of each queue, or four per job the pools have room for if more (by groups, and
by whole cores free): a read costs about 1 ms of client CPU per 10 entries, and a run mostly has room for a few
jobs. A team whose entries are all tried while room is left is read again, once, to :data:`SCHEDULE_BATCH`."""


class _Heads:
    """The heads of the queues, read as deep as the run needs them."""

    def __init__(self, services: Services, teams: list[str | None], room: int) -> None:
        self._services = services
        depth = min(SCHEDULE_BATCH, max(HEAD_FIRST, 4 * room))
        self.entries: dict[str | None, list[QueueEntry]] = {}
        self._more: dict[str | None, bool] = {}
        for team in teams:
            self.entries[team] = services.queue.queued(depth, team)
            self._more[team] = len(self.entries[team]) == depth < SCHEDULE_BATCH

    def deepen(self, taken: dict[str | None, int]) -> None:
        """Read further the queues whose entries read so far are all taken, where more may wait."""
        for team, entries in self.entries.items():
            if not self._more[team] or taken.get(team, 0) < len(entries):
                continue
            read = self._services.queue.queued(SCHEDULE_BATCH, team)
            seen = {entry.job_id for entry in entries}  # those launched have left the index; the rest are tried
            entries.extend(entry for entry in read if entry.job_id not in seen)
            self._more[team] = False


def _held(capacity: Capacity, heads: dict[str | None, list[QueueEntry]]) -> dict[str | None, Held]:
    """What each team with queued jobs holds now (its ledger row); jobs of no team hold what the pools hold
    besides."""
    held: dict[str | None, Held] = {
        team: Held(state.cores, state.groups)
        for team in heads
        if team is not None and heads[team]
        for state in (capacity.team(team),)
    }
    total = Held(sum(s.cores for s in capacity.states()), sum(s.groups for s in capacity.states()))
    teams = Held(sum(h.cores for h in held.values()), sum(h.groups for h in held.values()))
    held[None] = Held(max(total.cores - teams.cores, 0.0), max(total.groups - teams.groups, 0))
    return held


def schedule(services: Services, report: RunReport, capacity: Capacity) -> None:
    """Launch queued jobs in fair-share order."""
    settings = services.settings
    pools = settings.pools
    now = services.clock.now()
    if not has_room(capacity.states(), now):
        return  # every pool is full or rate-limited for any job: the queue is not read
    room = sum(min(s.groups_room(now), math.ceil(max(s.pool.max_cores - s.cores, 0.0))) for s in capacity.states())
    reader = _Heads(services, queues(settings), room)
    heads = reader.entries
    held = _held(capacity, heads)
    weights: dict[str | None, float] = {name: team.weight for name, team in settings.teams.items()}
    taken: dict[str | None, int] = {}
    while True:
        reader.deepen(taken)
        if (chosen := next_fair(heads, taken, held, weights, pools)) is None:
            return
        team, entry = chosen
        taken[team] = taken.get(team, 0) + 1
        if report.out_of_time():
            return
        if not worth_trying(entry, capacity.states(), pools, now):
            continue
        with report.contained(f"launch {entry.job_id}", on_error=note_error_of(services, entry.job_id)):
            found = services.records.get(entry.job_id)
            if found is None:
                continue
            if try_launch(services, found, capacity).outcome is Outcome.LAUNCHED:
                report.launched += 1
                held[team] = held.get(team, Held()).plus(entry.demand)
        if not has_room(capacity.states(), now):
            return

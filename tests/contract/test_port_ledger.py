"""One contract for the PoolLedger port, run against the fake and the Table adapter over Azurite."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

from dispatcher.domain.placement import Demand, PoolState, Reservation
from dispatcher.ports import PoolLedger
from dispatcher.settings import Pool, Team

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
POOL = Pool(name="p1", subscription_id="s", resource_group="rg", location="westeurope", max_groups=3, max_cores=3)


def reservation(group: str, cores: float = 1.0) -> Reservation:
    return Reservation(group=group, job_id=group, attempt=1, cores=cores, created_at=NOW, timeout_seconds=600)


def test_reservations_count_groups_cores_and_creates(ledger: PoolLedger) -> None:
    written = ledger.reserve(ledger.state(POOL), reservation("g1", 2.0), NOW)
    after = ledger.state(POOL)
    assert written == after
    assert written is not None
    assert written.etag == after.etag  # the next reservation can start from it unread
    assert (after.groups, after.cores, after.creates.last_5min(NOW), after.creates.last_hour(NOW)) == (1, 2.0, 1, 1)
    state, held = ledger.active(POOL)
    assert state == after
    assert [r.group for r in held] == ["g1"]


def test_a_reservation_round_trips_with_what_the_reconciler_needs(ledger: PoolLedger) -> None:
    taken = dataclasses.replace(reservation("g1", 2.0), spread_group="batch")
    assert ledger.reserve(ledger.state(POOL), taken, NOW)
    assert ledger.state(POOL).spread_members("batch") == 1
    assert ledger.active(POOL)[1] == [taken]
    assert ledger.find(POOL, "g1") == taken
    ledger.mark(POOL, "g1", started=True)
    ledger.mark(POOL, "g1", cancel_requested=True)
    ledger.mark(POOL, "gone", cancel_requested=True)  # released already: nothing happens
    assert ledger.active(POOL)[1] == [dataclasses.replace(taken, started=True, cancel_requested=True)]
    assert ledger.find(POOL, "gone") is None


def test_a_group_cannot_be_reserved_twice(ledger: PoolLedger) -> None:
    assert ledger.reserve(ledger.state(POOL), reservation("g1"), NOW)
    assert not ledger.reserve(ledger.state(POOL), reservation("g1"), NOW)
    assert ledger.state(POOL).groups == 1


def test_a_reservation_on_a_stale_pool_state_is_refused(ledger: PoolLedger) -> None:
    stale = ledger.state(POOL)
    written = ledger.reserve(stale, reservation("g1"), NOW)
    assert written is not None
    assert not ledger.reserve(stale, reservation("g2"), NOW)
    assert ledger.reserve(written, reservation("g2"), NOW)
    assert ledger.state(POOL).groups == 2


def test_release_is_idempotent_and_counts_the_delete(ledger: PoolLedger) -> None:
    state = ledger.reserve(ledger.state(POOL), reservation("g1"), NOW)
    assert state is not None
    after = ledger.release(state, reservation("g1"), NOW, deleted=True)
    again = ledger.release(after, reservation("g1"), NOW, deleted=True)
    assert (again.groups, again.cores, again.deletes.last_5min(NOW)) == (0, 0.0, 1)
    assert ledger.state(POOL) == again
    assert ledger.active(POOL)[1] == []


def test_a_release_on_a_current_state_writes_unread_and_on_a_stale_one_still_counts_right(ledger: PoolLedger) -> None:
    first, second = reservation("g1", 1.0), reservation("g2", 2.0)
    ledger.reserve(ledger.state(POOL), first, NOW)
    state = ledger.reserve(ledger.state(POOL), second, NOW)
    assert state is not None
    written = ledger.release(state, first, NOW, deleted=True)
    assert written == ledger.state(POOL)
    assert (written.groups, written.cores, written.etag) == (1, 2.0, ledger.state(POOL).etag)
    # The state read before the first release is stale now: the release reads it again
    again = ledger.release(state, second, NOW, deleted=True)
    assert (again.groups, again.cores, again.deletes.last_5min(NOW)) == (0, 0.0, 2)
    assert ledger.active(POOL)[1] == []
    # An etag-less state (nothing read) works too
    assert ledger.release(PoolState(POOL), second, NOW).groups == 0


def test_pools_are_kept_apart(ledger: PoolLedger) -> None:
    other = POOL.model_copy(update={"name": "p1.b"})
    ledger.reserve(ledger.state(other), reservation("g1"), NOW)
    assert ledger.find(other, "g1") is not None
    assert ledger.find(POOL, "g1") is None
    assert (ledger.state(POOL).groups, ledger.state(other).groups) == (0, 1)
    assert ledger.active(POOL)[1] == []


def test_a_saturated_pool_refuses_until_the_cooldown_ends(ledger: PoolLedger) -> None:
    ledger.reserve(ledger.state(POOL), reservation("g1"), NOW)
    ledger.saturate(POOL, NOW + dt.timedelta(seconds=60))
    state = ledger.state(POOL)
    assert state.groups == 1  # saturation keeps the counts
    assert state.refusal(Demand(1, 1), NOW) is not None
    assert state.refusal(Demand(1, 1), NOW + dt.timedelta(seconds=61)) is None


def test_concurrent_admissions_never_exceed_the_pool_limits(ledger: PoolLedger) -> None:
    def admit(i: int) -> None:
        for _ in range(20):
            state = ledger.state(POOL)
            if state.refusal(Demand(1, 1), NOW) is not None:
                return
            if ledger.reserve(state, reservation(f"g{i}"), NOW):
                return

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.state(POOL).groups == POOL.max_groups
    assert len(ledger.active(POOL)[1]) == POOL.max_groups


POOL_B = Pool(name="p2", subscription_id="s", resource_group="rg2", location="westeurope", max_groups=10, max_cores=10)
ML = Team(max_groups=3, max_cores=3)
WEB = Team(max_groups=2)


def test_a_teams_row_counts_its_reservations_over_every_pool_and_its_releases(ledger: PoolLedger) -> None:
    taken = dataclasses.replace(reservation("g1", 2.0), team="ml")
    assert ledger.reserve(ledger.state(POOL), taken, NOW, ledger.team_state("ml"))
    assert ledger.reserve(ledger.state(POOL_B), dataclasses.replace(taken, group="g2"), NOW, ledger.team_state("ml"))
    assert (ledger.team_state("ml").groups, ledger.team_state("ml").cores) == (2, 4.0)
    assert ledger.find(POOL, "g1") == taken  # the reservation knows its team, so a release gives its share back
    ledger.release(ledger.state(POOL), taken, NOW, deleted=True)
    ledger.release(ledger.state(POOL), taken, NOW, deleted=True)  # a repeat changes nothing
    assert (ledger.team_state("ml").groups, ledger.team_state("ml").cores) == (1, 2.0)


def test_a_reservation_on_a_stale_team_row_is_refused(ledger: PoolLedger) -> None:
    stale = ledger.team_state("ml")
    assert ledger.reserve(ledger.state(POOL), dataclasses.replace(reservation("g1"), team="ml"), NOW, stale)
    assert not ledger.reserve(ledger.state(POOL_B), dataclasses.replace(reservation("g2"), team="ml"), NOW, stale)
    assert ledger.team_state("ml").groups == 1
    assert ledger.state(POOL_B).groups == 0  # the pool's write is undone with the team's


def test_concurrent_admissions_of_two_teams_in_two_pools_never_exceed_either_teams_limits(ledger: PoolLedger) -> None:
    """Each admission reads its pool and its team, checks both, and writes both in one transaction."""
    limits = {"ml": ML, "web": WEB}

    def admit(i: int) -> None:
        team, pool = ("ml", "web")[i % 2], (POOL, POOL_B)[(i // 2) % 2]
        taken = dataclasses.replace(reservation(f"g{i}"), team=team)
        for _ in range(40):
            state, held = ledger.state(pool), ledger.team_state(team)
            if state.refusal(Demand(1, 1), NOW) is not None or held.refusal(Demand(1, 1), limits[team]) is not None:
                return
            if ledger.reserve(state, taken, NOW, held):
                return

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = {pool.name: ledger.active(pool)[1] for pool in (POOL, POOL_B)}
    per_team = {team: sum(1 for rs in held.values() for r in rs if r.team == team) for team in limits}
    assert per_team == {"ml": 3, "web": 2}
    assert (ledger.team_state("ml").groups, ledger.team_state("web").groups) == (3, 2)
    assert sum(ledger.state(pool).groups for pool in (POOL, POOL_B)) == 5

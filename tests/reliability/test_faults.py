"""Outages of each service, requests applied but answered with an error, and random faults of every kind, through
the real intake, API and reconciler code on the fakes and simulated time."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.reliability.harness import POOL, SERVICES, Outage, RandomFaults, Sim, fakes, mixed

FIVE_MINUTES = 300.0


def sim_with(outage: tuple[str, float, float] | None = None, plan: RandomFaults | None = None) -> Sim:
    services, clock, aci = fakes([POOL.model_copy(update={"max_groups": 6, "max_cores": 10})])
    sim = Sim(services, clock, plan=plan, evict=aci.evict)
    if outage is not None:
        service, start, seconds = outage
        begin = clock.now() + dt.timedelta(seconds=start)
        sim.injector.outages.append(Outage(service, begin, begin + dt.timedelta(seconds=seconds)))
    return sim


@pytest.mark.parametrize("service", SERVICES)
def test_a_five_minute_outage_of_any_service_loses_nothing_and_needs_no_operator(service: str) -> None:
    # Given a mixed workload arriving while one service is down for five minutes
    sim = sim_with((service, 20.0, FIVE_MINUTES))
    tally = sim.run(mixed(40, seed=1), per_step=4)
    # Then every invariant holds, and nothing reached the dead-letter queue
    assert tally.problems() == []
    assert (tally.dead_lettered, tally.replayed) == (0, 0)


def test_a_two_hour_table_outage_dead_letters_submissions_and_a_replay_records_each_once() -> None:
    # Given Table storage down for two hours while submissions arrive (ten deliveries of 300 s each do not last)
    sim = sim_with(("tables", 10.0, 7200.0))
    tally = sim.run(mixed(30, seed=2), per_step=5)
    # Then the submissions were dead-lettered, replayed, and each recorded once with its outcome
    assert tally.dead_lettered > 0
    assert tally.replayed == tally.dead_lettered
    assert tally.problems() == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_faults_of_every_kind_keep_every_invariant(seed: int) -> None:
    # Given 3 % of calls failing: before they are made, applied but answered with an error, or a crash after
    faults = RandomFaults(0.03, seed)
    sim = sim_with(plan=faults)
    tally = sim.run(mixed(150, seed=seed), per_step=6)
    assert tally.problems() == []
    assert min(faults.counts.values()) > 0, faults.counts

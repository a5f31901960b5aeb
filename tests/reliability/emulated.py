"""The soak's second half: jobs through the Azure adapters over the emulators (ACI in simulation mode on a stepped
clock, Azurite, Key Vault, Files), with the same injected faults at the ports' boundary."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from bench.environment import OURS_SUBSCRIPTION, Environment, PoolPlan
from tests.reliability.harness import RandomFaults, Sim, Tally, mixed

PLAN = PoolPlan("p1", "westeurope", max_groups=150, max_cores=250, creates_per_5min=2000, creates_per_hour=20_000)


def on_emulators(count: int, rate: float, seed: int) -> tuple[Tally, RandomFaults, float]:
    with tempfile.TemporaryDirectory() as state, Environment(Path(state), [PLAN], unthrottled=True) as env:
        faults = RandomFaults(rate, seed)
        service = env.stack.aci.service
        settings = env.services.settings.model_copy(update={"allow_inline_secrets": True})
        services = dataclasses.replace(env.services, settings=settings)
        sim = Sim(services, services.clock, plan=faults, evict=lambda name: service.evict(name) and None)

        def over() -> list[str]:
            held = env.groups_in(OURS_SUBSCRIPTION, PLAN.region)
            return [f"{PLAN.region}: {held} groups, over {PLAN.max_groups}"] if held > PLAN.max_groups else []

        sim.observe = over
        started = time.perf_counter()
        tally = sim.run(mixed(count, seed, prefix="e"), per_step=40)
        return tally, faults, time.perf_counter() - started

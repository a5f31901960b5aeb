"""``make soak``: 10,000 jobs with 1 % injected faults of every kind on the fakes in simulated time, then 1,000
through the emulators, printing the invariants' counts. Exits 1 unless every count that must be 0 is."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from tests.reliability.harness import POOL, RandomFaults, Sim, Tally, fakes, mixed

MUST_BE_ZERO = ("lost", "duplicate", "orphaned", "misreported", "over_commit")


def on_fakes(count: int, rate: float, seed: int) -> tuple[Tally, RandomFaults, float]:
    pools = [
        POOL.model_copy(update={"name": "p1", "max_groups": 120, "max_cores": 200}),
        POOL.model_copy(update={"name": "p2", "location": "northeurope", "max_groups": 80, "max_cores": 120}),
    ]
    services, clock, aci = fakes(pools)
    faults = RandomFaults(rate, seed)
    sim = Sim(services, clock, plan=faults, evict=aci.evict)
    started = time.perf_counter()
    tally = sim.run(mixed(count, seed), per_step=60)
    return tally, faults, time.perf_counter() - started


def report(name: str, tally: Tally, faults: RandomFaults, seconds: float) -> dict[str, Any]:
    line = {
        "run": name,
        **tally.counts(),
        "faults": dict(faults.counts),
        "steps": tally.steps,
        "simulated_hours": round(tally.simulated_seconds / 3600, 2),
        "wall_seconds": round(seconds, 1),
    }
    print(json.dumps(line))
    for problem in tally.problems()[:20]:
        print("  ", problem)
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--emulator-jobs", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    lines = [report("fakes", *on_fakes(args.jobs, args.rate, args.seed))]
    if args.emulator_jobs:
        from tests.reliability.emulated import on_emulators

        lines.append(report("emulators", *on_emulators(args.emulator_jobs, args.rate, args.seed)))
    bad = [line["run"] for line in lines if any(line[k] for k in MUST_BE_ZERO)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

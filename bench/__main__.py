"""``python -m bench``: run the scenarios, write ``<scenario>.json``, the timelines and ``report.md``."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.ours import PROFILE
from bench.plot import draw_tasks_timeline, draw_timeline
from bench.report import write_json, write_report
from bench.scenarios import PROFILES, SCENARIOS, SYSTEMS, ScenarioResult, merge, run_scenario

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
LONGEST_FIRST: list[tuple[str, tuple[str, ...]]] = [
    ("A", ("dispatcher",)),
    ("E", ("dispatcher",)),
    ("B", ("dispatcher",)),
    ("D", ("dispatcher",)),
    ("C", SYSTEMS),
    ("A", ("naive",)),
    ("B", ("naive",)),
    ("D", ("naive",)),
    ("E", ("naive",)),
    ("F", ("dispatcher",)),
    ("F", ("naive",)),
]
"""What runs in parallel: each throughput scenario's dispatcher and baseline apart, longest first, so that the
last to start are short and the workers finish together."""


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenario", "-s", action="append", choices=SCENARIOS, help="run only these (repeatable); default: all"
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="a few jobs per scenario, to check the pipeline")
    size.add_argument(
        "--quick",
        action="store_true",
        help="about a third of the work (default: the brief's sizes, 1,000 jobs, 10,000 groups, 5,000 messages, "
        "5,000 tasks in one array job)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results folder (default: bench/results)")
    parser.add_argument("--state-dir", type=Path, help="where the emulators keep state (default: a temporary folder)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="profile intake and the reconciler runs with pyinstrument, writing each scenario's call trees here",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="scenarios run at once, each in its own process and devstack (emulated-time results do not change; "
        "wall-clock figures then include the contention)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; returns the exit status."""
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.profile is not None:
        os.environ[PROFILE] = str(args.profile.resolve())  # read by each scenario's process
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    scenarios = args.scenario or list(SCENARIOS)
    args.out.mkdir(parents=True, exist_ok=True)
    state_root = args.state_dir or Path(tempfile.mkdtemp(prefix="bench-state-"))
    started = time.perf_counter()
    results: list[ScenarioResult] = []
    try:
        if args.parallel > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=args.parallel, mp_context=context) as pool:
                units = [(s, systems) for s, systems in LONGEST_FIRST if s in scenarios]
                futures = [
                    pool.submit(run_scenario, s, profile, state_root / f"{s}-{'-'.join(systems)}", systems)
                    for s, systems in units
                ]
                print(f"scenarios {', '.join(scenarios)} ({profile.name}), {args.parallel} at a time ...", flush=True)
                parts = [future.result() for future in futures]
                outcomes = [merge([p for p in parts if p.scenario == s]) for s in sorted(set(scenarios))]
        else:
            outcomes = []
            for scenario in scenarios:
                print(f"scenario {scenario} ({profile.name}) ...", flush=True)
                outcomes.append(run_scenario(scenario, profile, state_root / scenario))
        for result in outcomes:
            write_json(result, args.out)
            if result.scenario not in ("C", "F"):
                draw = draw_tasks_timeline if result.scenario == "E" else draw_timeline
                draw(result.scenario, result.data, result.raw, args.out / f"timeline-{result.scenario}.png")
            results.append(result)
            print(f"scenario {result.scenario} took {result.data['wall_s']} s", flush=True)
    finally:
        if args.state_dir is None:
            shutil.rmtree(state_root, ignore_errors=True)
    command = "python -m bench" + (" --smoke" if args.smoke else " --quick" if args.quick else "")
    if args.parallel > 1:
        command += f" --parallel {args.parallel}"
    report = write_report(
        results, args.out, command=command, wall_s=time.perf_counter() - started, parallel=args.parallel
    )
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

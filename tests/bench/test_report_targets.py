"""The report's checks of the brief's targets, on figures as the measures round them."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import TARGETS, _targets_section
from bench.scenarios import ScenarioResult

RESULTS = Path(__file__).parents[2] / "bench" / "results"


def test_arm_writes_per_attempt_at_exactly_create_delete_and_the_timeouts_stops_is_met() -> None:
    target = next(t for t in TARGETS if t.name == "ARM writes per attempt")
    metrics = {"attempts": 320, "timeouts": 6, "arm_writes_per_attempt": round((640 + 6) / 320, 3)}  # 2.019
    figure = target.figure(metrics)
    assert figure is not None
    assert target.met(figure, metrics)
    over = {**metrics, "arm_writes_per_attempt": round((640 + 7) / 320, 3)}  # one more write: a retried delete
    assert not target.met(round((640 + 7) / 320, 3), over)


def test_a_miss_by_less_than_the_rounding_is_shown_with_a_third_decimal() -> None:
    data = json.loads((RESULTS / "D.json").read_text())
    data["results"]["dispatcher"]["efficiency_vs_ideal"] = 0.947
    result = ScenarioResult("D", data["title"], "full", data=data)
    row = next(line for line in _targets_section([result]) if line.startswith("| throughput efficiency"))
    assert "D 0.947 (missed)" in row

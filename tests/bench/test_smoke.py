"""The benchmark pipeline end to end on a few jobs: devstack, both systems, JSON, report and timeline PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Given the smoke profile of scenario A, when ``python -m bench --smoke -s A --parallel 2`` runs (as
    ``make bench`` does: the dispatcher and the baseline in two processes), its results folder."""
    out = tmp_path_factory.mktemp("bench-results")
    assert main(["--smoke", "-s", "A", "--parallel", "2", "--out", str(out)]) == 0
    return out


def test_the_run_writes_the_scenario_json_the_report_and_a_timeline_png(smoke_results: Path) -> None:
    assert (smoke_results / "A.json").is_file()
    assert (smoke_results / "report.md").read_text().startswith("# Benchmark results")
    png = smoke_results / "timeline-A.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_job_reaches_a_terminal_status_and_no_group_is_left(smoke_results: Path) -> None:
    data = json.loads((smoke_results / "A.json").read_text())
    for system in ("dispatcher", "naive"):
        result = data["results"][system]
        assert result["completed"] == data["jobs"] == 20
        assert sum(result["statuses"].values()) == 20
        assert result["groups_left"] == 0


def test_the_json_carries_every_metric_the_report_compares(smoke_results: Path) -> None:
    data = json.loads((smoke_results / "A.json").read_text())
    assert data["bound"]["formula_per_hour"] == 300.0
    ours = data["results"]["dispatcher"]
    assert ours["efficiency_vs_ideal"] is not None
    assert set(ours["rejections"]) == {"quota_409", "delete_quota_409", "throttled_429"}
    assert ours["arm_calls_per_job"]["create"] >= 1.0
    assert ours["arm_writes_per_attempt"] is not None
    assert ours["latency_s"]["exit_to_deleted"]["count"] > 0
    assert ours["cpu_ms_per_job"]["intake"] is not None
    assert ours["ticks"]["count"] > 0
    assert data["raw"]["dispatcher"]["timeline"]


def test_the_report_sets_our_figures_beside_the_baselines(smoke_results: Path) -> None:
    report = (smoke_results / "report.md").read_text()
    assert "| metric | dispatcher | naive baseline | ratio |" in report
    assert "efficiency vs ideal" in report
    assert "timeline-A.png" in report


def test_the_report_checks_each_target_against_our_figures_and_explains_a_miss(smoke_results: Path) -> None:
    report = (smoke_results / "report.md").read_text()
    assert "| target | goal | our figures | met |" in report
    assert "| quota rejections (409 ContainerGroupQuotaReached on create or delete, 429) | 0 | A 0 | yes |" in report
    assert "| intake CPU per job (recorded, not launched by intake) | ≤ 5 ms |" in report
    assert "| p95 container exit → group deleted | ≤ 15 s | A " in report
    assert "| enqueue → status Running seen p50, free capacity | ≤ 5 s | A " in report
    assert "| reconciler CPU per job, against the naive baseline's in the same run | ≤ 1.5x | A " in report
    assert ("(missed)" in report) == ("Why a target is missed, and what would fix it:" in report)


@pytest.fixture(scope="module")
def scenario_e_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Given the smoke profile of scenario E (400 tasks of 30 s over a 10-minute horizon), when
    ``python -m bench --smoke -s E`` runs (both systems in one devstack, one after the other), its results folder."""
    out = tmp_path_factory.mktemp("bench-e-results")
    assert main(["--smoke", "-s", "E", "--out", str(out)]) == 0
    return out


def test_scenario_e_one_array_job_ends_more_tasks_than_one_group_per_task_without_rejections(
    scenario_e_results: Path,
) -> None:
    data = json.loads((scenario_e_results / "E.json").read_text())
    ours, naive = data["results"]["dispatcher"], data["results"]["naive"]
    assert data["tasks"] == 400
    assert data["bound"]["tasks_per_group"] == 16
    assert data["bound"]["create_ceiling_per_hour"] == {"dispatcher": 4800, "naive": 300}
    assert ours["completed"] > naive["completed"]
    assert ours["tasks_per_hour"] > naive["tasks_per_hour"]
    assert data["ratio_tasks_per_hour"] == pytest.approx(ours["tasks_per_hour"] / naive["tasks_per_hour"], rel=0.01)
    assert ours["rejections"] == {"quota_409": 0, "delete_quota_409": 0, "throttled_429": 0}
    assert ours["tasks_per_group_measured"] == 16.0


def test_scenario_e_writes_its_timeline_and_its_report_section(scenario_e_results: Path) -> None:
    png = scenario_e_results / "timeline-E.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (scenario_e_results / "report.md").read_text()
    assert "## Scenario E:" in report
    assert "| tasks/h |" in report
    assert "packed tasks/h against one group per task (E)" in report
    timeline = json.loads((scenario_e_results / "E.json").read_text())["raw"]["dispatcher"]["timeline"]
    assert timeline[-1]["completed"] == 400

"""``make demo`` runs in CI too: the demo starts its own stack, runs every example and checks the outcome."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devstack.stack import ROOT

pytestmark = pytest.mark.slow


def test_the_demo_runs_every_example_to_the_expected_end_and_exits_0() -> None:
    # Given a fresh stack started by the demo itself, as `make demo` runs it
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("DISPATCHER_URL", None)
    env.pop("DISPATCHER_KEY", None)
    # When the demo runs
    completed = subprocess.run(
        [sys.executable, "-m", "devstack.demo"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    # Then every expectation held, the transcript shows the result file, and nothing was logged at INFO
    transcript = completed.stdout + completed.stderr
    assert completed.returncode == 0, transcript
    assert "Every example ended as expected." in completed.stdout
    assert "report for 2026-11-22: 2 input files" in completed.stdout
    assert "no container group left" in completed.stdout
    assert " INFO " not in transcript

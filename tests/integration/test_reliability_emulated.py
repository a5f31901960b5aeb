"""The fault suite's small variant through the Azure adapters over the emulators (the soak runs 1,000)."""

from __future__ import annotations

from tests.reliability.emulated import on_emulators


def test_jobs_through_the_emulators_with_injected_faults_keep_every_invariant() -> None:
    tally, faults, _ = on_emulators(80, 0.03, seed=3)
    assert tally.problems() == []
    assert sum(faults.counts.values()) > 0

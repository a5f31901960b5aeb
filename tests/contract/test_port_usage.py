"""One contract for the UsageLedger port (with the job records that write its pending entries), run against the
fake and the Table adapter over Azurite."""

from __future__ import annotations

import datetime as dt

from dispatcher.domain.jobs import Attempt, Status
from dispatcher.domain.usage import DayTotal, Usage
from tests.contract.conftest import JobData
from tests.contract.test_port_job_records import NOW, record

DAY = NOW.date()


def finish(job_data: JobData, job_id: str, team: str | None, seconds: float = 100.0, **labels: str) -> None:
    """``job_id`` recorded, then Succeeded after one attempt of 2 vCPU and 4 GB billed for ``seconds``."""
    attempt = Attempt(
        number=1,
        group=f"{job_id}-a1",
        pool="p1",
        location="westeurope",
        reserved_at=NOW,
        cores=2.0,
        memory_gb=4.0,
        billed_seconds=seconds,
        cost=0.5,
    )
    queued = job_data.records.insert(record(job_id, team=team, labels={**labels, **({"team": team} if team else {})}))
    running = queued.value.with_attempt(attempt).transition(Status.RUNNING, NOW)
    written = job_data.records.replace(queued, running)
    job_data.records.replace(written, running.transition(Status.SUCCEEDED, NOW + dt.timedelta(minutes=5)))


def test_an_ended_job_leaves_one_pending_entry_with_what_it_used(job_data: JobData) -> None:
    finish(job_data, "a", "ml", project="atlas")
    [entry] = job_data.usage.pending(10)
    assert (entry.job_id, entry.day, entry.team, dict(entry.labels)) == ("a", DAY, "ml", {"project": "atlas"})
    assert entry.usage == Usage(jobs=1, vcpu_seconds=200.0, gb_seconds=400.0, cost=0.5)


def test_folding_adds_entries_to_the_days_total_and_removes_them_once(job_data: JobData) -> None:
    finish(job_data, "a", "ml", project="atlas")
    finish(job_data, "b", "ml", seconds=50.0, project="zeus")
    entries = job_data.usage.pending(10)
    total = job_data.usage.day_total(DAY, "ml")
    assert job_data.usage.fold(total, entries)
    assert job_data.usage.pending(10) == []
    assert not job_data.usage.fold(total, entries)  # a repeat on the stale total changes nothing
    [folded] = job_data.usage.totals(DAY, DAY)
    assert (folded.team, folded.usage) == ("ml", Usage(2, 300.0, 600.0, 1.0))
    assert folded.by_label["project=zeus"] == Usage(1, 100.0, 200.0, 0.5)
    assert job_data.usage.totals(DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)) == []
    assert job_data.usage.day_total(DAY, "web") == DayTotal(DAY, "web")

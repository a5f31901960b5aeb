"""Launch queued jobs in the scheduling order (:mod:`dispatcher.core.scheduling`) while some pool has room.

The pools' states come first (as the reconciler just read or wrote them), so a run with every pool full reads
nothing else. Each launch returns the state its reservation wrote, so pools are read again only after some other
write. A queued job that fits no pool now is passed over by its index entry alone, without reading its record.
Each launch is contained: one that fails is recorded on its job and the scheduler goes on with the next.
"""

from __future__ import annotations

from dispatcher.core.scheduling import has_room, worth_trying
from dispatcher.service.launch import Capacity, Outcome, try_launch
from dispatcher.service.records import note_error_of
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services

SCHEDULE_BATCH = 200


def schedule(services: Services, report: RunReport, capacity: Capacity) -> None:
    """Launch queued jobs in order."""
    pools = services.settings.pools
    now = services.clock.now()
    if not has_room(capacity.states(), now):
        return  # every pool is full or rate-limited for any job: the queue is not read
    for entry in services.queue.queued(SCHEDULE_BATCH):
        if report.out_of_time():
            return
        if not worth_trying(entry, capacity.states(), pools, now):
            continue
        with report.contained(f"launch {entry.job_id}", on_error=note_error_of(services, entry.job_id)):
            found = services.records.get(entry.job_id)
            if found is None:
                continue
            if try_launch(services, found, capacity).outcome is Outcome.LAUNCHED:
                report.launched += 1
        if not has_room(capacity.states(), now):
            return

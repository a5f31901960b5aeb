"""Cancelling a job: a queued or waiting one ends at once (its dependants fail, naming it, unless they wait for
it with condition Completed); a launched one is flagged, and the reconciler stops its group."""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.domain.errors import Conflict
from dispatcher.domain.identity import Actor
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.service.records import commit
from dispatcher.service.services import Services

MAX_RACES = 5


@dataclass(frozen=True)
class Cancelled:
    """What a cancel came to: the record after it, or ``None`` for an unknown job; ``settled`` is False when the
    record kept changing under the request (the caller may try again)."""

    record: JobRecord | None
    settled: bool = True


def cancel(services: Services, job_id: str, by: Actor | None = None) -> Cancelled:
    """Cancel ``job_id`` on behalf of ``by``. Idempotent: a repeat re-flags the reservation and changes nothing
    else (the first to ask stays recorded)."""
    for _ in range(MAX_RACES):
        found = services.records.get(job_id)
        if found is None:
            return Cancelled(None)
        record = found.value
        if record.status.terminal or record.cancel_requested:
            if not record.status.terminal:
                _tell_reconciler(services, record)  # a repeat makes sure the reservation carries the cancel
            return Cancelled(record)
        now = services.clock.now()
        if record.status in (Status.QUEUED, Status.WAITING):
            updated = record.transition(
                Status.CANCELLED, now, reason="cancelled on request", cancel_requested=True, cancelled_by=by
            )
        else:
            updated = record.model_copy(update={"cancel_requested": True, "updated_at": now, "cancelled_by": by})
        try:
            commit(services, found, updated)
        except Conflict:
            continue
        if not updated.status.terminal:
            _tell_reconciler(services, updated)
        return Cancelled(updated)
    return Cancelled(None, settled=False)


def _tell_reconciler(services: Services, record: JobRecord) -> None:
    """Flag the cancel on the attempt's reservation: the reconciler reads a running job's record only when asked."""
    attempt = record.current
    pool = services.settings.pool(attempt.pool) if attempt is not None else None
    if attempt is not None and pool is not None:
        services.ledger.mark(pool, attempt.group, cancel_requested=True)

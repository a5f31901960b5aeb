"""Lifecycle events as CloudEvents 1.0 JSON. Pure: building an event does no I/O.

An event's id is derived from the job, the attempt and the status it reports, so a re-published event
carries the same id and consumers can deduplicate. Events never carry a secret: they are built only
from the job record, which holds none.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dispatcher.domain.jobs import JobRecord, Status

SOURCE = "/aci-dispatcher"
TYPE_PREFIX = "dispatcher.job."
EVENT_TYPES = {
    Status.QUEUED: "queued",
    Status.RUNNING: "started",
    Status.SUCCEEDED: "succeeded",
    Status.FAILED: "failed",
    Status.TIMED_OUT: "timedout",
    Status.CANCELLED: "cancelled",
    Status.REJECTED: "rejected",
}


def job_event(record: JobRecord, kind: str, *, instance: str, links: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudEvent of ``kind`` (queued, started, ...) for ``record`` as it is now."""
    attempt = record.current
    number = attempt.number if attempt else 0
    event_id = hashlib.sha256(f"{instance}|{record.id}|{number}|{kind}".encode()).hexdigest()[:32]
    duration = None
    if attempt and attempt.started_at and attempt.finished_at:
        duration = (attempt.finished_at - attempt.started_at).total_seconds()
    data: dict[str, Any] = {
        "jobId": record.id,
        "attempt": number,
        "status": record.status.value,
        "reason": record.reason,
        "exitCodes": attempt.exit_codes if attempt else {},
        "durationSeconds": duration,
        "cost": round(record.cost, 6),
        "currency": record.currency,
        "labels": record.labels,
        "links": links or {},
    }
    if record.errors:
        data["errors"] = [{"loc": e.loc, "message": e.message} for e in record.errors]
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": f"{SOURCE}/{instance}",
        "type": TYPE_PREFIX + kind,
        "subject": f"jobs/{record.id}",
        "time": record.updated_at.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }

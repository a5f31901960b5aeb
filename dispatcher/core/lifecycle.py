"""What a job becomes after an attempt ends, and what the attempt cost. Pure.

:mod:`dispatcher.service.finish` gathers the facts (the group's final view, its logs, the workspace's summary),
calls these functions and writes their result.
"""

from __future__ import annotations

import datetime as dt

from dispatcher.domain.jobs import Attempt, JobRecord, OutputSummary, Status
from dispatcher.settings import Prices


def cost(attempt: Attempt, end: dt.datetime, prices: Prices, *, spot: bool) -> tuple[float, float]:
    """Billed seconds, from the create until the group stopped, and their price."""
    start = attempt.launched_at or attempt.reserved_at
    seconds = max((end - start).total_seconds(), 0.0)
    rate = attempt.cores * prices.vcpu_second + attempt.memory_gb * prices.gb_second
    if spot:
        rate *= 1 - prices.spot_discount
    return round(seconds, 3), round(seconds * rate, 6)


def without_old_tails(record: JobRecord) -> JobRecord:
    """Keep log tails for the latest attempt only, so the record stays small; every full log is in the log store."""
    latest = record.current
    attempts = [
        a
        if a is latest
        else a.model_copy(update={"containers": [c.model_copy(update={"log_tail": ""}) for c in a.containers]})
        for a in record.attempts
    ]
    return record.model_copy(update={"attempts": attempts})


MAX_LOST_ATTEMPTS = 10
"""Attempts the platform may take away (Spot evictions) before the job fails: a region that keeps evicting should
not keep a job forever."""


def _lost(record: JobRecord) -> int:
    return sum(1 for a in record.attempts if a.lost)


def retryable(record: JobRecord, outcome: Status) -> bool:
    """Whether an attempt that ended in ``outcome`` earns the job another attempt. A lost attempt always does (up
    to :data:`MAX_LOST_ATTEMPTS`) and is not counted against the job's retries."""
    retries = record.job_spec.retries
    if record.cancel_requested or record.group_of is not None:  # a group's failed tasks are retried in a new group
        return False
    current = record.current
    if current is not None and current.lost:
        return _lost(record) < MAX_LOST_ATTEMPTS
    failed = outcome is Status.FAILED or (outcome is Status.TIMED_OUT and retries.on_timeout)
    if not failed:
        return False
    return retries.count + 1 - (len(record.attempts) - _lost(record)) > 0


def after_attempt(
    record: JobRecord, outcome: Status, reason: str, now: dt.datetime, outputs: OutputSummary | None
) -> JobRecord:
    """The job after its current attempt ended in ``outcome``: queued for a retry after its backoff when the
    policy allows, else in its final status. ``record``'s current attempt already holds the outcome."""
    record = without_old_tails(record)
    kept = outputs if outputs is not None else record.outputs
    if retryable(record, outcome):
        lost = record.current is not None and record.current.lost
        charged = len(record.attempts) - _lost(record)
        delay = dt.timedelta(seconds=0 if lost else record.job_spec.retries.delay(charged))
        return record.transition(
            Status.QUEUED,
            now,
            not_before=now + delay,
            reason=f"attempt {len(record.attempts)}: {reason}; retrying",
            outputs=kept,
        )
    return record.transition(outcome, now, reason=reason, outputs=kept)

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


def retryable(record: JobRecord, outcome: Status) -> bool:
    """Whether an attempt that ended in ``outcome`` earns the job another attempt."""
    retries = record.job_spec.retries
    failed = outcome is Status.FAILED or (outcome is Status.TIMED_OUT and retries.on_timeout)
    if record.cancel_requested or not failed:
        return False
    return retries.count + 1 - len(record.attempts) > 0


def after_attempt(
    record: JobRecord, outcome: Status, reason: str, now: dt.datetime, outputs: OutputSummary | None
) -> JobRecord:
    """The job after its current attempt ended in ``outcome``: queued for a retry after its backoff when the
    policy allows, else in its final status. ``record``'s current attempt already holds the outcome."""
    record = without_old_tails(record)
    kept = outputs if outputs is not None else record.outputs
    if retryable(record, outcome):
        delay = dt.timedelta(seconds=record.job_spec.retries.delay(len(record.attempts)))
        return record.transition(
            Status.QUEUED,
            now,
            not_before=now + delay,
            reason=f"attempt {len(record.attempts)}: {reason}; retrying",
            outputs=kept,
        )
    return record.transition(outcome, now, reason=reason, outputs=kept)

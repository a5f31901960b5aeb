"""Transient errors retried with backoff inside one invocation, within a time budget.

The intake needs this because a failed invocation is no pause: Service Bus redelivers an abandoned message at once
(abandon has no delay), so ten deliveries spent on a two-second storage outage would dead-letter the submission.
Retrying inside the invocation holds the message under its lock, which the Functions host renews for up to
``maxAutoLockRenewalDuration`` (``host.json``), so an outage shorter than the budget costs one delivery and loses
nothing; a longer one gives the message back, and each redelivery gets a new budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from dispatcher.domain.errors import CloudError
from dispatcher.ports import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY = 0.5
MAX_DELAY = 15.0


def delays(budget: float) -> list[float]:
    """The waits between tries: doubling from half a second, at most 15 s each, summing to at most ``budget``."""
    out: list[float] = []
    delay, total = FIRST_DELAY, 0.0
    while total + delay <= budget:
        out.append(delay)
        total += delay
        delay = min(delay * 2, MAX_DELAY)
    if total < budget and budget - total >= FIRST_DELAY:
        out.append(budget - total)
    return out


def retrying(clock: Clock, budget: float, what: str, work: Callable[[], T]) -> T:
    """Run ``work``; on a transient :class:`CloudError` wait and run it again, until ``budget`` seconds of waits
    are spent. The last error, or any other one, is raised. ``work`` must be safe to repeat (every write the
    service layer makes is)."""
    waits = iter(delays(budget))
    tries = 0
    while True:
        tries += 1
        try:
            return work()
        except CloudError as exc:
            wait = next(waits, None) if exc.transient else None
            if wait is None:
                if exc.transient and tries > 1:
                    log.warning("%s: still failing after %d tries over %.0f s: %s", what, tries, budget, exc)
                raise
            log.info("%s: transient error (try %d), trying again in %.1f s: %s", what, tries, wait, exc)
            clock.sleep(wait)

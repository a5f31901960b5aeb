"""Waking the reconciler between its timer's runs.

The timer runs the reconciler rarely (every minute by default: the idle cost). While work is active (groups
held, jobs queued, or a launch just made) each run ends by asking for the next one ``reconcile_interval_seconds``
later, and intake asks for the very next one after a launch (:data:`AFTER_LAUNCH_SECONDS`) so that the new group
is seen Running at once. A request is a
scheduled Service Bus message to the wake queue (:class:`~dispatcher.ports.Waker`), named after its moment so
that the queue's duplicate detection folds requests for the same moment into one run. A request that fails is
logged and dropped: the timer's next run picks the work up, at most one timer period late.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from dispatcher.domain.placement import PoolState
from dispatcher.service.services import Services

log = logging.getLogger(__name__)

AFTER_LAUNCH_SECONDS = 1.0
"""How soon after a launch intake asks for a run: the next interval's boundary, a second at least."""


def wake_soon(services: Services, seconds: float | None = None) -> None:
    """Ask for a reconciler run ``seconds`` from now (default: one interval); never raises. Runs happen at
    whole multiples of the interval, the request rounded up, so there is at most one run per interval."""
    if services.waker is None:
        return
    delay = services.settings.reconcile_interval_seconds if seconds is None else seconds
    when = services.clock.now() + dt.timedelta(seconds=delay)
    try:
        services.waker.wake_at(when)
    except Exception as exc:  # the timer's next run does the work
        log.warning("could not schedule the reconciler's next run at %s: %s", when.isoformat(), exc)


def active(states: Sequence[PoolState], queued: int | None, launched: int) -> bool:
    """Whether a run should be followed by another soon: groups held in a pool, jobs queued (or not counted), or
    a launch made."""
    return launched > 0 or queued is None or queued > 0 or any(state.groups > 0 for state in states)

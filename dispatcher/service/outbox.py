"""Publishing the outbox.

A transition's events are written in the same atomic write as the transition (:class:`~dispatcher.ports.JobRecords`
keeps them pending in the outbox), then published at once and cleared. A publish that fails leaves them pending;
every reconciler run drains what is left, oldest first. Delivery is at least once, with the stable ids events have.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from dispatcher.domain.events import CloudEvent
from dispatcher.service.services import Services

log = logging.getLogger(__name__)

DRAIN_BATCH = 500


def publish(services: Services, events: Sequence[CloudEvent]) -> int:
    """Publish ``events`` (already pending in the outbox) in order and clear each one sent; returns how many were.

    A failure stops at that event and leaves it and the rest pending for the next drain: it is logged, never
    raised, because the transition they report is already durable.
    """
    sent = 0
    for event in events:
        try:
            services.events.publish(event)
        except Exception as exc:  # any failure: the event stays in the outbox
            log.warning("event %s (%s) stays in the outbox: %s", event.id, event.type, exc)
            return sent
        sent += 1
        try:
            services.outbox.clear(event)
        except Exception as exc:  # published but not cleared: the next drain publishes it again (same id)
            log.warning("event %s was published but not cleared: %s", event.id, exc)
    return sent


def drain(services: Services, limit: int = DRAIN_BATCH) -> tuple[int, int]:
    """Publish the outbox's pending events, oldest first; returns (published, still pending of those read)."""
    pending = services.outbox.pending(limit)
    sent = publish(services, pending)
    return sent, len(pending) - sent

"""Every write of a job record: with the events its change announces (published after), or a note of an error."""

from __future__ import annotations

import logging
from collections.abc import Callable

from dispatcher.domain.events import CloudEvent, transition_events
from dispatcher.domain.jobs import JobRecord
from dispatcher.ports import Versioned
from dispatcher.service.outbox import publish
from dispatcher.service.services import Services

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000


def create(services: Services, record: JobRecord) -> Versioned[JobRecord]:
    """Insert a new record with the events it implies, then publish them."""
    written, events = insert(services, record)
    publish(services, events)
    return written


def insert(services: Services, record: JobRecord) -> tuple[Versioned[JobRecord], list[CloudEvent]]:
    """Insert a new record with the events it implies, left in the outbox: the caller publishes them, or the next
    reconciler run does, draining the outbox before it launches anything."""
    events = transition_events(None, record, instance=services.settings.instance)
    return services.records.insert(record, events), events


def commit(services: Services, found: Versioned[JobRecord], new: JobRecord) -> Versioned[JobRecord]:
    """Write ``new`` over ``found`` (conditional on its ETag) with the events the change implies, then publish them.

    Raises :class:`~dispatcher.domain.errors.Conflict` when the record changed since ``found`` was read.
    """
    events = transition_events(found.value, new, instance=services.settings.instance)
    written = services.records.replace(found, new, events)
    publish(services, events)
    return written


def note_error(services: Services, found: Versioned[JobRecord], error: str) -> None:
    """Record ``error`` as the job's ``lastError``, without changing its status; best effort."""
    try:
        services.records.replace(found, found.value.model_copy(update={"last_error": error[:MAX_ERROR_CHARS]}))
    except Exception as exc:  # the error is logged either way; the record keeps its previous one
        log.warning("could not record the last error of job %s: %s", found.value.id, exc)


def note_error_of(services: Services, job_id: str) -> Callable[[str], None]:
    """What records a failed step's error on job ``job_id`` (read now), unless the job has ended."""

    def note(error: str) -> None:
        found = services.records.get(job_id)
        if found is not None and not found.value.status.terminal:
            note_error(services, found, error)

    return note

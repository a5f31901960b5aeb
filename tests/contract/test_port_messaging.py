"""One contract for the JobQueue and Events ports, run against the fakes and the Service Bus adapters over the
Service Bus emulator."""

from __future__ import annotations

import datetime as dt

from dispatcher.domain.events import CloudEvent
from tests.contract.conftest import Messaging


def event(n: int) -> CloudEvent:
    return CloudEvent(
        id=f"event-{n}",
        source="/aci-dispatcher/test",
        type="dispatcher.job.queued",
        subject=f"jobs/job-{n}",
        time=dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC),
        data={"jobId": f"job-{n}"},
    )


def test_a_message_is_sent_with_its_id_and_content_type(messaging: Messaging) -> None:
    messaging.queue.send(b'{"jobRef": "job-1"}', "job-1", "application/vnd.aci-dispatcher.job-ref+json")
    assert messaging.sent() == [(b'{"jobRef": "job-1"}', "job-1", "application/vnd.aci-dispatcher.job-ref+json")]
    messaging.queue.probe()


def test_events_are_published_with_their_ids_as_message_ids(messaging: Messaging) -> None:
    for n in range(3):
        messaging.events.publish(event(n))
    assert sorted(messaging.published()) == ["event-0", "event-1", "event-2"]

"""The reconciler's wake-ups on the Service Bus emulator: a message scheduled per moment, delivered at it, and
requests for the same moment folded into one by the queue's duplicate detection."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest
from azure.servicebus import ServiceBusClient

from devstack.servicebus import default_config
from dispatcher.adapters.azure.servicebus import ServiceBusWaker
from tests.fixtures.servicebus import Entities

CONFIG = default_config(
    queues={
        "wake": {
            "MaxDeliveryCount": 1,
            "RequiresDuplicateDetection": True,
            "DuplicateDetectionHistoryTimeWindow": "PT10M",
            "DefaultMessageTimeToLive": "PT10M",
        }
    }
)


@pytest.fixture
def entities(make_servicebus: Callable[..., Entities]) -> Entities:
    return make_servicebus(CONFIG)


def test_requests_for_one_moment_make_one_message_delivered_at_that_moment(entities: Entities) -> None:
    with ServiceBusClient.from_connection_string(entities.connection_string) as client:
        waker = ServiceBusWaker(client, entities.name("wake"), slot_seconds=2)
        asked = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        for _ in range(3):  # the reconciler and two intakes ask for the same moment
            waker.wake_at(asked)
        waker.close()
        with client.get_queue_receiver(entities.name("wake")) as receiver:
            early = receiver.receive_messages(max_message_count=10, max_wait_time=0.2)
            received = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not received:
                received += receiver.receive_messages(max_message_count=10, max_wait_time=1)
            for message in received:
                receiver.complete_message(message)
            more = receiver.receive_messages(max_message_count=10, max_wait_time=1)

    assert early == []  # scheduled, not delivered at once
    assert len(received) == 1
    assert more == []  # the other two were duplicates of the first
    (message,) = received
    assert message.message_id.startswith("wake-")
    assert message.enqueued_time_utc is not None
    assert message.enqueued_time_utc >= asked.replace(microsecond=0) - dt.timedelta(seconds=1)

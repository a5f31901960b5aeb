"""The asynchronous azure-servicebus SDK against the devstack Service Bus emulator."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import MessagingEntityNotFoundError, ServiceBusError

from devstack.servicebus import default_config
from tests.fixtures.servicebus import Entities, MakeServiceBus

DEADLINE = 20.0


@pytest.fixture
async def client(servicebus_emulator: Entities) -> AsyncIterator[ServiceBusClient]:
    async with servicebus_emulator.aio_client() as sb:
        yield sb


async def receive_until(
    receive: Callable[[], Awaitable[list[ServiceBusReceivedMessage]]], count: int
) -> list[ServiceBusReceivedMessage]:
    """Keep receiving until ``count`` messages arrived or the deadline passes."""
    got: list[ServiceBusReceivedMessage] = []
    end = time.monotonic() + DEADLINE
    while len(got) < count and time.monotonic() < end:
        got.extend(await receive())
    return got


async def test_async_sent_batch_round_trips_properties_and_completes(
    client: ServiceBusClient, servicebus_emulator: Entities
) -> None:
    async with client.get_queue_sender("test-queue") as sender:
        batch = await sender.create_message_batch()
        batch.add_message(ServiceBusMessage("a", application_properties={"k": "v"}, correlation_id="c-1"))
        batch.add_message(ServiceBusMessage("b", subject="s"))
        await sender.send_messages(batch)
    async with client.get_queue_receiver("test-queue") as receiver:
        got = await receive_until(lambda: receiver.receive_messages(max_message_count=2, max_wait_time=5), 2)
        for message in got:
            await receiver.complete_message(message)
    assert [str(m) for m in got] == ["a", "b"]
    assert got[0].application_properties == {b"k": b"v"}
    assert (got[0].correlation_id, got[1].subject) == ("c-1", "s")
    assert servicebus_emulator.queue_depth("test-queue") == 0


async def test_async_receive_and_delete_and_peek(client: ServiceBusClient, servicebus_emulator: Entities) -> None:
    async with client.get_queue_sender("jobs") as sender:
        await sender.send_messages([ServiceBusMessage("x"), ServiceBusMessage("y")])
    async with client.get_queue_receiver("jobs", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
        peeked = await receiver.peek_messages(max_message_count=5)
        got = await receive_until(lambda: receiver.receive_messages(max_message_count=2, max_wait_time=5), 2)
    assert [str(m) for m in peeked] == ["x", "y"]
    assert sorted(str(m) for m in got) == ["x", "y"]
    assert servicebus_emulator.queue_depth("jobs") == 0


async def test_async_abandon_defer_and_dead_letter(client: ServiceBusClient, servicebus_emulator: Entities) -> None:
    async with client.get_queue_sender("jobs") as sender:
        await sender.send_messages([ServiceBusMessage("retry"), ServiceBusMessage("defer"), ServiceBusMessage("dead")])
    async with client.get_queue_receiver("jobs") as receiver:
        first = await receive_until(lambda: receiver.receive_messages(max_message_count=3, max_wait_time=5), 3)
        by_body = {str(m): m for m in first}
        await receiver.abandon_message(by_body["retry"])
        await receiver.defer_message(by_body["defer"])
        await receiver.dead_letter_message(by_body["dead"], reason="Invalid", error_description="why")
        (again,) = await receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        renewed = await receiver.renew_message_lock(again)
        await receiver.complete_message(again)
        deferred_number = by_body["defer"].sequence_number
        assert deferred_number is not None
        (deferred,) = await receiver.receive_deferred_messages([deferred_number])
        await receiver.complete_message(deferred)
    async with client.get_queue_receiver("jobs", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
        (dead,) = await receive_until(lambda: dead_letters.receive_messages(max_wait_time=5), 1)
        await dead_letters.complete_message(dead)
    assert (str(again), again.delivery_count) == ("retry", 1)
    assert renewed is not None
    assert str(deferred) == "defer"
    assert (dead.dead_letter_reason, dead.dead_letter_error_description) == ("Invalid", "why")
    assert servicebus_emulator.counts("jobs").dead_letter == 0
    assert servicebus_emulator.queue_depth("jobs") == 0


async def test_async_schedule_and_cancel(client: ServiceBusClient, servicebus_emulator: Entities) -> None:
    when = datetime.now(UTC) + timedelta(seconds=2)
    async with client.get_queue_sender("jobs") as sender:
        kept, cancelled = await sender.schedule_messages([ServiceBusMessage("kept"), ServiceBusMessage("gone")], when)
        await sender.cancel_scheduled_messages(cancelled)
    async with client.get_queue_receiver("jobs") as receiver:
        (message,) = await receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        await receiver.complete_message(message)
    assert (str(message), message.sequence_number) == ("kept", kept)
    assert servicebus_emulator.queue_depth("jobs") == 0


async def test_async_max_delivery_count_dead_letters(client: ServiceBusClient, servicebus_emulator: Entities) -> None:
    async with client.get_queue_sender("jobs") as sender:
        await sender.send_messages(ServiceBusMessage("poison"))
    async with client.get_queue_receiver("jobs") as receiver:
        for _ in range(3):
            (message,) = await receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
            await receiver.abandon_message(message)
    (dead,) = servicebus_emulator.dead_letters("jobs")
    assert (dead.body, dead.dead_letter_reason, dead.delivery_count) == (b"poison", "MaxDeliveryCountExceeded", 3)


async def test_async_topic_fan_out_and_duplicate_detection(make_servicebus: MakeServiceBus) -> None:
    emulator = make_servicebus(
        default_config(topics={"events": ["one", "two"]}, queues={"dedup": {"RequiresDuplicateDetection": True}})
    )
    async with emulator.aio_client() as sb:
        async with sb.get_topic_sender("events") as sender:
            await sender.send_messages(ServiceBusMessage("fan"))
        async with sb.get_queue_sender("dedup") as sender:
            await sender.send_messages(
                [ServiceBusMessage("1", message_id="id"), ServiceBusMessage("2", message_id="id")]
            )
        async with sb.get_subscription_receiver("events", "two") as receiver:
            (message,) = await receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
            await receiver.complete_message(message)
    assert str(message) == "fan"
    assert [m.body for m in emulator.messages("events/Subscriptions/one")] == [b"fan"]
    assert [m.body for m in emulator.messages("dedup")] == [b"1"]


async def test_async_unknown_entity_and_session_receiver_are_refused(client: ServiceBusClient) -> None:
    with pytest.raises(MessagingEntityNotFoundError):
        async with client.get_queue_sender("missing") as sender:
            await sender.send_messages(ServiceBusMessage("x"))
    with pytest.raises(ServiceBusError, match=r"[Ss]essions are not supported"):
        async with client.get_queue_receiver("jobs", session_id="s-1") as receiver:
            await receiver.receive_messages(max_wait_time=1)

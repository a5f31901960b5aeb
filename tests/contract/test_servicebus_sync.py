"""The synchronous azure-servicebus SDK against the devstack Service Bus emulator."""

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import MessageLockLostError, MessagingEntityNotFoundError, ServiceBusError

from devstack.servicebus import EntityCounts, ServiceBusEmulator, default_config
from tests.fixtures.servicebus import Entities, MakeServiceBus
from tests.fixtures.waiting import wait_for

DEADLINE = 20.0


@pytest.fixture
def client(servicebus_emulator: Entities) -> Iterator[ServiceBusClient]:
    with servicebus_emulator.client() as sb:
        yield sb


def receive_until(
    receive: Callable[[], list[ServiceBusReceivedMessage]], count: int, deadline: float = DEADLINE
) -> list[ServiceBusReceivedMessage]:
    """Keep receiving until ``count`` messages arrived or the deadline passes."""
    got: list[ServiceBusReceivedMessage] = []
    end = time.monotonic() + deadline
    while len(got) < count and time.monotonic() < end:
        got.extend(receive())
    return got


def test_sent_message_arrives_with_every_property_intact(client: ServiceBusClient) -> None:
    # Given a message with the properties a sender may set
    sent = ServiceBusMessage(
        b"payload",
        application_properties={"job": "j-1", "attempt": 2},
        content_type="application/json",
        correlation_id="corr-1",
        subject="job.submitted",
        message_id="m-1",
        reply_to="replies",
        to="somewhere",
        time_to_live=timedelta(minutes=5),
    )
    # When it is sent and received
    with client.get_queue_sender("test-queue") as sender:
        sender.send_messages(sent)
    with client.get_queue_receiver("test-queue", max_wait_time=5) as receiver:
        (received,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        locked_until = received.locked_until_utc
        receiver.complete_message(received)
    # Then nothing the sender encoded is lost and the broker annotations are present
    assert b"".join(received.body) == b"payload"
    assert received.application_properties == {b"job": b"j-1", b"attempt": 2}
    assert (received.content_type, received.correlation_id, received.subject) == (
        "application/json",
        "corr-1",
        "job.submitted",
    )
    assert (received.message_id, received.reply_to, received.to) == ("m-1", "replies", "somewhere")
    assert received.time_to_live == timedelta(minutes=5)
    assert received.sequence_number == 1
    assert received.delivery_count == 0
    assert received.enqueued_time_utc is not None
    assert locked_until is not None


def test_completed_message_leaves_the_queue(client: ServiceBusClient, servicebus_emulator: Entities) -> None:
    with client.get_queue_sender("jobs") as sender:
        sender.send_messages(ServiceBusMessage("one"))
    with client.get_queue_receiver("jobs") as receiver:
        (message,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        assert servicebus_emulator.counts("jobs").locked == 1
        receiver.complete_message(message)
    assert servicebus_emulator.queue_depth("jobs") == 0


def test_batch_is_delivered_as_separate_messages_in_order(client: ServiceBusClient) -> None:
    with client.get_queue_sender("jobs") as sender:
        batch = sender.create_message_batch()
        for index in range(5):
            batch.add_message(ServiceBusMessage(f"m{index}", application_properties={"i": index}))
        sender.send_messages(batch)
        sender.send_messages([ServiceBusMessage("list-1"), ServiceBusMessage("list-2")])
    with client.get_queue_receiver("jobs", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
        got = receive_until(lambda: receiver.receive_messages(max_message_count=10, max_wait_time=5), 7)
    assert [str(m) for m in got] == ["m0", "m1", "m2", "m3", "m4", "list-1", "list-2"]
    assert [(m.application_properties or {})[b"i"] for m in got[:5]] == [0, 1, 2, 3, 4]


def test_receive_and_delete_removes_messages_without_settlement(
    client: ServiceBusClient, servicebus_emulator: Entities
) -> None:
    with client.get_queue_sender("jobs") as sender:
        sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
    with client.get_queue_receiver("jobs", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
        got = receive_until(lambda: receiver.receive_messages(max_message_count=2, max_wait_time=5), 2)
    assert sorted(str(m) for m in got) == ["a", "b"]
    assert servicebus_emulator.queue_depth("jobs") == 0


def test_abandoned_message_is_redelivered_with_a_higher_delivery_count(client: ServiceBusClient) -> None:
    with client.get_queue_sender("jobs") as sender:
        sender.send_messages(ServiceBusMessage("retry me"))
    with client.get_queue_receiver("jobs") as receiver:
        (first,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        receiver.abandon_message(first)
        (second,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        receiver.complete_message(second)
    assert (first.delivery_count, second.delivery_count) == (0, 1)
    assert first.sequence_number == second.sequence_number


def test_message_abandoned_max_delivery_count_times_is_dead_lettered(
    client: ServiceBusClient, servicebus_emulator: Entities
) -> None:
    # Given the jobs queue allows 3 deliveries
    with client.get_queue_sender("jobs") as sender:
        sender.send_messages(ServiceBusMessage("poison", message_id="poison-1"))
    # When the message is abandoned three times
    with client.get_queue_receiver("jobs") as receiver:
        for _ in range(3):
            (message,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
            receiver.abandon_message(message)
    # Then it sits in the dead-letter queue with the reason Service Bus uses
    assert servicebus_emulator.queue_depth("jobs") == 0
    with client.get_queue_receiver("jobs", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
        (dead,) = receive_until(lambda: dead_letters.receive_messages(max_wait_time=5), 1)
        dead_letters.complete_message(dead)
    assert dead.message_id == "poison-1"
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert dead.delivery_count == 3


def test_dead_lettered_message_carries_reason_and_description(
    client: ServiceBusClient, servicebus_emulator: Entities
) -> None:
    with client.get_queue_sender("jobs") as sender:
        sender.send_messages(ServiceBusMessage("bad job"))
    with client.get_queue_receiver("jobs") as receiver:
        (message,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        receiver.dead_letter_message(message, reason="InvalidJob", error_description="cpu: 6 is above 4")
    (summary,) = servicebus_emulator.dead_letters("jobs")
    assert (summary.body, summary.dead_letter_reason) == (b"bad job", "InvalidJob")
    with client.get_queue_receiver("JOBS/$DeadLetterQueue") as dead_letters:
        (dead,) = receive_until(lambda: dead_letters.receive_messages(max_wait_time=5), 1)
    assert (dead.dead_letter_reason, dead.dead_letter_error_description) == ("InvalidJob", "cpu: 6 is above 4")


def test_deferred_message_is_received_by_sequence_number_and_settled(
    client: ServiceBusClient, servicebus_emulator: Entities
) -> None:
    with client.get_queue_sender("jobs") as sender:
        sender.send_messages(ServiceBusMessage("later"))
    with client.get_queue_receiver("jobs") as receiver:
        (message,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        receiver.defer_message(message)
        assert receiver.receive_messages(max_wait_time=1) == []
        assert servicebus_emulator.counts("jobs").deferred == 1
        assert message.sequence_number is not None
        (deferred,) = receiver.receive_deferred_messages([message.sequence_number])
        assert str(deferred) == "later"
        receiver.complete_message(deferred)
    assert servicebus_emulator.queue_depth("jobs") == 0


def test_renewing_a_lock_moves_its_expiry_forward(client: ServiceBusClient) -> None:
    with client.get_queue_sender("jobs") as sender:
        sender.send_messages(ServiceBusMessage("long job"))
    with client.get_queue_receiver("jobs") as receiver:
        (message,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        before = message.locked_until_utc
        assert before is not None
        wait_for(lambda: datetime.now(UTC) > before - timedelta(seconds=4), timeout=DEADLINE, interval=0.05)
        after = receiver.renew_message_lock(message)
        receiver.complete_message(message)
    assert after > before


def test_expired_lock_redelivers_and_settling_the_old_lock_fails(make_servicebus: MakeServiceBus) -> None:
    emulator = make_servicebus(default_config({"short": {"LockDuration": "PT1S", "MaxDeliveryCount": 5}}))
    with emulator.client() as sb:
        with sb.get_queue_sender("short") as sender:
            sender.send_messages(ServiceBusMessage("slow"))
        with sb.get_queue_receiver("short") as receiver:
            (first,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
            (second,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
            assert (first.delivery_count, second.delivery_count) == (0, 1)
            with pytest.raises(MessageLockLostError):
                receiver.complete_message(first)
            receiver.complete_message(second)


def test_expired_message_is_dropped_or_dead_lettered_per_entity(make_servicebus: MakeServiceBus) -> None:
    emulator = make_servicebus(default_config({"drop": None, "keep": {"DeadLetteringOnMessageExpiration": True}}))
    with emulator.client() as sb:
        for queue in ("drop", "keep"):
            with sb.get_queue_sender(queue) as sender:
                sender.send_messages(ServiceBusMessage("stale", time_to_live=timedelta(seconds=1)))
    wait_for(
        lambda: emulator.queue_depth("drop") == 0 and emulator.queue_depth("keep") == 0, timeout=DEADLINE, interval=0.05
    )
    assert emulator.dead_letters("drop") == []
    (dead,) = emulator.dead_letters("keep")
    assert dead.dead_letter_reason == "TTLExpiredException"


def test_scheduled_message_appears_when_due_and_cancelled_one_never_does(
    client: ServiceBusClient, servicebus_emulator: Entities
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=2)
    with client.get_queue_sender("jobs") as sender:
        kept, cancelled = sender.schedule_messages([ServiceBusMessage("kept"), ServiceBusMessage("cancelled")], when)
        sender.cancel_scheduled_messages(cancelled)
    assert servicebus_emulator.counts("jobs").scheduled == 1
    with client.get_queue_receiver("jobs") as receiver:
        (message,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
        receiver.complete_message(message)
    assert str(message) == "kept"
    assert servicebus_emulator.counts("jobs") == EntityCounts(0, 0, 0, 0, 0)
    assert message.sequence_number == kept
    assert message.enqueued_time_utc is not None
    assert message.enqueued_time_utc >= when - timedelta(milliseconds=5)


def test_peek_shows_messages_without_locking_them(client: ServiceBusClient) -> None:
    with client.get_queue_sender("jobs") as sender:
        sender.send_messages([ServiceBusMessage("p1"), ServiceBusMessage("p2")])
    with client.get_queue_receiver("jobs") as receiver:
        peeked = receiver.peek_messages(max_message_count=10)
        got = receive_until(lambda: receiver.receive_messages(max_message_count=2, max_wait_time=5), 2)
        for message in got:
            receiver.complete_message(message)
    assert [str(m) for m in peeked] == ["p1", "p2"]
    assert [m.sequence_number for m in peeked] == [1, 2]
    assert len(got) == 2


def test_duplicate_message_id_within_the_window_is_dropped(make_servicebus: MakeServiceBus) -> None:
    emulator = make_servicebus(
        default_config({"dedup": {"RequiresDuplicateDetection": True, "DuplicateDetectionHistoryTimeWindow": "PT1M"}})
    )
    with (
        emulator.client() as sb,
        sb.get_queue_sender("dedup") as sender,
    ):
        sender.send_messages(ServiceBusMessage("first", message_id="same"))
        sender.send_messages(ServiceBusMessage("second", message_id="same"))
        sender.send_messages(ServiceBusMessage("other", message_id="different"))
    assert [m.body for m in emulator.messages("dedup")] == [b"first", b"other"]


def test_message_sent_to_a_topic_reaches_every_subscription(make_servicebus: MakeServiceBus) -> None:
    emulator = make_servicebus(default_config(topics={"events": ["audit", "billing"]}))
    with emulator.client() as sb:
        with sb.get_topic_sender("events") as sender:
            sender.send_messages(ServiceBusMessage("job finished"))
        for subscription in ("audit", "billing"):
            with sb.get_subscription_receiver("events", subscription) as receiver:
                (message,) = receive_until(partial(receiver.receive_messages, max_wait_time=5), 1)
                receiver.complete_message(message)
            assert str(message) == "job finished"
    assert emulator.queue_depth("events") == 0


def test_correlation_filtered_subscription_receives_only_matching_messages(make_servicebus: MakeServiceBus) -> None:
    config = default_config(topics={"events": ["all", "failures"]})
    failures = config["UserConfig"]["Namespaces"][0]["Topics"][0]["Subscriptions"][1]
    failures["Rules"] = [
        {
            "Name": "failed-only",
            "Properties": {"FilterType": "Correlation", "CorrelationFilter": {"Properties": {"state": "Failed"}}},
        }
    ]
    emulator = make_servicebus(config)
    with (
        emulator.client() as sb,
        sb.get_topic_sender("events") as sender,
    ):
        sender.send_messages(
            [
                ServiceBusMessage("j1", application_properties={"state": "Succeeded"}),
                ServiceBusMessage("j2", application_properties={"state": "Failed"}),
            ]
        )
    assert [m.body for m in emulator.messages("events/Subscriptions/failures")] == [b"j2"]
    assert [m.body for m in emulator.messages("events/Subscriptions/all")] == [b"j1", b"j2"]


def test_competing_receivers_share_the_messages_without_overlap(client: ServiceBusClient) -> None:
    with client.get_queue_sender("test-queue") as sender:
        sender.send_messages([ServiceBusMessage(f"m{i}") for i in range(10)])
    with (
        client.get_queue_receiver("test-queue") as first,
        client.get_queue_receiver("test-queue") as second,
    ):
        got: list[str] = []
        end = time.monotonic() + DEADLINE
        while len(got) < 10 and time.monotonic() < end:
            for receiver in (first, second):
                for message in receiver.receive_messages(max_message_count=3, max_wait_time=1):
                    got.append(str(message))
                    receiver.complete_message(message)
    assert sorted(got) == sorted(f"m{i}" for i in range(10))


def test_entity_names_are_case_insensitive(client: ServiceBusClient) -> None:
    with client.get_queue_sender("JOBS") as sender:
        sender.send_messages(ServiceBusMessage("shouted"))
    with client.get_queue_receiver("Jobs", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
        (message,) = receive_until(lambda: receiver.receive_messages(max_wait_time=5), 1)
    assert str(message) == "shouted"


def test_unknown_entity_is_refused_as_not_found(client: ServiceBusClient) -> None:
    with pytest.raises(MessagingEntityNotFoundError), client.get_queue_sender("no-such-queue") as sender:
        sender.send_messages(ServiceBusMessage("x"))
    with pytest.raises(MessagingEntityNotFoundError), client.get_queue_receiver("no-such-queue") as receiver:
        receiver.receive_messages(max_wait_time=1)


def test_session_receiver_is_refused_clearly(client: ServiceBusClient) -> None:
    with pytest.raises(ServiceBusError, match=r"[Ss]essions are not supported"):  # noqa: SIM117
        with client.get_queue_receiver("jobs", session_id=str(uuid.uuid4())) as receiver:
            receiver.receive_messages(max_wait_time=1)


def test_concurrent_senders_on_their_own_connections_reach_a_long_lived_receiver_exactly_once(
    servicebus_emulator: Entities,
) -> None:
    # Given a receiver that stays open, as the Functions runner's does
    with (
        servicebus_emulator.client() as receiving,
        receiving.get_queue_receiver("test-queue") as receiver,
    ):
        # When three senders on separate connections send at the same time
        def send_from_own_connection(worker: int) -> None:
            with (
                servicebus_emulator.client() as sb,
                sb.get_queue_sender("test-queue") as sender,
            ):
                for index in range(10):
                    sender.send_messages(ServiceBusMessage(f"w{worker}-{index}"))

        senders = [threading.Thread(target=send_from_own_connection, args=(w,)) for w in range(3)]
        for thread in senders:
            thread.start()
        got: list[str] = []
        end = time.monotonic() + DEADLINE
        while len(got) < 30 and time.monotonic() < end:
            for message in receiver.receive_messages(max_message_count=10, max_wait_time=1):
                got.append(str(message))
                receiver.complete_message(message)
        for thread in senders:
            thread.join(DEADLINE)
    # Then every message arrives exactly once
    assert sorted(got) == sorted(f"w{w}-{i}" for w in range(3) for i in range(10))
    assert servicebus_emulator.queue_depth("test-queue") == 0


def test_stopping_the_emulator_with_a_connected_client_does_not_hang(
    own_servicebus_emulator: Callable[[dict[str, Any]], ServiceBusEmulator],
) -> None:
    # Given a client holding an open receiver, on an emulator of the test's own
    emulator = own_servicebus_emulator(default_config(["q"]))
    with ServiceBusClient.from_connection_string(emulator.connection_string) as sb:
        receiver = sb.get_queue_receiver("q")
        receiver.__enter__()
        # When the emulator stops underneath it
        emulator.stop()
        # Then the reactor thread is gone and the client gets nothing (or an error) rather than hanging
        assert not emulator.is_running
        with contextlib.suppress(ServiceBusError):
            assert receiver.receive_messages(max_wait_time=1) == []
        receiver.close()


def test_a_value_body_map_with_binary_keys_round_trips_and_the_emulator_keeps_serving(
    client: ServiceBusClient, servicebus_emulator: Entities
) -> None:
    # Given a message Azure accepts (the SDK's own sample sends one): an AMQP value body, a map with binary keys
    from azure.servicebus.amqp import AmqpAnnotatedMessage

    with client.get_queue_sender("test-queue") as sender:
        sender.send_messages(AmqpAnnotatedMessage(value_body={b"key": [-123, b"data", False]}))
        sender.send_messages(ServiceBusMessage("after"))
    # Then it arrives as sent, and the emulator serves the next message too
    with client.get_queue_receiver("test-queue", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
        got = receive_until(lambda: receiver.receive_messages(max_message_count=2, max_wait_time=5), 2)
    assert got[0].body == {b"key": [-123, b"data", False]}
    assert str(got[1]) == "after"
    assert servicebus_emulator.emulator.is_running


def test_a_reactor_that_dies_says_why_and_new_clients_fail_fast(
    own_servicebus_emulator: Callable[[dict[str, Any]], ServiceBusEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an emulator whose reactor thread dies on an event nothing guards (as a proton defect would)
    from proton.reactor import ApplicationEvent

    from devstack.servicebus import emulator as module

    def crash(self: object, event: object) -> None:
        raise RuntimeError("a defect in the reactor")

    monkeypatch.setattr(module._StopHandler, "on_devstack_crash", crash, raising=False)
    emulator = own_servicebus_emulator(default_config(["q"]))
    assert emulator._injector is not None
    emulator._injector.trigger(ApplicationEvent("devstack_crash"))
    wait_for(lambda: not emulator.is_running, timeout=10)
    # Then it says why, and a new client is refused at once instead of hanging
    assert emulator.failure is not None
    assert "a defect in the reactor" in emulator.failure
    started = time.monotonic()
    with (
        pytest.raises(ServiceBusError),
        ServiceBusClient.from_connection_string(emulator.connection_string, retry_total=0) as sb,
        sb.get_queue_sender("q") as sender,
    ):
        sender.send_messages(ServiceBusMessage("nobody hears this"))
    assert time.monotonic() - started < 15

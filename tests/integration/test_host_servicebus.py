"""Service Bus triggers through the local Functions runner against the devstack Service Bus emulator."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage

from devstack.host import FunctionsRunner, SettingsError
from devstack.servicebus import default_config
from tests.fixtures.host import MakeRunner
from tests.fixtures.servicebus import Entities, MakeServiceBus
from tests.fixtures.waiting import wait_for


def received(runner: FunctionsRunner, body: str | None = None) -> list[dict[str, Any]]:
    return [
        entry
        for entry in list(runner.module.RECORDED)
        if entry["kind"] == "servicebus" and (body is None or entry["body"] == body)
    ]


def send(emulator: Entities, queue: str, *messages: ServiceBusMessage) -> None:
    with emulator.client() as client, client.get_queue_sender(queue) as sender:
        sender.send_messages(list(messages))


@pytest.fixture
def bus_runner(servicebus_emulator: Entities, make_runner: MakeRunner) -> FunctionsRunner:
    # The emulator is requested first so that it outlives the runner at teardown.
    # The identity-based form, as deployed to Azure, mapped locally to the emulator.
    return make_runner(
        functions=["on_job"],
        settings={
            "JOBS_QUEUE": servicebus_emulator.name("jobs"),
            "ServiceBusConnection__fullyQualifiedNamespace": "example.servicebus.windows.net",
        },
        servicebus_connection=servicebus_emulator.connection_string,
    )


def test_a_message_is_delivered_with_its_fields_and_completed(
    bus_runner: FunctionsRunner, servicebus_emulator: Entities
) -> None:
    # Given a message with every settable property
    message = ServiceBusMessage(
        b'{"job": 1}',
        message_id="m-1",
        content_type="application/json",
        correlation_id="corr-1",
        subject="submit",
        reply_to="replies",
        to="dispatcher",
        time_to_live=datetime.timedelta(minutes=10),
        application_properties={"tenant": "t1", "attempt": 2},
    )
    # When it is sent to the queue the trigger's %JOBS_QUEUE% names
    send(servicebus_emulator, "jobs", message)
    wait_for(lambda: len(received(bus_runner)) == 1, timeout=60)
    # Then the function saw every field the host fills in
    seen = received(bus_runner)[0]
    assert seen["body"] == '{"job": 1}'
    assert seen["message_id"] == "m-1"
    assert seen["content_type"] == "application/json"
    assert seen["correlation_id"] == "corr-1"
    assert seen["subject"] == seen["label"] == "submit"
    assert seen["reply_to"] == "replies"
    assert seen["to"] == "dispatcher"
    assert seen["time_to_live"] == datetime.timedelta(minutes=10)
    assert seen["application_properties"] == seen["user_properties"] == {"tenant": "t1", "attempt": 2}
    assert seen["delivery_count"] == 1
    assert seen["lock_token"]
    assert isinstance(seen["sequence_number"], int)
    assert isinstance(seen["enqueued_time_utc"], datetime.datetime)
    assert seen["locked_until"] > seen["enqueued_time_utc"]
    assert seen["expires_at_utc"] == seen["enqueued_time_utc"] + datetime.timedelta(minutes=10)
    assert seen["metadata"]["MessageId"] == "m-1"
    assert seen["metadata"]["DeliveryCount"] == 1
    assert seen["metadata"]["UserProperties"] == {"tenant": "t1", "attempt": 2}
    # And the message was completed: the queue is empty
    wait_for(lambda: servicebus_emulator.queue_depth("jobs") == 0, timeout=60)
    assert servicebus_emulator.dead_letters("jobs") == []


def test_a_failing_function_abandons_until_the_broker_dead_letters(
    bus_runner: FunctionsRunner, servicebus_emulator: Entities
) -> None:
    # Given a message the function always refuses, on a queue with MaxDeliveryCount 3
    send(servicebus_emulator, "jobs", ServiceBusMessage("fail-always", message_id="bad-1"))
    # When the runner has tried it
    wait_for(lambda: len(servicebus_emulator.dead_letters("jobs")) == 1, timeout=60)
    # Then it was delivered three times, abandoned each time, and then dead-lettered by the broker
    assert [entry["delivery_count"] for entry in received(bus_runner, "fail-always")] == [1, 2, 3]
    assert servicebus_emulator.dead_letters("jobs")[0].message_id == "bad-1"
    assert servicebus_emulator.queue_depth("jobs") == 0


def test_many_messages_are_processed_concurrently_up_to_max_concurrent_calls(
    bus_runner: FunctionsRunner, servicebus_emulator: Entities
) -> None:
    # Given messages that each take a while (host.json allows 4 at once)
    send(servicebus_emulator, "jobs", *[ServiceBusMessage("sleep:0.5", message_id=f"s-{n}") for n in range(8)])
    # Then they are all completed
    wait_for(lambda: len(received(bus_runner, "sleep:0.5")) == 8, timeout=60)
    wait_for(lambda: servicebus_emulator.queue_depth("jobs") == 0, timeout=60)
    seen = received(bus_runner, "sleep:0.5")
    assert sorted(entry["message_id"] for entry in seen) == [f"s-{n}" for n in range(8)]
    # And never more than maxConcurrentCalls ran at once, but more than one did
    assert 1 < max(entry["concurrent"] for entry in seen) <= 4


@pytest.mark.slow
def test_a_long_invocation_keeps_its_lock_by_renewal(
    bus_runner: FunctionsRunner, servicebus_emulator: Entities
) -> None:
    # Given an invocation that outlives the queue's 5 s lock
    send(servicebus_emulator, "jobs", ServiceBusMessage("sleep:6", message_id="long-1"))
    wait_for(lambda: len(received(bus_runner, "sleep:6")) == 1, timeout=60)
    # Then the message is completed once and never redelivered
    wait_for(lambda: servicebus_emulator.queue_depth("jobs") == 0, timeout=60)
    assert [entry["delivery_count"] for entry in received(bus_runner, "sleep:6")] == [1]


def test_stop_lets_an_invocation_finish_and_complete_its_message(
    bus_runner: FunctionsRunner, servicebus_emulator: Entities
) -> None:
    send(servicebus_emulator, "jobs", ServiceBusMessage("sleep:1", message_id="drain-1"))
    wait_for(lambda: len(received(bus_runner, "sleep:1")) == 1, timeout=60)
    bus_runner.stop()
    assert servicebus_emulator.queue_depth("jobs") == 0


def test_a_connection_string_setting_is_used_directly(make_servicebus: MakeServiceBus, make_runner: MakeRunner) -> None:
    # Given a namespace whose queue name comes from local.settings.json
    emulator = make_servicebus(default_config(queues=["other"]))
    runner = make_runner(
        functions=["on_job"],
        local_settings={"JOBS_QUEUE": emulator.name("other"), "ServiceBusConnection": emulator.connection_string},
    )
    send(emulator, "other", ServiceBusMessage("hello"))
    wait_for(lambda: len(received(runner, "hello")) == 1, timeout=60)
    wait_for(lambda: emulator.queue_depth("other") == 0, timeout=60)
    assert emulator.dead_letters("other") == []


def test_an_unresolvable_queue_setting_stops_start_up(servicebus_emulator: Entities, make_runner: MakeRunner) -> None:
    with pytest.raises(SettingsError, match="JOBS_QUEUE"):
        make_runner(functions=["on_job"], settings={"ServiceBusConnection": servicebus_emulator.connection_string})


def test_the_admin_api_delivers_its_input_as_a_message(
    bus_runner: FunctionsRunner, servicebus_emulator: Entities
) -> None:
    import requests

    response = requests.post(
        f"{bus_runner.host_url}/admin/functions/on_job",
        json={"input": "from-admin"},
        headers={"x-functions-key": bus_runner.master_key},
        timeout=10,
    )
    assert response.status_code == 202
    wait_for(lambda: len(received(bus_runner, "from-admin")) == 1, timeout=60)


def test_a_topic_subscription_trigger_receives_published_events(
    servicebus_emulator: Entities, make_runner: MakeRunner
) -> None:
    # Given an async function on subscription "all" of topic "job-events"
    runner = make_runner(
        functions=["on_event"],
        settings={
            "ServiceBusConnection": servicebus_emulator.connection_string,
            "EVENTS_TOPIC": servicebus_emulator.name("job-events"),
        },
    )
    # When an event is published
    with servicebus_emulator.client() as client, client.get_topic_sender("job-events") as sender:
        sender.send_messages(ServiceBusMessage("job finished", subject="Succeeded"))
    # Then the function receives it and the subscription is drained
    wait_for(lambda: [e for e in runner.module.RECORDED if e["kind"] == "event"] != [], timeout=60)
    assert [e for e in runner.module.RECORDED if e["kind"] == "event"] == [
        {"kind": "event", "body": "job finished", "subject": "Succeeded"}
    ]
    wait_for(lambda: servicebus_emulator.queue_depth("job-events/Subscriptions/all") == 0, timeout=60)


def test_a_many_cardinality_trigger_receives_lists_of_messages(
    servicebus_emulator: Entities, make_runner: MakeRunner
) -> None:
    # Given a batch function on test-queue
    runner = make_runner(
        functions=["on_batch"],
        settings={
            "ServiceBusConnection": servicebus_emulator.connection_string,
            "BATCH_QUEUE": servicebus_emulator.name("test-queue"),
        },
    )
    # When several messages arrive
    send(servicebus_emulator, "test-queue", *[ServiceBusMessage(f"b{n}") for n in range(5)])

    # Then the function gets them as lists, all of them exactly once, and they are completed
    def bodies() -> list[str]:
        return [body for e in list(runner.module.RECORDED) if e["kind"] == "batch" for body in e["bodies"]]

    wait_for(lambda: len(bodies()) == 5, timeout=60)
    assert sorted(bodies()) == [f"b{n}" for n in range(5)]
    wait_for(lambda: servicebus_emulator.queue_depth("test-queue") == 0, timeout=60)

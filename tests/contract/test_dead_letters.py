"""The jobs queue's dead letters through the Service Bus adapter and ``dispatcher dlq``, over the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from typer.testing import CliRunner

from devstack.servicebus import default_config
from dispatcher.adapters.azure.servicebus import ServiceBusDeadLetters
from dispatcher.domain.naming import JOB_ID_PROPERTY, REPLAY_OF_PROPERTY, replay_message_id
from dispatcher.entrypoints.cli import app
from tests.fixtures.servicebus import Entities

CONFIG = default_config(
    queues={"jobs": {"MaxDeliveryCount": 2, "LockDuration": "PT5S", "RequiresDuplicateDetection": True}}
)


@pytest.fixture
def entities(make_servicebus: Callable[..., Entities]) -> Entities:
    return make_servicebus(CONFIG)


def dead_letter(entities: Entities, *submissions: tuple[str, bytes]) -> None:
    """Send each (message id, body) and dead-letter it, as the intake's last failed delivery would."""
    with entities.client() as client:
        with client.get_queue_sender("jobs") as sender:
            for message_id, body in submissions:
                sender.send_messages(ServiceBusMessage(body, message_id=message_id, content_type="application/json"))
        with client.get_queue_receiver("jobs", max_wait_time=2) as receiver:
            got = receiver.receive_messages(max_message_count=len(submissions), max_wait_time=2)
            for message in got:
                receiver.dead_letter_message(message, reason="MaxDeliveryCountExceeded", error_description="outage")


def queued(entities: Entities) -> list[tuple[str, dict[str, str], bytes]]:
    with entities.client() as client, client.get_queue_receiver("jobs", max_wait_time=2) as receiver:
        got = receiver.receive_messages(max_message_count=50, max_wait_time=2)
        for message in got:
            receiver.complete_message(message)
    return [
        (
            str(m.message_id),
            {
                str(k, "utf-8") if isinstance(k, bytes) else str(k): str(v, "utf-8") if isinstance(v, bytes) else str(v)
                for k, v in (m.application_properties or {}).items()
            },
            b"".join(m.body),
        )
        for m in got
    ]


def test_dead_letters_are_listed_with_their_job_and_reason_and_not_taken(entities: Entities) -> None:
    dead_letter(entities, ("m-1", b'{"image": "busybox"}'), ("job-2", b'{"id": "job-2", "image": "busybox"}'))
    with ServiceBusClient.from_connection_string(entities.connection_string) as client:
        letters = ServiceBusDeadLetters(client, entities.name("jobs")).peek(10)
    assert [(x.message_id, x.job_id, x.reason) for x in letters] == [
        ("m-1", "m-1", "MaxDeliveryCountExceeded"),
        ("job-2", "job-2", "MaxDeliveryCountExceeded"),
    ]
    assert len(entities.dead_letters("jobs")) == 2


def test_a_replay_sends_a_new_message_id_with_the_job_id_and_empties_the_dead_letters(entities: Entities) -> None:
    dead_letter(entities, ("m-1", b'{"image": "busybox"}'))
    with ServiceBusClient.from_connection_string(entities.connection_string) as client:
        letters = ServiceBusDeadLetters(client, entities.name("jobs"))
        [letter] = letters.peek(10)
        assert [x.message_id for x in letters.replay(lambda _: True, 10)] == ["m-1"]
    assert entities.dead_letters("jobs") == []
    [(message_id, properties, body)] = queued(entities)
    assert message_id == replay_message_id("m-1", letter.sequence_number) != "m-1"
    assert properties == {JOB_ID_PROPERTY: "m-1", REPLAY_OF_PROPERTY: "m-1"}
    assert body == b'{"image": "busybox"}'


def test_a_replay_repeated_after_a_crash_is_dropped_by_duplicate_detection(entities: Entities) -> None:
    # Given a dead letter whose replay was sent, and the process died before the dead letter was completed
    dead_letter(entities, ("m-1", b'{"image": "busybox"}'))
    with ServiceBusClient.from_connection_string(entities.connection_string) as client:
        letters = ServiceBusDeadLetters(client, entities.name("jobs"))
        [letter] = letters.peek(10)
        with client.get_queue_sender(entities.name("jobs")) as sender:
            sender.send_messages(ServiceBusMessage(b"{}", message_id=replay_message_id("m-1", letter.sequence_number)))
        # When it is replayed again
        letters.replay(lambda _: True, 10)
    # Then the queue holds one message: the second send was a duplicate
    assert len(queued(entities)) == 1


def test_only_the_chosen_dead_letters_are_replayed_and_the_others_stay(entities: Entities) -> None:
    dead_letter(entities, ("a", b"{}"), ("b", b"{}"), ("c", b"{}"))
    runner = CliRunner()
    common = ["--servicebus-connection", entities.connection_string, "--queue", entities.name("jobs")]
    listed = runner.invoke(app, ["dlq", "list", "--json", *common])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    by_id = {row["messageId"]: row["sequenceNumber"] for row in rows}
    replayed = runner.invoke(app, ["dlq", "replay", str(by_id["b"]), *common])
    assert replayed.exit_code == 0, replayed.output
    assert "1 replayed" in replayed.output
    assert sorted(m.message_id for m in entities.dead_letters("jobs")) == ["a", "c"]
    assert [p[JOB_ID_PROPERTY] for _, p, _ in queued(entities)] == ["b"]


def test_replay_without_a_choice_is_a_usage_error(entities: Entities) -> None:
    result = CliRunner().invoke(
        app, ["dlq", "replay", "--servicebus-connection", entities.connection_string, "--queue", "jobs"]
    )
    assert result.exit_code == 2
    assert "--all" in result.output


def test_the_jobs_queue_counts_its_dead_letters_by_peeking_up_to_a_limit(entities: Entities) -> None:
    from dispatcher.adapters.azure.servicebus import ServiceBusJobQueue

    dead_letter(entities, *((f"m-{n}", b'{"image": "busybox"}') for n in range(3)))
    with ServiceBusClient.from_connection_string(entities.connection_string) as client:
        queue = ServiceBusJobQueue(client, entities.name("jobs"))
        assert (queue.dead_letter_count(100), queue.dead_letter_count(2)) == (3, 2)
    assert len(entities.dead_letters("jobs")) == 3  # peeked, not taken


def test_the_jobs_queue_keeps_one_dead_letter_receiver_open_across_counts(
    entities: Entities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each reconciler run counts the dead letters: opening a receiver (an AMQP attach) each time cost about a
    second of each run; the link stays open, and still sees letters that arrive after it opened."""
    from dispatcher.adapters.azure.servicebus import ServiceBusJobQueue

    with ServiceBusClient.from_connection_string(entities.connection_string) as client:
        opened = []
        original = client.get_queue_receiver
        monkeypatch.setattr(client, "get_queue_receiver", lambda *a, **k: opened.append(k) or original(*a, **k))
        queue = ServiceBusJobQueue(client, entities.name("jobs"))
        before = queue.dead_letter_count(100)
        dead_letter(entities, ("late", b'{"image": "busybox"}'))
        after = queue.dead_letter_count(100)
        queue.close()

    assert after == before + 1
    assert len(opened) == 1

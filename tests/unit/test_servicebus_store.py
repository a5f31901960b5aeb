"""The pure Service Bus broker state, driven with a fake clock and no sockets."""

from collections.abc import Mapping
from datetime import timedelta

import pytest
from proton import Message

from devstack.servicebus.config import ConfigError, load_config, parse_duration
from devstack.servicebus.config import default_config as build_config
from devstack.servicebus.store import Broker, EntityNotFound, LockLost, MessageNotFound, NotSupported


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def encoded(body: bytes, **fields: object) -> bytes:
    return bytes(Message(body=body, **fields).encode())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker(clock: Clock) -> Broker:
    config = build_config(
        {
            "jobs": {"MaxDeliveryCount": 2, "LockDuration": "PT10S", "DefaultMessageTimeToLive": "PT1H"},
            "expiring": {"DefaultMessageTimeToLive": "PT5S", "DeadLetteringOnMessageExpiration": True},
            "dedup": {"RequiresDuplicateDetection": True, "DuplicateDetectionHistoryTimeWindow": "PT30S"},
        },
        {"events": ["a", "b"]},
    )
    return Broker(load_config(config), clock=clock)


def test_messages_are_handed_out_in_sequence_order_and_locked(broker: Broker) -> None:
    broker.send("jobs", [encoded(b"1"), encoded(b"2")])
    first = broker.lock_next("jobs", peek_lock=True)
    second = broker.lock_next("jobs", peek_lock=True)
    assert first is not None
    assert second is not None
    assert (first.sequence_number, second.sequence_number) == (1, 2)
    assert broker.lock_next("jobs", peek_lock=True) is None
    assert broker.counts("jobs").locked == 2


def test_expired_lock_makes_the_message_available_again_with_one_more_delivery(broker: Broker, clock: Clock) -> None:
    broker.send("jobs", [encoded(b"slow")])
    first = broker.lock_next("jobs", peek_lock=True)
    assert first is not None
    clock.now += 11
    again = broker.lock_next("jobs", peek_lock=True)
    assert again is not None
    assert (again.sequence_number, again.delivery_count) == (first.sequence_number, 1)
    with pytest.raises(LockLost):
        broker.complete(first.lock_token)


def test_released_message_keeps_its_delivery_count(broker: Broker) -> None:
    broker.send("jobs", [encoded(b"m")])
    first = broker.lock_next("jobs", peek_lock=True)
    assert first is not None
    broker.release(first.lock_token)
    again = broker.lock_next("jobs", peek_lock=True)
    assert again is not None
    assert again.delivery_count == 0


def test_reaching_max_delivery_count_dead_letters_with_the_service_bus_reason(broker: Broker) -> None:
    broker.send("jobs", [encoded(b"poison")])
    for _ in range(2):
        delivered = broker.lock_next("jobs", peek_lock=True)
        assert delivered is not None
        broker.abandon(delivered.lock_token)
    (dead,) = broker.summaries("jobs/$DeadLetterQueue")
    assert (dead.body, dead.dead_letter_reason, dead.delivery_count) == (b"poison", "MaxDeliveryCountExceeded", 2)
    assert broker.counts("jobs").active == 0


def test_dead_lettered_message_cannot_be_dead_lettered_again_and_stays_put(broker: Broker) -> None:
    broker.send("jobs", [encoded(b"m")])
    delivered = broker.lock_next("jobs", peek_lock=True)
    assert delivered is not None
    broker.dead_letter(delivered.lock_token, "Invalid", None)
    dead = broker.lock_next("jobs/$DeadLetterQueue", peek_lock=True)
    assert dead is not None
    with pytest.raises(NotSupported):
        broker.dead_letter(dead.lock_token, "again", None)
    assert broker.counts("jobs").dead_letter == 1


def test_renewing_extends_the_lock_from_now(broker: Broker, clock: Clock) -> None:
    broker.send("jobs", [encoded(b"m")])
    delivered = broker.lock_next("jobs", peek_lock=True)
    assert delivered is not None
    clock.now += 8
    assert broker.renew_lock(delivered.lock_token) == clock.now + 10
    clock.now += 8
    broker.complete(delivered.lock_token)
    assert broker.counts("jobs").active == 0


def test_expired_message_is_dead_lettered_when_the_entity_asks_for_it(broker: Broker, clock: Clock) -> None:
    broker.send("expiring", [encoded(b"old")])
    clock.now += 6
    broker.advance()
    (dead,) = broker.summaries("expiring/$deadletterqueue")
    assert dead.dead_letter_reason == "TTLExpiredException"


def test_message_ttl_shorter_than_the_default_wins_and_expired_messages_are_dropped(
    broker: Broker, clock: Clock
) -> None:
    broker.send("jobs", [encoded(b"short", ttl=2.0), encoded(b"long")])
    clock.now += 3
    delivered = broker.lock_next("jobs", peek_lock=False)
    assert delivered is not None
    assert delivered.sequence_number == 2
    assert broker.summaries("jobs/$DeadLetterQueue") == []


def test_scheduled_message_is_invisible_until_due_and_can_be_cancelled(broker: Broker, clock: Clock) -> None:
    due_ms = int((clock.now + 60) * 1000)
    kept, cancelled = broker.schedule(
        "jobs",
        [
            encoded(b"kept", annotations={"x-opt-scheduled-enqueue-time": due_ms}),
            encoded(b"cancelled", annotations={"x-opt-scheduled-enqueue-time": due_ms}),
        ],
    )
    broker.cancel_scheduled("jobs", [cancelled])
    assert broker.lock_next("jobs", peek_lock=True) is None
    with pytest.raises(MessageNotFound):
        broker.cancel_scheduled("jobs", [cancelled])
    clock.now += 61
    delivered = broker.lock_next("jobs", peek_lock=True)
    assert delivered is not None
    assert delivered.sequence_number == kept
    assert broker.lock_next("jobs", peek_lock=True) is None


def test_deferred_message_is_only_reachable_by_sequence_number(broker: Broker) -> None:
    broker.send("jobs", [encoded(b"later")])
    delivered = broker.lock_next("jobs", peek_lock=True)
    assert delivered is not None
    broker.defer(delivered.lock_token)
    assert broker.lock_next("jobs", peek_lock=True) is None
    (again,) = broker.receive_deferred("jobs", [delivered.sequence_number], peek_lock=True)
    broker.complete(again.lock_token)
    with pytest.raises(MessageNotFound):
        broker.receive_deferred("jobs", [delivered.sequence_number], peek_lock=True)


def test_duplicate_ids_are_dropped_only_within_the_window(broker: Broker, clock: Clock) -> None:
    broker.send("dedup", [encoded(b"1", id="same"), encoded(b"2", id="same")])
    clock.now += 31
    broker.send("dedup", [encoded(b"3", id="same")])
    assert [m.body for m in broker.summaries("dedup")] == [b"1", b"3"]


def test_topic_copies_each_message_to_every_subscription(broker: Broker) -> None:
    broker.send("events", [encoded(b"e")])
    assert [m.body for m in broker.summaries("events/Subscriptions/a")] == [b"e"]
    assert [m.body for m in broker.summaries("EVENTS/subscriptions/B")] == [b"e"]
    assert broker.counts("events").active == 2


def test_message_scheduled_on_a_topic_fans_out_when_due_unless_cancelled(broker: Broker, clock: Clock) -> None:
    due_ms = int((clock.now + 10) * 1000)
    kept, cancelled = broker.schedule(
        "events",
        [
            encoded(b"kept", annotations={"x-opt-scheduled-enqueue-time": due_ms}),
            encoded(b"cancelled", annotations={"x-opt-scheduled-enqueue-time": due_ms}),
        ],
    )
    broker.cancel_scheduled("events", [cancelled])
    assert broker.counts("events").scheduled == 1
    clock.now += 11
    assert [m.body for m in broker.summaries("events/Subscriptions/a")] == [b"kept"]
    assert [m.body for m in broker.summaries("events/Subscriptions/b")] == [b"kept"]
    assert kept != cancelled


def test_rendered_delivery_carries_broker_annotations_and_keeps_sender_fields(broker: Broker) -> None:
    broker.send("jobs", [encoded(b"body", id="m-1", subject="s", properties={"k": "v"})])
    delivered = broker.lock_next("jobs", peek_lock=True)
    assert delivered is not None
    message = Message()
    message.decode(delivered.payload)
    assert message.id == "m-1"
    assert message.subject == "s"
    properties: dict[object, object] = dict(message.properties or {})
    assert properties == {"k": "v"}
    assert message.body == b"body"
    assert message.annotations is not None
    assert message.annotations["x-opt-sequence-number"] == 1
    assert delivered.locked_until is not None
    assert message.annotations["x-opt-locked-until"] == int(delivered.locked_until * 1000)


def test_peek_does_not_lock_and_starts_at_the_given_sequence_number(broker: Broker) -> None:
    broker.send("jobs", [encoded(b"1"), encoded(b"2"), encoded(b"3")])
    assert len(broker.peek("jobs", 2, 10)) == 2
    assert broker.counts("jobs").locked == 0


def test_unknown_entities_are_not_found(broker: Broker) -> None:
    with pytest.raises(EntityNotFound):
        broker.send("nope", [encoded(b"x")])
    with pytest.raises(EntityNotFound):
        broker.lock_next("events", peek_lock=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1M", timedelta(minutes=1)),
        ("PT5S", timedelta(seconds=5)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P2W", timedelta(weeks=2)),
    ],
)
def test_iso_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text, where="x") == expected


@pytest.mark.parametrize("text", ["1M", "P", "PT", "P1M", "PT1X", "P1Y"])
def test_malformed_or_variable_length_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="x"):
        parse_duration(text, where="x")


def test_sessions_in_config_are_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"Queues\[0\].Properties.RequiresSession"):
        load_config(build_config({"q": {"RequiresSession": True}}))


def correlation_config(rule: Mapping[str, object]) -> dict[str, object]:
    return {
        "UserConfig": {
            "Namespaces": [
                {
                    "Name": "sbemulatorns",
                    "Topics": [
                        {
                            "Name": "topic.1",
                            "Properties": {"DefaultMessageTimeToLive": "PT1H"},
                            "Subscriptions": [
                                {"Name": "everything", "Properties": {"MaxDeliveryCount": 3}},
                                {"Name": "filtered", "Properties": {"LockDuration": "PT1M"}, "Rules": [rule]},
                            ],
                        }
                    ],
                }
            ],
            "Logging": {"Type": "File"},
        }
    }


def test_correlation_filter_routes_only_matching_messages(clock: Clock) -> None:
    # Given a subscription filtered on content type, subject and an application property
    rule = {
        "Name": "app-prop-filter-1",
        "Properties": {
            "FilterType": "Correlation",
            "CorrelationFilter": {"ContentType": "application/text", "Label": "job", "Properties": {"prop1": "value1"}},
        },
    }
    broker = Broker(load_config(correlation_config(rule)), clock=clock)
    # When one matching and two non-matching messages are sent
    broker.send(
        "topic.1",
        [
            encoded(b"match", content_type="application/text", subject="job", properties={"prop1": "value1"}),
            encoded(b"wrong-prop", content_type="application/text", subject="job", properties={"prop1": "other"}),
            encoded(b"no-subject", content_type="application/text", properties={"prop1": "value1"}),
        ],
    )
    # Then only the match reaches the filtered subscription, while the unfiltered one gets all three
    assert [m.body for m in broker.summaries("topic.1/Subscriptions/filtered")] == [b"match"]
    assert len(broker.summaries("topic.1/Subscriptions/everything")) == 3


def test_sql_filters_other_than_match_all_are_refused_naming_the_field() -> None:
    rule = {"Name": "sql", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "prop1 = 'x'"}}}
    with pytest.raises(ConfigError, match=r"Rules\[0\].Properties.SqlFilter"):
        load_config(correlation_config(rule))


def test_match_all_sql_rule_receives_everything(clock: Clock) -> None:
    rule = {"Name": "all", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "1 = 1"}}}
    broker = Broker(load_config(correlation_config(rule)), clock=clock)
    broker.send("topic.1", [encoded(b"x")])
    assert [m.body for m in broker.summaries("topic.1/Subscriptions/filtered")] == [b"x"]

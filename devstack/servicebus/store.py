"""Thread-safe broker state: entities, messages, locks, timers, dead-lettering; no sockets involved."""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from devstack.servicebus import codec
from devstack.servicebus.config import EntityProperties, NamespaceConfig
from devstack.servicebus.filters import Rule, accepts

DEAD_LETTER_SUFFIX = "$deadletterqueue"
MAX_DELIVERY_REASON = "MaxDeliveryCountExceeded"
TTL_EXPIRED_REASON = "TTLExpiredException"


class StoreError(Exception):
    """A broker operation was refused; ``condition`` is the AMQP error condition to report."""

    condition = "amqp:internal-error"


class EntityNotFound(StoreError):
    """The addressed queue, topic, subscription or sub-queue does not exist."""

    condition = "amqp:not-found"


class LockLost(StoreError):
    """The lock token is unknown or its lock has expired."""

    condition = "com.microsoft:message-lock-lost"


class MessageNotFound(StoreError):
    """No message with the requested sequence number is in the expected state."""

    condition = "com.microsoft:message-not-found"


class NotSupported(StoreError):
    """The request uses a Service Bus feature this emulator does not implement."""

    condition = "amqp:not-implemented"


class MessageState(IntEnum):
    """Values of the ``x-opt-message-state`` annotation."""

    ACTIVE = 0
    DEFERRED = 1
    SCHEDULED = 2


@dataclass
class StoredMessage:
    """One message held by a queue, subscription or dead-letter queue."""

    sequence_number: int
    raw: bytes
    facts: codec.MessageFacts
    enqueued_at: float
    expires_at: float | None
    state: MessageState
    delivery_count: int = 0
    lock_token: uuid.UUID | None = None
    locked_until: float | None = None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None


@dataclass(frozen=True)
class Delivered:
    """A message handed to a receiver: the bytes to transfer and, in peek-lock, its lock."""

    sequence_number: int
    payload: bytes
    lock_token: uuid.UUID
    locked_until: float | None
    delivery_count: int


@dataclass(frozen=True)
class MessageSummary:
    """What tests and benchmarks see of a stored message."""

    sequence_number: int
    message_id: str | None
    body: bytes | None
    delivery_count: int
    state: str
    locked: bool
    dead_letter_reason: str | None
    dead_letter_description: str | None


@dataclass(frozen=True)
class EntityCounts:
    """Message counts of a queue or subscription (or, summed, a topic)."""

    active: int
    locked: int
    deferred: int
    scheduled: int
    dead_letter: int


@dataclass
class Log:
    """An ordered message log that receivers read from: a queue, a subscription, or a dead-letter queue."""

    path: str
    properties: EntityProperties
    dead_letter: Log | None = None
    rules: tuple[Rule, ...] | None = None
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    ready: list[int] = field(default_factory=list)
    timers: list[tuple[float, int]] = field(default_factory=list)
    last_sequence: int = 0

    @property
    def is_dead_letter_queue(self) -> bool:
        return self.dead_letter is None

    def next_sequence(self) -> int:
        self.last_sequence += 1
        return self.last_sequence

    def make_ready(self, message: StoredMessage) -> None:
        heapq.heappush(self.ready, message.sequence_number)

    def add_timer(self, due: float | None, sequence_number: int) -> None:
        if due is not None:
            heapq.heappush(self.timers, (due, sequence_number))


@dataclass
class ScheduledForTopic:
    """A message scheduled on a topic; it is fanned out to the subscriptions when due."""

    raw: bytes
    facts: codec.MessageFacts
    due: float


@dataclass
class Intake:
    """The send side of a queue or topic: duplicate detection and (for topics) scheduled messages."""

    name: str
    properties: EntityProperties
    targets: dict[str, Log]
    seen_ids: dict[str, float] = field(default_factory=dict)
    scheduled: dict[int, ScheduledForTopic] = field(default_factory=dict)
    timers: list[tuple[float, int]] = field(default_factory=list)
    last_sequence: int = 0
    is_topic: bool = False


def _normalise(address: str) -> list[str]:
    return [part for part in address.strip("/").lower().split("/") if part]


class Broker:
    """All entities of one namespace. Every public method is atomic with respect to the others.

    Times are epoch seconds from ``clock`` (``time.time`` by default); timers are evaluated lazily on
    every call and by ``advance()``, so no thread is needed per message.
    """

    def __init__(self, config: NamespaceConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._intakes: dict[str, Intake] = {}
        self._logs: dict[str, Log] = {}
        self._tokens: dict[uuid.UUID, tuple[Log, int]] = {}
        self.add_entities(config)

    def add_entities(self, config: NamespaceConfig) -> None:
        """Create the queues and topics of ``config`` in this running namespace; raises ``ValueError`` for a name
        that is taken. Tests share one emulator this way, each with entities of its own."""
        with self._lock:
            taken = [e.name for e in (*config.queues, *config.topics) if e.name.lower() in self._intakes]
            if taken:
                raise ValueError(f"entities already exist: {', '.join(taken)}")
            for queue in config.queues:
                log = self._new_log(queue.name, queue.properties)
                self._intakes[queue.name.lower()] = Intake(queue.name, queue.properties, {queue.name.lower(): log})
            for topic in config.topics:
                targets: dict[str, Log] = {}
                for sub in topic.subscriptions:
                    path = f"{topic.name}/Subscriptions/{sub.name}"
                    targets[sub.name.lower()] = self._new_log(path, sub.properties, sub.rules)
                self._intakes[topic.name.lower()] = Intake(topic.name, topic.properties, targets, is_topic=True)

    def _new_log(self, path: str, properties: EntityProperties, rules: tuple[Rule, ...] | None = None) -> Log:
        dead_letter = Log(f"{path}/$DeadLetterQueue", properties)
        log = Log(path, properties, dead_letter=dead_letter, rules=rules)
        self._logs["/".join(_normalise(path))] = log
        self._logs["/".join(_normalise(dead_letter.path))] = dead_letter
        return log

    # ----------------------------------------------------------------- addressing

    def source(self, address: str) -> Log:
        """The log a receiver on ``address`` reads from (queue, subscription, or their dead-letter queue)."""
        log = self._logs.get("/".join(_normalise(address)))
        if log is None:
            raise EntityNotFound(f"The messaging entity '{address}' could not be found.")
        return log

    def intake(self, address: str) -> Intake:
        """The queue or topic a sender on ``address`` writes to."""
        parts = _normalise(address)
        intake = self._intakes.get(parts[0]) if len(parts) == 1 else None
        if intake is None:
            raise EntityNotFound(f"The messaging entity '{address}' could not be found or cannot be sent to.")
        return intake

    def exists(self, address: str) -> bool:
        """Whether ``address`` names a queue, topic, subscription or dead-letter queue."""
        parts = _normalise(address)
        return "/".join(parts) in self._logs or (len(parts) == 1 and parts[0] in self._intakes)

    # ----------------------------------------------------------------- sending

    def send(self, address: str, messages: Sequence[bytes]) -> list[int | None]:
        """Enqueue encoded messages on a queue or topic.

        Returns, per message, its sequence number on a queue (or scheduled topic message), ``None`` when the
        message was dropped as a duplicate or fanned out to subscriptions. Messages carrying
        ``x-opt-scheduled-enqueue-time`` in the future are scheduled instead.
        """
        with self._lock:
            now = self._clock()
            self._advance(now)
            intake = self.intake(address)
            return [self._accept(intake, bytes(raw), now, schedule_only=False) for raw in messages]

    def schedule(self, address: str, messages: Sequence[bytes]) -> list[int]:
        """Schedule encoded messages (each carries ``x-opt-scheduled-enqueue-time``); returns sequence numbers."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            intake = self.intake(address)
            numbers: list[int] = []
            for raw in messages:
                number = self._accept(intake, bytes(raw), now, schedule_only=True)
                numbers.append(number if number is not None else 0)
            return numbers

    def cancel_scheduled(self, address: str, sequence_numbers: Iterable[int]) -> None:
        """Remove scheduled messages that have not been enqueued yet.

        Raises ``MessageNotFound`` when a sequence number names no pending scheduled message.
        """
        with self._lock:
            self._advance(self._clock())
            intake = self.intake(address)
            numbers = list(sequence_numbers)
            for number in numbers:
                if not self._is_scheduled(intake, number):
                    raise MessageNotFound(f"No scheduled message with sequence number {number} on '{intake.name}'.")
            for number in numbers:
                if intake.is_topic:
                    intake.scheduled.pop(number, None)
                else:
                    next(iter(intake.targets.values())).messages.pop(number, None)

    def _is_scheduled(self, intake: Intake, number: int) -> bool:
        if intake.is_topic:
            return number in intake.scheduled
        message = next(iter(intake.targets.values())).messages.get(number)
        return message is not None and message.state is MessageState.SCHEDULED

    def _accept(self, intake: Intake, raw: bytes, now: float, *, schedule_only: bool) -> int | None:
        facts = codec.read_facts(raw)
        if intake.properties.requires_duplicate_detection and facts.message_id is not None:
            window = intake.properties.duplicate_detection_window.total_seconds()
            while intake.seen_ids:
                oldest_id, seen_at = next(iter(intake.seen_ids.items()))
                if seen_at > now - window:
                    break
                del intake.seen_ids[oldest_id]
            if facts.message_id in intake.seen_ids:
                return None
            intake.seen_ids[facts.message_id] = now
        due = facts.scheduled_enqueue_time
        if due is None or due <= now:
            if schedule_only:
                due = now
            else:
                self._fan_out(intake, raw, facts, now)
                return None if intake.is_topic else next(iter(intake.targets.values())).last_sequence
        if intake.is_topic:
            intake.last_sequence += 1
            intake.scheduled[intake.last_sequence] = ScheduledForTopic(raw, facts, due)
            heapq.heappush(intake.timers, (due, intake.last_sequence))
            return intake.last_sequence
        log = next(iter(intake.targets.values()))
        message = StoredMessage(log.next_sequence(), raw, facts, due, None, MessageState.SCHEDULED)
        log.messages[message.sequence_number] = message
        log.add_timer(due, message.sequence_number)
        return message.sequence_number

    def _fan_out(self, intake: Intake, raw: bytes, facts: codec.MessageFacts, now: float) -> None:
        for log in intake.targets.values():
            if accepts(log.rules, facts.fields, facts.application_properties):
                self._enqueue(log, raw, facts, now)

    def _enqueue(self, log: Log, raw: bytes, facts: codec.MessageFacts, now: float) -> StoredMessage:
        message = StoredMessage(log.next_sequence(), raw, facts, now, None, MessageState.ACTIVE)
        self._activate(log, message, now)
        log.messages[message.sequence_number] = message
        return message

    def _activate(self, log: Log, message: StoredMessage, now: float) -> None:
        ttl = log.properties.default_message_ttl.total_seconds()
        if message.facts.ttl_seconds is not None:
            ttl = min(ttl, message.facts.ttl_seconds)
        message.state = MessageState.ACTIVE
        message.enqueued_at = now
        message.expires_at = now + ttl
        log.add_timer(message.expires_at, message.sequence_number)
        log.make_ready(message)

    # ----------------------------------------------------------------- receiving

    def lock_next(self, address: str, *, peek_lock: bool) -> Delivered | None:
        """Take the next available message: lock it (peek-lock) or remove it (receive-and-delete)."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            log = self.source(address)
            while log.ready:
                number = heapq.heappop(log.ready)
                message = log.messages.get(number)
                if message is None or message.state is not MessageState.ACTIVE or message.lock_token is not None:
                    continue
                if message.expires_at is not None and message.expires_at <= now:
                    self._expire(log, message)
                    continue
                return self._hand_out(log, message, now, peek_lock=peek_lock)
            return None

    def receive_deferred(self, address: str, sequence_numbers: Iterable[int], *, peek_lock: bool) -> list[Delivered]:
        """Lock (or remove) deferred messages by sequence number; raises ``MessageNotFound`` for any other."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            log = self.source(address)
            numbers = list(sequence_numbers)
            for number in numbers:
                message = log.messages.get(number)
                if message is None or message.state is not MessageState.DEFERRED or message.lock_token is not None:
                    raise MessageNotFound(f"No deferred message with sequence number {number} on '{log.path}'.")
            return [self._hand_out(log, log.messages[number], now, peek_lock=peek_lock) for number in numbers]

    def _hand_out(self, log: Log, message: StoredMessage, now: float, *, peek_lock: bool) -> Delivered:
        token = uuid.uuid4()
        if peek_lock:
            message.lock_token = token
            message.locked_until = now + log.properties.lock_duration.total_seconds()
            self._tokens[token] = (log, message.sequence_number)
            log.add_timer(message.locked_until, message.sequence_number)
        else:
            del log.messages[message.sequence_number]
        return Delivered(
            message.sequence_number,
            self._render(message),
            token,
            message.locked_until if peek_lock else None,
            message.delivery_count,
        )

    def peek(self, address: str, from_sequence_number: int, count: int) -> list[bytes]:
        """Encoded messages with sequence number >= ``from_sequence_number``, without locking them."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            log = self.source(address)
            found: list[bytes] = []
            for number in sorted(n for n in log.messages if n >= from_sequence_number):
                message = log.messages[number]
                if message.expires_at is not None and message.expires_at <= now and message.lock_token is None:
                    continue
                found.append(self._render(message))
                if len(found) >= count:
                    break
            return found

    # ----------------------------------------------------------------- settlement

    def _locked(self, token: uuid.UUID, now: float) -> tuple[Log, StoredMessage]:
        entry = self._tokens.get(token)
        message = entry[0].messages.get(entry[1]) if entry else None
        if entry is None or message is None or message.lock_token != token:
            raise LockLost(f"The lock supplied is invalid: lock token {token} is unknown or has expired.")
        if message.locked_until is not None and message.locked_until <= now:
            self._lock_expired(entry[0], message)
            raise LockLost(f"The lock on the message with lock token {token} expired.")
        return entry[0], message

    def _unlock(self, message: StoredMessage) -> None:
        if message.lock_token is not None:
            self._tokens.pop(message.lock_token, None)
        message.lock_token = None
        message.locked_until = None

    def complete(self, token: uuid.UUID) -> None:
        """Remove the locked message for good."""
        with self._lock:
            log, message = self._locked(token, self._clock())
            self._unlock(message)
            del log.messages[message.sequence_number]

    def release(self, token: uuid.UUID) -> None:
        """Give the message back without counting a delivery attempt (it never reached the application)."""
        with self._lock:
            now = self._clock()
            try:
                log, message = self._locked(token, now)
            except LockLost:
                return
            self._unlock(message)
            self._return(log, message, now)

    def abandon(self, token: uuid.UUID) -> None:
        """Give the message back as a failed delivery; dead-letter it once MaxDeliveryCount is reached."""
        with self._lock:
            now = self._clock()
            log, message = self._locked(token, now)
            self._failed_delivery(log, message, now)

    def defer(self, token: uuid.UUID) -> None:
        """Set the message aside; it can then only be received by sequence number."""
        with self._lock:
            _, message = self._locked(token, self._clock())
            self._unlock(message)
            message.state = MessageState.DEFERRED

    def dead_letter(self, token: uuid.UUID, reason: str | None, description: str | None) -> None:
        """Move the message to the dead-letter sub-queue with the given reason and description."""
        with self._lock:
            log, message = self._locked(token, self._clock())
            if log.is_dead_letter_queue:
                raise NotSupported(f"'{log.path}' is a dead-letter queue; its messages cannot be dead-lettered again.")
            self._move_to_dead_letter(log, message, reason, description)

    def renew_lock(self, token: uuid.UUID) -> float:
        """Extend the lock by the entity's lock duration; returns the new expiry (epoch seconds)."""
        with self._lock:
            now = self._clock()
            log, message = self._locked(token, now)
            message.locked_until = now + log.properties.lock_duration.total_seconds()
            log.add_timer(message.locked_until, message.sequence_number)
            return message.locked_until

    def _failed_delivery(self, log: Log, message: StoredMessage, now: float) -> None:
        self._unlock(message)
        message.delivery_count += 1
        if not log.is_dead_letter_queue and message.delivery_count >= log.properties.max_delivery_count:
            self._move_to_dead_letter(
                log,
                message,
                MAX_DELIVERY_REASON,
                f"Message could not be consumed after {log.properties.max_delivery_count} delivery attempts.",
            )
            return
        self._return(log, message, now)

    def _return(self, log: Log, message: StoredMessage, now: float) -> None:
        if message.state is MessageState.ACTIVE:
            if message.expires_at is not None and message.expires_at <= now:
                self._expire(log, message)
            else:
                log.make_ready(message)

    def _lock_expired(self, log: Log, message: StoredMessage) -> None:
        self._failed_delivery(log, message, self._clock())

    def _move_to_dead_letter(
        self, log: Log, message: StoredMessage, reason: str | None, description: str | None
    ) -> None:
        self._unlock(message)
        del log.messages[message.sequence_number]
        if log.dead_letter is None:
            return
        message.state = MessageState.ACTIVE
        message.expires_at = None
        message.dead_letter_reason = reason
        message.dead_letter_description = description
        log.dead_letter.messages[message.sequence_number] = message
        log.dead_letter.make_ready(message)

    def _expire(self, log: Log, message: StoredMessage) -> None:
        if log.properties.dead_lettering_on_message_expiration and log.dead_letter is not None:
            self._move_to_dead_letter(log, message, TTL_EXPIRED_REASON, "The message expired and was dead lettered.")
        else:
            self._unlock(message)
            log.messages.pop(message.sequence_number, None)

    # ----------------------------------------------------------------- timers

    def advance(self) -> None:
        """Apply every timer that is due: lock expiry, scheduled enqueue, TTL expiry."""
        with self._lock:
            self._advance(self._clock())

    def _advance(self, now: float) -> None:
        for intake in self._intakes.values():
            while intake.timers and intake.timers[0][0] <= now:
                _, number = heapq.heappop(intake.timers)
                pending = intake.scheduled.pop(number, None)
                if pending is not None:
                    self._fan_out(intake, pending.raw, pending.facts, now)
        for log in self._logs.values():
            while log.timers and log.timers[0][0] <= now:
                _, number = heapq.heappop(log.timers)
                message = log.messages.get(number)
                if message is None:
                    continue
                if message.lock_token is not None:
                    if message.locked_until is not None and message.locked_until <= now:
                        self._failed_delivery(log, message, now)
                elif message.state is MessageState.SCHEDULED:
                    if message.enqueued_at <= now:
                        self._activate(log, message, now)
                elif message.expires_at is not None and message.expires_at <= now:
                    self._expire(log, message)

    # ----------------------------------------------------------------- rendering and inspection

    def _render(self, message: StoredMessage) -> bytes:
        annotations = {
            "x-opt-sequence-number": codec.long(message.sequence_number),
            "x-opt-enqueued-time": codec.timestamp(message.enqueued_at),
            "x-opt-message-state": codec.int32(int(message.state)),
        }
        if message.locked_until is not None:
            annotations["x-opt-locked-until"] = codec.timestamp(message.locked_until)
        properties: dict[str, bytes] = {}
        if message.dead_letter_reason is not None:
            properties["DeadLetterReason"] = codec.string(message.dead_letter_reason)
        if message.dead_letter_description is not None:
            properties["DeadLetterErrorDescription"] = codec.string(message.dead_letter_description)
        return codec.render(
            message.raw,
            delivery_count=message.delivery_count,
            annotations=annotations,
            application_properties=properties,
        )

    def _logs_of(self, address: str) -> list[Log]:
        parts = _normalise(address)
        if len(parts) == 1 and parts[0] in self._intakes and self._intakes[parts[0]].is_topic:
            return list(self._intakes[parts[0]].targets.values())
        return [self.source(address)]

    def counts(self, address: str) -> EntityCounts:
        """Counts for a queue, subscription or dead-letter queue; for a topic, summed over its subscriptions."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            active = locked = deferred = scheduled = dead = 0
            for log in self._logs_of(address):
                for message in log.messages.values():
                    if message.state is MessageState.SCHEDULED:
                        scheduled += 1
                    elif message.state is MessageState.DEFERRED:
                        deferred += 1
                    else:
                        active += 1
                    locked += message.lock_token is not None
                dead += len(log.dead_letter.messages) if log.dead_letter else 0
            parts = _normalise(address)
            if len(parts) == 1 and parts[0] in self._intakes and self._intakes[parts[0]].is_topic:
                scheduled += len(self._intakes[parts[0]].scheduled)
            return EntityCounts(active, locked, deferred, scheduled, dead)

    def summaries(self, address: str) -> list[MessageSummary]:
        """Every message held by a queue, subscription or dead-letter queue, in sequence order."""
        with self._lock:
            self._advance(self._clock())
            log = self.source(address)
            return [
                MessageSummary(
                    m.sequence_number,
                    m.facts.message_id,
                    m.facts.body,
                    m.delivery_count,
                    m.state.name.lower(),
                    m.lock_token is not None,
                    m.dead_letter_reason,
                    m.dead_letter_description,
                )
                for m in sorted(log.messages.values(), key=lambda m: m.sequence_number)
            ]

    def entity_paths(self) -> list[str]:
        """The display paths of every queue, topic and subscription."""
        with self._lock:
            names = [intake.name for intake in self._intakes.values() if intake.is_topic]
            return names + [log.path for log in self._logs.values() if not log.is_dead_letter_queue]

"""Service Bus senders through ``azure-servicebus``: lifecycle events to a topic, submissions to the jobs queue.

Service Bus errors are translated here, once: a send that fails leaves as a
:class:`~dispatcher.domain.errors.CloudError`, and the sender is dropped so the next send opens a new link.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiver,
    ServiceBusSender,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusError,
)

from dispatcher.domain.errors import CloudError
from dispatcher.domain.events import CloudEvent
from dispatcher.domain.naming import JOB_ID_PROPERTY, REPLAY_OF_PROPERTY, replay_message_id
from dispatcher.ports import DeadLetter

CLOUDEVENTS_JSON = "application/cloudevents+json; charset=utf-8"
TRACE_PROPERTIES = frozenset({"traceparent", "tracestate", "Diagnostic-Id"})
PERMANENT = (
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Run Service Bus calls; a ``ServiceBusError`` leaves as a :class:`CloudError` for ``action``."""
    try:
        yield
    except ServiceBusError as exc:
        if isinstance(exc.inner_exception, ClientAuthenticationError):  # the token credential had no token
            hint = "sign in (az login) or give the identity a role on the namespace"
            message = f"{action}: no token for Service Bus: {exc.inner_exception.message}; {hint}"
            raise CloudError(message, transient=False) from None
        transient = not isinstance(exc, PERMANENT)
        raise CloudError(f"{action}: {type(exc).__name__}: {exc.message}", transient=transient) from None


L = TypeVar("L", ServiceBusSender, ServiceBusReceiver)
R = TypeVar("R")


class _Link(Generic[L]):
    """One long-lived sender or receiver, shared by the app's invocations and opened again after a failure:
    opening a link costs an AMQP attach (and a token) each time, far more than what is sent or peeked on it."""

    def __init__(self, open_link: Callable[[], L], action: str) -> None:
        self._open: Callable[[], L] = open_link
        self._action = action
        self._link: L | None = None
        self._lock = threading.Lock()

    def call(self, use: Callable[[L], R]) -> R:
        with self._lock, translated(self._action):
            if self._link is None:
                self._link = self._open()
            try:
                return use(self._link)
            except ServiceBusError:
                self._drop()
                raise

    def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            try:
                link.close()
            except ServiceBusError:
                return

    def close(self) -> None:
        with self._lock:
            self._drop()


class ServiceBusEvents:
    """The Events port: CloudEvents on the events topic, the event id as the message id."""

    def __init__(self, client: ServiceBusClient, topic: str) -> None:
        self._sender = _Link(lambda: client.get_topic_sender(topic), f"publish an event on {topic!r}")

    def publish(self, event: CloudEvent) -> None:
        message = ServiceBusMessage(
            event.to_json(),
            content_type=CLOUDEVENTS_JSON,
            message_id=event.id,
            subject=event.type,
            application_properties={"cloudEvents:type": event.type, "jobId": event.job_id},
        )
        self._sender.call(lambda sender: sender.send_messages(message))

    def close(self) -> None:
        self._sender.close()


class ServiceBusJobQueue:
    """The JobQueue port: messages to the jobs queue, with the job id as the message id."""

    def __init__(self, client: ServiceBusClient, queue: str) -> None:
        self._client = client
        self._queue = queue
        self._sender = _Link(lambda: client.get_queue_sender(queue), f"enqueue on {queue!r}")
        self._dead_letters = _Link(
            lambda: client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER),
            f"peek the dead letters of {queue!r}",
        )

    def send(
        self, body: bytes, message_id: str, content_type: str, properties: Mapping[str, str] | None = None
    ) -> None:
        # Keyed as the SDK keys its own trace properties (bytes), so that with SDK tracing on, the SDK keeps this
        # traceparent (the sender's span) rather than adding a second property of the same name.
        extra: dict[str | bytes, Any] = {
            (key.encode() if key in TRACE_PROPERTIES else key): value for key, value in (properties or {}).items()
        }
        message = ServiceBusMessage(
            body, message_id=message_id, content_type=content_type, application_properties=extra
        )
        self._sender.call(lambda sender: sender.send_messages(message))

    def probe(self) -> None:
        with translated(f"peek {self._queue!r}"), self._client.get_queue_receiver(self._queue) as receiver:
            receiver.peek_messages(max_message_count=1)

    def dead_letter_count(self, limit: int) -> int:
        """Peeked, as ``dispatcher dlq list`` does, on a receiver kept open between calls: the count is a
        management-API figure, which a data-plane identity (and the emulator) does not have."""
        return len(self._dead_letters.call(lambda receiver: _peek(receiver, limit)))

    def close(self) -> None:
        self._sender.close()
        self._dead_letters.close()


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _letter(message: ServiceBusReceivedMessage) -> DeadLetter:
    properties = {_text(k): _text(v) for k, v in (message.application_properties or {}).items()}
    message_id = str(message.message_id or "")
    return DeadLetter(
        sequence_number=int(message.sequence_number or 0),
        message_id=message_id,
        job_id=properties.get(JOB_ID_PROPERTY) or message_id,
        content_type=message.content_type,
        reason=message.dead_letter_reason,
        description=message.dead_letter_error_description,
        enqueued_at=message.enqueued_time_utc,
        delivery_count=int(message.delivery_count or 0),
        size=len(b"".join(message.body)),
    )


def wake_slot(when: dt.datetime, slot_seconds: float) -> tuple[int, dt.datetime]:
    """The wake-up moment a request for ``when`` becomes: rounded up to a multiple of ``slot_seconds``, and its
    number, which names the message."""
    slot = math.ceil(when.timestamp() / slot_seconds)
    return slot, dt.datetime.fromtimestamp(slot * slot_seconds, dt.UTC)


class ServiceBusWaker:
    """The Waker port: a message scheduled on the wake queue for ``when``, rounded up to the next multiple of
    ``slot_seconds`` and named after that moment, so that the queue's duplicate detection keeps one per moment."""

    def __init__(self, client: ServiceBusClient, queue: str, slot_seconds: float) -> None:
        self._slot = max(slot_seconds, 1.0)
        self._sender = _Link(lambda: client.get_queue_sender(queue), f"schedule a reconciler run on {queue!r}")

    def wake_at(self, when: dt.datetime) -> None:
        slot, at = wake_slot(when, self._slot)
        message = ServiceBusMessage(
            b"", message_id=f"wake-{slot}", scheduled_enqueue_time_utc=at, time_to_live=dt.timedelta(minutes=10)
        )
        self._sender.call(lambda sender: sender.send_messages(message))

    def close(self) -> None:
        self._sender.close()


PEEK_BATCH = 50


def _peek(receiver: ServiceBusReceiver, limit: int) -> list[DeadLetter]:
    """Up to ``limit`` dead letters from the start of the sub-queue, without locking any."""
    letters: list[DeadLetter] = []
    sequence = 1  # the first there can be; 0 would mean "after the last peeked", on a receiver that peeked before
    while len(letters) < limit:
        wanted = min(PEEK_BATCH, limit - len(letters))
        batch = receiver.peek_messages(max_message_count=wanted, sequence_number=sequence)
        if not batch:
            break
        letters.extend(_letter(m) for m in batch)
        sequence = max(int(m.sequence_number or 0) for m in batch) + 1
    return letters


class ServiceBusDeadLetters:
    """The DeadLetters port over the jobs queue's ``$DeadLetterQueue``.

    ``replay`` receives dead letters under a lock, sends each chosen one to the queue, then completes it; the
    others are abandoned at the end (not at once, or the same receive would return them again). A crash after
    the send and before the complete leaves the dead letter, and its next replay has the same message id, which
    the queue's duplicate detection drops.
    """

    RECEIVE_BATCH = 50
    WAIT_SECONDS = 2.0

    def __init__(self, client: ServiceBusClient, queue: str) -> None:
        self._client = client
        self._queue = queue

    def _receiver(self) -> ServiceBusReceiver:
        return self._client.get_queue_receiver(self._queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER)

    def peek(self, limit: int) -> list[DeadLetter]:
        with translated(f"peek the dead letters of {self._queue!r}"), self._receiver() as receiver:
            return _peek(receiver, limit)

    def replay(self, chosen: Callable[[DeadLetter], bool], limit: int) -> list[DeadLetter]:
        replayed: list[DeadLetter] = []
        held: list[ServiceBusReceivedMessage] = []
        action = f"replay the dead letters of {self._queue!r}"
        with translated(action), self._receiver() as receiver, self._client.get_queue_sender(self._queue) as sender:
            try:
                while len(replayed) < limit:
                    batch = receiver.receive_messages(
                        max_message_count=self.RECEIVE_BATCH, max_wait_time=self.WAIT_SECONDS
                    )
                    if not batch:
                        break
                    for message in batch:
                        letter = _letter(message)
                        if len(replayed) >= limit or not chosen(letter):
                            held.append(message)
                            continue
                        sender.send_messages(_replay_of(message, letter))
                        receiver.complete_message(message)
                        replayed.append(letter)
            finally:
                for message in held:
                    receiver.abandon_message(message)
        return replayed


def _replay_of(message: ServiceBusReceivedMessage, letter: DeadLetter) -> ServiceBusMessage:
    return ServiceBusMessage(
        b"".join(message.body),
        message_id=replay_message_id(letter.message_id, letter.sequence_number),
        content_type=message.content_type,
        application_properties={JOB_ID_PROPERTY: letter.job_id, REPLAY_OF_PROPERTY: letter.message_id},
    )


def client_from_connection_string(connection_string: str) -> ServiceBusClient:
    try:
        return ServiceBusClient.from_connection_string(connection_string)
    except ValueError as exc:
        raise CloudError(f"the Service Bus connection string is not valid: {exc}", transient=False) from None


def send_submission(client: ServiceBusClient, queue: str, body: bytes, message_id: str, content_type: str) -> None:
    """Enqueue one submission on a short-lived client (closed after), as ``dispatcher submit --via servicebus``
    does."""
    with client:
        sender = ServiceBusJobQueue(client, queue)
        try:
            sender.send(body, message_id, content_type)
        finally:
            sender.close()


@contextmanager
def open_dead_letters(client: ServiceBusClient, queue: str) -> Iterator[ServiceBusDeadLetters]:
    """The jobs queue's dead letters over a short-lived client (closed after), for ``dispatcher dlq``."""
    with client:
        yield ServiceBusDeadLetters(client, queue)

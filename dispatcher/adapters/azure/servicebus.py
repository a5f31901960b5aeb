"""Service Bus senders through ``azure-servicebus``: lifecycle events to a topic, submissions to the jobs queue.

Service Bus errors are translated here, once: a send that fails leaves as a
:class:`~dispatcher.domain.errors.CloudError`, and the sender is dropped so the next send opens a new link.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusError,
)

from dispatcher.domain.errors import CloudError
from dispatcher.domain.events import CloudEvent

CLOUDEVENTS_JSON = "application/cloudevents+json; charset=utf-8"
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
        transient = not isinstance(exc, PERMANENT)
        raise CloudError(f"{action}: {type(exc).__name__}: {exc.message}", transient=transient) from None


class _Sender:
    """One long-lived sender, shared by the app's invocations and opened again after a failure."""

    def __init__(self, open_sender: Callable[[], ServiceBusSender], action: str) -> None:
        self._open = open_sender
        self._action = action
        self._sender: ServiceBusSender | None = None
        self._lock = threading.Lock()

    def send(self, message: ServiceBusMessage) -> None:
        with self._lock, translated(self._action):
            if self._sender is None:
                self._sender = self._open()
            try:
                self._sender.send_messages(message)
            except ServiceBusError:
                self._drop()
                raise

    def _drop(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            try:
                sender.close()
            except ServiceBusError:
                return

    def close(self) -> None:
        with self._lock:
            self._drop()


class ServiceBusEvents:
    """The Events port: CloudEvents on the events topic, the event id as the message id."""

    def __init__(self, client: ServiceBusClient, topic: str) -> None:
        self._sender = _Sender(lambda: client.get_topic_sender(topic), f"publish an event on {topic!r}")

    def publish(self, event: CloudEvent) -> None:
        message = ServiceBusMessage(
            event.to_json(),
            content_type=CLOUDEVENTS_JSON,
            message_id=event.id,
            subject=event.type,
            application_properties={"cloudEvents:type": event.type, "jobId": event.job_id},
        )
        self._sender.send(message)

    def close(self) -> None:
        self._sender.close()


class ServiceBusJobQueue:
    """The JobQueue port: messages to the jobs queue, with the job id as the message id."""

    def __init__(self, client: ServiceBusClient, queue: str) -> None:
        self._client = client
        self._queue = queue
        self._sender = _Sender(lambda: client.get_queue_sender(queue), f"enqueue on {queue!r}")

    def send(self, body: bytes, message_id: str, content_type: str) -> None:
        self._sender.send(ServiceBusMessage(body, message_id=message_id, content_type=content_type))

    def probe(self) -> None:
        with translated(f"peek {self._queue!r}"), self._client.get_queue_receiver(self._queue) as receiver:
            receiver.peek_messages(max_message_count=1)

    def close(self) -> None:
        self._sender.close()


def send_submission(connection_string: str, queue: str, body: bytes, message_id: str, content_type: str) -> None:
    """Enqueue one submission with a short-lived client, as ``dispatcher submit --via servicebus`` does."""
    try:
        client = ServiceBusClient.from_connection_string(connection_string)
    except ValueError as exc:
        raise CloudError(f"the Service Bus connection string is not valid: {exc}", transient=False) from None
    with client:
        sender = ServiceBusJobQueue(client, queue)
        try:
            sender.send(body, message_id, content_type)
        finally:
            sender.close()

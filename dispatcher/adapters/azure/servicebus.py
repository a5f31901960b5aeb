"""Service Bus senders through ``azure-servicebus``: lifecycle events to a topic."""

from __future__ import annotations

import json
import threading
from typing import Any

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender
from azure.servicebus.exceptions import ServiceBusError

from dispatcher.domain.errors import CloudError

CLOUDEVENTS_JSON = "application/cloudevents+json; charset=utf-8"


class ServiceBusEvents:
    """The Events port: one long-lived sender on the events topic, shared by the app's invocations."""

    def __init__(self, client: ServiceBusClient, topic: str) -> None:
        self._client = client
        self._topic = topic
        self._sender: ServiceBusSender | None = None
        self._lock = threading.Lock()

    def publish(self, event: dict[str, Any]) -> None:
        message = ServiceBusMessage(
            json.dumps(event),
            content_type=CLOUDEVENTS_JSON,
            message_id=str(event["id"]),
            subject=str(event["type"]),
            application_properties={"cloudEvents:type": str(event["type"]), "jobId": str(event["data"]["jobId"])},
        )
        with self._lock:
            if self._sender is None:
                self._sender = self._client.get_topic_sender(self._topic)
            self._sender.send_messages(message)

    def close(self) -> None:
        with self._lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None


class ServiceBusJobQueue:
    """The JobQueue port: submissions to the jobs queue, with the job id as the message id."""

    def __init__(self, client: ServiceBusClient, queue: str) -> None:
        self._client = client
        self._queue = queue
        self._sender: ServiceBusSender | None = None
        self._lock = threading.Lock()

    def send(self, body: bytes, message_id: str, content_type: str) -> None:
        message = ServiceBusMessage(body, message_id=message_id, content_type=content_type)
        with self._lock:
            if self._sender is None:
                self._sender = self._client.get_queue_sender(self._queue)
            self._sender.send_messages(message)

    def probe(self) -> None:
        with self._client.get_queue_receiver(self._queue) as receiver:
            receiver.peek_messages(max_message_count=1)

    def close(self) -> None:
        with self._lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None


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
        except ServiceBusError as exc:
            raise CloudError(
                f"cannot enqueue on {queue!r}: {type(exc).__name__}: {exc.message}", transient=True
            ) from None
        finally:
            sender.close()

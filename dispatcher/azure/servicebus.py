"""Service Bus senders through ``azure-servicebus``: lifecycle events to a topic."""

from __future__ import annotations

import json
import threading
from typing import Any

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender

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

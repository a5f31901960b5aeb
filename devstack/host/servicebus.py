"""Service Bus triggers: one PEEK_LOCK receiver per function, driven with the host's autoComplete semantics.

A listener receives up to ``maxConcurrentCalls`` messages at a time, turns each into an
``azure.functions.ServiceBusMessage`` (or a list of them for ``cardinality="many"``), invokes the function,
completes the message when it returns and abandons it when it raises, so the broker dead-letters it after the
queue's MaxDeliveryCount. Locks are renewed with the SDK's ``AutoLockRenewer`` for up to
``maxAutoLockRenewalDuration``. If the broker cannot be reached the listener logs and retries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessage as FunctionMessage
from azure.servicebus import ServiceBusReceivedMessage, ServiceBusReceiveMode
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient, ServiceBusReceiver
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import ServiceBusError

from devstack.host.loader import FunctionMetadata
from devstack.host.settings import AppSettings, ServiceBusOptions, SettingsError

logger = logging.getLogger("devstack.host")

Submit = Callable[[FunctionMetadata, Any, str], concurrent.futures.Future[Any]]
RECEIVE_WAIT_SECONDS = 1.0
RECONNECT_DELAY_SECONDS = 2.0


@dataclass(frozen=True)
class ServiceBusBinding:
    """A Service Bus trigger binding with settings resolved: where to receive from and how."""

    connection_string: str
    queue_name: str | None
    topic_name: str | None
    subscription_name: str | None
    many: bool
    auto_complete: bool

    @property
    def entity(self) -> str:
        if self.queue_name:
            return self.queue_name
        return f"{self.topic_name}/Subscriptions/{self.subscription_name}"

    @classmethod
    def resolve(
        cls,
        function: FunctionMetadata,
        settings: AppSettings,
        emulator_connection: str | None,
        options: ServiceBusOptions,
    ) -> ServiceBusBinding:
        """Resolve ``%Setting%`` expressions and the connection; raises SettingsError naming the function."""
        trigger = function.trigger
        try:
            if trigger.get("isSessionsEnabled"):
                raise SettingsError("session-enabled Service Bus triggers are not supported locally")
            connection = settings.servicebus_connection_string(
                settings.resolve(str(trigger.get("connection") or "")), emulator_connection
            )
            queue = trigger.get("queueName")
            topic = trigger.get("topicName")
            subscription = trigger.get("subscriptionName")
            if not queue and not (topic and subscription):
                raise SettingsError("the trigger needs queueName, or topicName and subscriptionName")
            auto_complete = trigger.get("autoCompleteMessages")
            return cls(
                connection_string=connection,
                queue_name=settings.resolve(str(queue)) if queue else None,
                topic_name=settings.resolve(str(topic)) if topic else None,
                subscription_name=settings.resolve(str(subscription)) if subscription else None,
                many=str(trigger.get("cardinality") or "one").lower() == "many",
                auto_complete=options.auto_complete_messages if auto_complete is None else bool(auto_complete),
            )
        except SettingsError as error:
            raise SettingsError(f"function {function.name}: {error}") from error


def message_body(message: ServiceBusReceivedMessage) -> bytes:
    """The message payload as bytes, whatever AMQP body type it arrived with."""
    if message.body_type == AmqpMessageBodyType.DATA:
        return b"".join(message.body)
    value = message.body
    if message.body_type == AmqpMessageBodyType.SEQUENCE:
        value = [list(section) for section in value]
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, default=_text).encode("utf-8")


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _properties(message: ServiceBusReceivedMessage) -> dict[str, Any]:
    return {str(_text(key)): _text(value) for key, value in (message.application_properties or {}).items()}


def _annotation(message: ServiceBusReceivedMessage, key: bytes) -> str | None:
    annotations = message.raw_amqp_message.annotations or {}
    value = annotations.get(key)
    return None if value is None else str(_text(value))


def host_delivery_count(message: ServiceBusReceivedMessage) -> int | None:
    """The delivery count the host reports: 1 on first delivery.

    AMQP's header counts *prior* attempts (0 at first) and the Python SDK passes it through; the host's .NET
    SDK adds one for received (not peeked) messages, so a function sees 1, 2, ... up to MaxDeliveryCount.
    """
    raw = message.delivery_count
    return None if raw is None else raw + 1


def to_function_message(message: ServiceBusReceivedMessage) -> FunctionMessage:
    """Convert a received SDK message to the ``azure.functions.ServiceBusMessage`` a function receives.

    Must be called before the message is settled: the SDK forgets the lock token on settlement.
    """
    properties = _properties(message)
    delivery_count = host_delivery_count(message)
    lock_token = str(message.lock_token) if message.lock_token is not None else None
    state = message.state
    metadata = {
        "MessageId": meta.Datum(message.message_id, "string"),
        "DeliveryCount": meta.Datum(delivery_count, "int"),
        "SequenceNumber": meta.Datum(message.sequence_number, "int"),
        "EnqueuedTimeUtc": meta.Datum(_iso(message.enqueued_time_utc), "string"),
        "ExpiresAtUtc": meta.Datum(_iso(message.expires_at_utc), "string"),
        "LockedUntil": meta.Datum(_iso(message.locked_until_utc), "string"),
        "LockToken": meta.Datum(lock_token, "string"),
        "ContentType": meta.Datum(message.content_type, "string"),
        "CorrelationId": meta.Datum(message.correlation_id, "string"),
        "Label": meta.Datum(message.subject, "string"),
        "Subject": meta.Datum(message.subject, "string"),
        "To": meta.Datum(message.to, "string"),
        "ReplyTo": meta.Datum(message.reply_to, "string"),
        "SessionId": meta.Datum(message.session_id, "string"),
        "UserProperties": meta.Datum(json.dumps(properties), "json"),
        "ApplicationProperties": meta.Datum(json.dumps(properties), "json"),
    }
    return FunctionMessage(
        body=message_body(message),
        trigger_metadata={key: datum for key, datum in metadata.items() if datum.value is not None},
        application_properties=properties,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        dead_letter_error_description=message.dead_letter_error_description,
        dead_letter_reason=message.dead_letter_reason,
        dead_letter_source=message.dead_letter_source,
        delivery_count=delivery_count,
        enqueued_sequence_number=message.enqueued_sequence_number,
        enqueued_time_utc=message.enqueued_time_utc,
        expires_at_utc=message.expires_at_utc,
        label=message.subject,
        locked_until=message.locked_until_utc,
        lock_token=lock_token,
        message_id=str(message.message_id),
        partition_key=message.partition_key,
        reply_to=message.reply_to,
        reply_to_session_id=message.reply_to_session_id,
        scheduled_enqueue_time_utc=message.scheduled_enqueue_time_utc,
        sequence_number=message.sequence_number,
        session_id=message.session_id,
        state=int(state.value) if hasattr(state, "value") else int(state),
        subject=message.subject,
        time_to_live=message.time_to_live,
        to=message.to,
        transaction_partition_key=_annotation(message, b"x-opt-via-partition-key"),
        user_properties=dict(properties),
    )


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class ServiceBusListener:
    """Receives messages for one function and invokes it, at most ``maxConcurrentCalls`` at a time."""

    def __init__(
        self, function: FunctionMetadata, binding: ServiceBusBinding, options: ServiceBusOptions, submit: Submit
    ) -> None:
        self.function = function
        self.binding = binding
        self._options = options
        self._submit = submit
        self._stopping = asyncio.Event()
        self._active: set[asyncio.Task[None]] = set()
        self.connected = False

    def request_stop(self) -> None:
        """Stop receiving new messages (call on the worker loop); ``run`` then drains and returns."""
        self._stopping.set()

    async def run(self, drain_timeout: float) -> None:
        """Receive and dispatch until stopped, reconnecting after broker errors; then settle in-flight messages."""
        while not self._stopping.is_set():
            try:
                await self._session(drain_timeout)
            except (ServiceBusError, OSError) as error:
                self.connected = False
                logger.warning(
                    "function %s: Service Bus receiver on %s failed (%s); retrying",
                    self.function.name,
                    self.binding.entity,
                    error,
                )
                await self._sleep_unless_stopped(RECONNECT_DELAY_SECONDS)

    async def _session(self, drain_timeout: float) -> None:
        """One connection's life; a stop that comes while still connecting abandons the attempt at once."""
        session = asyncio.create_task(self._receive_until_stopped(drain_timeout))
        stop_wait = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({session, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not session.done() and not self.connected:
                session.cancel()
            try:
                await session
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
        finally:
            stop_wait.cancel()

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return

    def _receiver(self, client: ServiceBusClient, renewer: AutoLockRenewer) -> ServiceBusReceiver:
        common: dict[str, Any] = {
            "receive_mode": ServiceBusReceiveMode.PEEK_LOCK,
            "prefetch_count": self._options.prefetch_count,
            "auto_lock_renewer": renewer,
        }
        if self.binding.queue_name:
            return client.get_queue_receiver(self.binding.queue_name, **common)
        return client.get_subscription_receiver(
            str(self.binding.topic_name), str(self.binding.subscription_name), **common
        )

    async def _receive_until_stopped(self, drain_timeout: float) -> None:
        renewer = AutoLockRenewer(
            max_lock_renewal_duration=self._options.max_auto_lock_renewal.total_seconds(),
            on_lock_renew_failure=self._lock_renewal_failed,
        )
        async with ServiceBusClient.from_connection_string(self.binding.connection_string) as client:
            receiver = self._receiver(client, renewer)
            try:
                async with receiver:
                    self.connected = True
                    try:
                        await self._dispatch_loop(receiver)
                    finally:
                        await self._drain(drain_timeout)
            finally:
                self.connected = False
                await renewer.close()

    async def _lock_renewal_failed(self, renewable: Any, error: Exception | None) -> None:
        logger.warning(
            "function %s: lock renewal stopped for message %s (%s)",
            self.function.name,
            getattr(renewable, "message_id", renewable),
            error or "maxAutoLockRenewalDuration reached",
        )

    async def _dispatch_loop(self, receiver: ServiceBusReceiver) -> None:
        limit = self._options.max_concurrent_calls
        while not self._stopping.is_set():
            if len(self._active) >= limit:
                stop_wait = asyncio.ensure_future(self._stopping.wait())
                try:
                    await asyncio.wait([*self._active, stop_wait], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop_wait.cancel()
                continue
            count = self._options.max_message_batch_size if self.binding.many else limit - len(self._active)
            messages = await receiver.receive_messages(max_message_count=count, max_wait_time=RECEIVE_WAIT_SECONDS)
            if not messages:
                continue
            batches = [messages] if self.binding.many else [[message] for message in messages]
            for batch in batches:
                task = asyncio.create_task(self._handle(receiver, batch))
                self._active.add(task)
                task.add_done_callback(self._active.discard)

    async def _drain(self, timeout: float) -> None:
        if not self._active:
            return
        _, pending = await asyncio.wait(set(self._active), timeout=timeout)
        if pending:
            logger.warning(
                "function %s: %d invocation(s) still running after %.0fs; their messages stay locked",
                self.function.name,
                len(pending),
                timeout,
            )

    async def _handle(self, receiver: ServiceBusReceiver, messages: list[ServiceBusReceivedMessage]) -> None:
        converted = [to_function_message(message) for message in messages]
        payload: Any = converted if self.binding.many else converted[0]
        reason = f"New ServiceBus message detected on '{self.binding.entity}'."
        try:
            await asyncio.wrap_future(self._submit(self.function, payload, reason))
        except Exception:
            succeeded = False
        else:
            succeeded = True
        if not self.binding.auto_complete:
            return
        for message in messages:
            try:
                if succeeded:
                    await receiver.complete_message(message)
                else:
                    await receiver.abandon_message(message)
            except ServiceBusError as error:
                logger.warning(
                    "function %s: could not %s message %s (%s)",
                    self.function.name,
                    "complete" if succeeded else "abandon",
                    message.message_id,
                    error,
                )


def admin_message(body: str, properties: Mapping[str, Any] | None = None) -> FunctionMessage:
    """A message for an admin-API invocation (``POST /admin/functions/{name}``): body only, nothing to settle."""
    return FunctionMessage(
        body=body.encode("utf-8"),
        application_properties=dict(properties or {}),
        message_id="",
        user_properties=dict(properties or {}),
    )

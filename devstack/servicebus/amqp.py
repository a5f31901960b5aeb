"""The proton event handler that speaks Service Bus AMQP: $cbs, $management, senders, receivers, settlement."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from proton import (
    UNDESCRIBED,
    Array,
    Condition,
    Connection,
    Data,
    Delivery,
    Endpoint,
    Event,
    Link,
    Message,
    Session,
    symbol,
    timestamp,
)
from proton.reactor import Container, Handler

from devstack.servicebus import codec
from devstack.servicebus.store import Broker, Delivered, NotSupported, StoreError

_log = logging.getLogger(__name__)

CBS_NODE = "$cbs"
MANAGEMENT_SUFFIX = "/$management"
INCOMING_CREDIT = 100
SESSION_FILTER = "com.microsoft:session-filter"

_MANAGEMENT_STATUS = {
    "amqp:not-found": 404,
    "com.microsoft:message-not-found": 404,
    "com.microsoft:message-lock-lost": 410,
    "amqp:not-implemented": 501,
    "com.microsoft:argument-error": 400,
}


def node_path(address: str | None) -> str:
    """The entity path of a link address such as ``amqps://127.0.0.1:5672/jobs/$management`` (lower case)."""
    if not address:
        return ""
    path = urlparse(address).path if "://" in address else address
    return path.strip("/").lower()


def plain(value: Any) -> Any:
    """Turn proton's decoded values into plain Python: str keys, bytes for binaries, lists for arrays."""
    if isinstance(value, dict):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, Array):
        return [plain(v) for v in value.elements]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _key(key: Any) -> str:
    if isinstance(key, (bytes, memoryview)):
        return bytes(key).decode("utf-8", "replace")
    return str(key)


class InternalError(StoreError):
    """The emulator failed on a request it should have served; the request is refused, the emulator goes on."""

    condition = "amqp:internal-error"


class BadRequest(StoreError):
    """A management request is missing a field or has one of the wrong type."""

    condition = "com.microsoft:argument-error"


@dataclass
class Consumer:
    """A link over which the broker delivers messages to an SDK receiver."""

    entity: str
    peek_lock: bool


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """An event method that cannot stop the reactor: whatever it raises is logged, and the link or connection the
    event concerns is closed with ``amqp:internal-error``, so its client gets an error instead of a hang."""

    @functools.wraps(method)
    def handle(self: BrokerHandler, event: Event) -> None:
        try:
            method(self, event)
        except Exception as error:
            _log.exception("the Service Bus emulator failed on %s", event.type)
            endpoint = event.link or event.connection
            if endpoint is not None and endpoint.state & Endpoint.LOCAL_ACTIVE:
                endpoint.condition = Condition("amqp:internal-error", f"{type(error).__name__}: {error}")
                endpoint.close()

    return handle


class BrokerHandler(Handler):
    """Handles every connection of the emulator inside the proton reactor thread.

    Every ``on_*`` event method is guarded (:func:`_guarded`): one failing event closes its own link, never the
    reactor.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _guard(cls)

    def __init__(self, broker: Broker, *, tick_seconds: float = 0.1) -> None:
        super().__init__()
        self._broker = broker
        self._tick_seconds = tick_seconds
        self._consumers: dict[Link, Consumer] = {}
        self._reply_links: dict[tuple[Connection, str], Link] = {}
        self._connections: set[Connection] = set()
        self._container: Container | None = None
        self._stopping = False
        self.on_ready: Callable[[Container], None] | None = None

    # ----------------------------------------------------------------- reactor lifecycle

    def on_reactor_init(self, event: Event) -> None:
        self._container = event.container
        if self.on_ready is not None:
            self.on_ready(event.container)
        event.container.schedule(self._tick_seconds, self)

    def on_timer_task(self, event: Event) -> None:
        if self._stopping:
            return
        try:
            self._broker.advance()
            self._pump()
        except Exception:
            _log.exception("service bus timer failed")
        event.container.schedule(self._tick_seconds, self)

    def shutdown(self) -> None:
        """Close every connection and stop the reactor; must run on the reactor thread."""
        self._stopping = True
        for connection in list(self._connections):
            if connection.state & Endpoint.LOCAL_ACTIVE:
                connection.close()
        self._connections.clear()
        self._consumers.clear()
        self._reply_links.clear()
        if self._container is not None:
            self._container.stop()

    # ----------------------------------------------------------------- endpoints

    def on_connection_remote_open(self, event: Event) -> None:
        connection = _connection(event)
        if connection.state & Endpoint.LOCAL_UNINIT:
            connection.open()
        self._connections.add(connection)

    def on_session_remote_open(self, event: Event) -> None:
        if _session(event).state & Endpoint.LOCAL_UNINIT:
            _session(event).open()

    def on_link_remote_open(self, event: Event) -> None:
        link: Link = _link(event)
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        path = node_path(link.remote_source.address if link.is_sender else link.remote_target.address)
        link.node = path
        try:
            if path == CBS_NODE.lower() or path.endswith(MANAGEMENT_SUFFIX.lower()):
                if link.is_sender:
                    self._reply_links[(link.connection, path)] = link
            elif link.is_sender:
                self._broker.source(path)
                if self._requests_session(link):
                    raise NotSupported(
                        f"Sessions are not supported by the devstack Service Bus emulator (entity '{path}')."
                    )
                self._consumers[link] = Consumer(path, link.remote_snd_settle_mode != Link.SND_SETTLED)
            elif not self._broker.exists(path):
                # The SDK loses the condition of a sender link detached right after attach (it reports
                # amqp:unknown-error), so accept the link and reject each transfer with amqp:not-found,
                # which the SDK raises as MessagingEntityNotFoundError.
                _log.info("sender attached to unknown entity %s; its transfers will be rejected", path)
        except StoreError as error:
            self._refuse(link, error)
            return
        link.open()
        if link.is_receiver:
            link.flow(INCOMING_CREDIT)
        else:
            self._pump()

    @staticmethod
    def _requests_session(link: Link) -> bool:
        filters = link.remote_source.filter
        filters.rewind()
        if not filters.next():
            return False
        value = plain(filters.get_object())
        return isinstance(value, dict) and SESSION_FILTER in value

    @staticmethod
    def _refuse(link: Link, error: StoreError) -> None:
        # The SDK treats an attach without a terminus as a broken link, so echo the terminus and detach.
        link.open()
        link.condition = _condition(error)
        link.close()

    def on_link_remote_close(self, event: Event) -> None:
        link = _link(event)
        self._forget(link)
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.close()

    def on_session_remote_close(self, event: Event) -> None:
        if _session(event).state & Endpoint.LOCAL_ACTIVE:
            _session(event).close()

    def on_connection_remote_close(self, event: Event) -> None:
        self._drop_connection(_connection(event))
        if _connection(event).state & Endpoint.LOCAL_ACTIVE:
            _connection(event).close()

    def on_transport_closed(self, event: Event) -> None:
        if event.connection is not None:
            self._drop_connection(event.connection)  # transport may close before a connection is bound

    def _forget(self, link: Link) -> None:
        self._consumers.pop(link, None)
        for key, reply in list(self._reply_links.items()):
            if reply == link:
                del self._reply_links[key]

    def _drop_connection(self, connection: Connection) -> None:
        self._connections.discard(connection)
        for link in [link for link in self._consumers if link.connection == connection]:
            del self._consumers[link]
        for key in [key for key in self._reply_links if key[0] == connection]:
            del self._reply_links[key]

    # ----------------------------------------------------------------- flow and deliveries

    def on_link_flow(self, event: Event) -> None:
        if _link(event).is_sender and _link(event) in self._consumers:
            self._pump()

    def on_delivery(self, event: Event) -> None:
        delivery = _delivery(event)
        link = delivery.link
        if link.is_receiver:
            self._on_incoming(link, delivery)
        else:
            self._on_outcome(delivery)

    def _on_incoming(self, link: Link, delivery: Delivery) -> None:
        if delivery.aborted:
            delivery.settle()
            return
        if not delivery.readable or delivery.partial:
            return
        raw = bytes(link.recv(delivery.pending) or b"")
        link.advance()
        path: str = link.node
        if path == CBS_NODE.lower():
            self._settle_incoming(delivery, None)
            self._reply(link, self._cbs(raw))
        elif path.endswith(MANAGEMENT_SUFFIX.lower()):
            self._settle_incoming(delivery, None)
            self._reply(link, self._management(path[: -len(MANAGEMENT_SUFFIX)], raw))
        else:
            failure: StoreError | None = None
            try:
                self._broker.send(path, codec.unbatch(raw))
            except StoreError as error:
                failure = error
            except codec.CodecError as error:
                failure = BadRequest(f"The message could not be decoded: {error}")
            except Exception as error:  # a defect here must cost one message, not the emulator
                _log.exception("accepting a message on %s failed", path)
                failure = InternalError(f"The emulator failed to accept the message: {type(error).__name__}")
            self._settle_incoming(delivery, failure)
            self._pump()
        if link.credit < INCOMING_CREDIT // 2:
            link.flow(INCOMING_CREDIT - link.credit)

    @staticmethod
    def _settle_incoming(delivery: Delivery, failure: StoreError | None) -> None:
        if failure is not None:
            delivery.local.condition = _condition(failure)
            delivery.update(Delivery.REJECTED)
        else:
            delivery.update(Delivery.ACCEPTED)
        delivery.settle()

    def _pump(self) -> None:
        """Hand available messages to receivers with credit, one per link per round (competing consumers)."""
        progress = True
        while progress:
            progress = False
            for link, consumer in list(self._consumers.items()):
                if link.credit <= 0 or not (link.state & Endpoint.LOCAL_ACTIVE and link.state & Endpoint.REMOTE_ACTIVE):
                    continue
                try:
                    delivered = self._broker.lock_next(consumer.entity, peek_lock=consumer.peek_lock)
                except StoreError:
                    _log.exception("cannot deliver from %s", consumer.entity)
                    continue
                if delivered is None:
                    continue
                self._transfer(link, consumer, delivered)
                progress = True
        for link in self._consumers:
            if link.drain_mode and link.credit > 0:
                link.drained()

    @staticmethod
    def _transfer(link: Link, consumer: Consumer, delivered: Delivered) -> None:
        delivery = link.delivery(delivered.lock_token.bytes_le)  # type: ignore[arg-type]  # proton accepts bytes
        delivery.lock_token = delivered.lock_token
        link.send(delivered.payload)
        link.advance()
        if not consumer.peek_lock:
            delivery.settle()

    def _on_outcome(self, delivery: Delivery) -> None:
        token: uuid.UUID | None = getattr(delivery, "lock_token", None)
        if delivery.settled and token is None:
            delivery.settle()
            return
        if token is None or delivery.remote_state == 0 or delivery.local_state != 0:
            return
        state = delivery.remote_state
        remote = delivery.remote
        try:
            if state == Delivery.ACCEPTED:
                self._broker.complete(token)
            elif state == Delivery.RELEASED:
                self._broker.release(token)
            elif state == Delivery.MODIFIED:
                if remote.undeliverable:
                    self._broker.defer(token)
                elif remote.failed:
                    self._broker.abandon(token)
                else:
                    self._broker.release(token)
            elif state == Delivery.REJECTED:
                info = plain(remote.condition.info) if remote.condition is not None else {}
                info = info if isinstance(info, dict) else {}
                self._broker.dead_letter(
                    token, _text(info.get("DeadLetterReason")), _text(info.get("DeadLetterErrorDescription"))
                )
        except StoreError as error:
            if not delivery.settled:
                delivery.local.condition = _condition(error)
                delivery.update(Delivery.REJECTED)
            delivery.settle()
            self._pump()
            return
        if not delivery.settled:
            if state == Delivery.MODIFIED:
                delivery.local.failed = remote.failed
                delivery.local.undeliverable = remote.undeliverable
            delivery.update(state)
        delivery.settle()
        self._pump()

    # ----------------------------------------------------------------- request / response nodes

    def _reply(self, request_link: Link, response: Message | None) -> None:
        if response is None:
            return
        node: str = request_link.node
        reply_link = self._reply_links.get((request_link.connection, node))
        if reply_link is None and response.address:
            reply_link = self._reply_links.get((request_link.connection, node_path(response.address)))
        if reply_link is None:
            _log.warning("no reply link for %s on this connection; dropping the response", node)
            return
        delivery = reply_link.send(response)
        if isinstance(delivery, Delivery):
            delivery.settle()

    @staticmethod
    def _cbs(raw: bytes) -> Message:
        request = Message()
        request.decode(raw)
        properties = plain(request.properties or {})
        ok = properties.get("operation") == "put-token" and bool(request.body)
        return Message(
            correlation_id=request.id,
            properties={
                "status-code": 202 if ok else 400,
                "status-description": "Accepted" if ok else "Expected operation put-token with a token body",
            },
        )

    def _management(self, entity: str, raw: bytes) -> Message:
        request = Message()
        request.decode(raw)
        operation = str(plain(request.properties or {}).get("operation", ""))
        body = plain(request.body) if isinstance(request.body, dict) else {}
        status, description, condition = 200, "OK", None
        payload: dict[str, Any] = {}
        try:
            status, payload = self._operate(entity, operation.removeprefix("com.microsoft:"), body)
            description = "No Content" if status == 204 else "OK"
        except StoreError as error:
            condition = error.condition
            status = _MANAGEMENT_STATUS.get(condition, 500)
            description = str(error)
        properties: dict[str, Any] = {"statusCode": status, "statusDescription": description}
        if condition is not None:
            properties["errorCondition"] = symbol(condition)
        return Message(correlation_id=request.id, address=request.reply_to, properties=properties, body=payload)

    def _operate(self, entity: str, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        broker = self._broker
        if operation == "renew-lock":
            expiries = [broker.renew_lock(_uuid(t)) for t in _field(body, "lock-tokens", list)]
            return 200, {
                "expirations": Array(
                    UNDESCRIBED,  # type: ignore[arg-type]
                    Data.TIMESTAMP,
                    *[timestamp(int(e * 1000)) for e in expiries],
                )
            }
        if operation == "schedule-message":
            messages = [bytes(_field(m, "message", bytes)) for m in _field(body, "messages", list)]
            numbers = broker.schedule(entity, messages)
            return 200, {
                "sequence-numbers": Array(
                    UNDESCRIBED,  # type: ignore[arg-type]
                    Data.LONG,
                    *numbers,
                )
            }
        if operation == "cancel-scheduled-message":
            broker.cancel_scheduled(entity, [int(n) for n in _field(body, "sequence-numbers", list)])
            return 200, {}
        if operation == "peek-message":
            count = int(_field(body, "message-count", int))
            found = broker.peek(entity, int(_field(body, "from-sequence-number", int)), count)
            if not found:
                return 204, {}
            return 200, {"messages": [{"message": payload} for payload in found]}
        if operation == "receive-by-sequence-number":
            peek_lock = int(body.get("receiver-settle-mode", 1)) != 0
            numbers = [int(n) for n in _field(body, "sequence-numbers", list)]
            delivered = broker.receive_deferred(entity, numbers, peek_lock=peek_lock)
            return 200, {"messages": [{"message": d.payload, "lock-token": d.lock_token} for d in delivered]}
        if operation == "update-disposition":
            self._update_disposition(body)
            self._pump()
            return 200, {}
        raise NotSupported(f"Management operation '{operation}' is not supported by the devstack emulator.")

    def _update_disposition(self, body: dict[str, Any]) -> None:
        status = str(_field(body, "disposition-status", str))
        for token in (_uuid(t) for t in _field(body, "lock-tokens", list)):
            if status == "completed":
                self._broker.complete(token)
            elif status == "abandoned":
                self._broker.abandon(token)
            elif status == "defered":
                self._broker.defer(token)
            elif status == "suspended":
                self._broker.dead_letter(
                    token, _text(body.get("deadletter-reason")), _text(body.get("deadletter-description"))
                )
            else:
                raise BadRequest(f"disposition-status {status!r} must be completed, abandoned, defered or suspended")


def _guard(cls: type) -> None:
    for name, method in list(vars(cls).items()):
        if name.startswith("on_") and callable(method) and not getattr(method, "__wrapped__", None):
            setattr(cls, name, _guarded(method))


_guard(BrokerHandler)


def _link(event: Event) -> Link:
    link = event.link
    if link is None:
        raise RuntimeError(f"{event.type} carries no link")
    return link


def _session(event: Event) -> Session:
    session = event.session
    if session is None:
        raise RuntimeError(f"{event.type} carries no session")
    return session


def _connection(event: Event) -> Connection:
    connection = event.connection
    if connection is None:
        raise RuntimeError(f"{event.type} carries no connection")
    return connection


def _delivery(event: Event) -> Delivery:
    delivery = event.delivery
    if delivery is None:
        raise RuntimeError(f"{event.type} carries no delivery")
    return delivery


def _condition(error: StoreError) -> Condition:
    """An AMQP error for ``error``; info always carries a tracking id, as the SDK indexes into it."""
    return Condition(error.condition, str(error), {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if kind is bytes and isinstance(value, (bytes, bytearray)):
        return value
    if kind is int and isinstance(value, int):
        return value
    if not isinstance(value, kind):
        raise BadRequest(f"Management request field '{name}' is missing or is not a {kind.__name__}.")
    return value


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    try:
        return uuid.UUID(str(value))
    except ValueError as error:
        raise BadRequest(f"{value!r} is not a lock token") from error


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)

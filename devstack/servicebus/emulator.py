"""Run the Service Bus emulator's proton reactor in a background thread on a loopback port."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from proton._reactor import Acceptor
from proton.reactor import ApplicationEvent, Container, EventInjector

from devstack.servicebus.amqp import BrokerHandler
from devstack.servicebus.config import NamespaceConfig, load_config
from devstack.servicebus.store import Broker, EntityCounts, MessageSummary

_log = logging.getLogger(__name__)
SAS_KEY_NAME = "RootManageSharedAccessKey"
SAS_KEY_VALUE = "SAS_KEY_VALUE"
_STOP = "devstack_stop"
_PEER_GONE = ("BrokenPipeError", "ConnectionResetError")


class _PeerGone(logging.Filter):
    """Drops proton's "Couldn't send" and "Couldn't recv" errors for a client that closed its socket first, as
    the Service Bus SDK does when it closes a connection without waiting for the broker's close; proton's other
    errors are logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(("Couldn't send", "Couldn't recv")) and any(e in message for e in _PEER_GONE))


logging.getLogger("proton").addFilter(_PeerGone())


class _StopHandler(BrokerHandler):
    """Adds the cross-thread stop event to the broker handler."""

    def on_devstack_stop(self, event: Any) -> None:
        self.shutdown()


class ServiceBusEmulator:
    """An AMQP 1.0 Service Bus namespace on ``127.0.0.1`` that the unmodified azure-servicebus SDK can use."""

    def __init__(
        self,
        config: Mapping[str, Any] | Path | str | NamespaceConfig,
        port: int = 0,
        *,
        tick_seconds: float = 0.1,
    ) -> None:
        self.config = config if isinstance(config, NamespaceConfig) else load_config(config)
        self.broker = Broker(self.config)
        self._requested_port = port
        self._tick_seconds = tick_seconds
        self._thread: threading.Thread | None = None
        self._injector: EventInjector | None = None
        self._acceptor: Acceptor | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = 0

    @property
    def connection_string(self) -> str:
        """The connection string the SDK needs (``UseDevelopmentEmulator=true`` means plain AMQP)."""
        return (
            f"Endpoint=sb://127.0.0.1:{self.port};SharedAccessKeyName={SAS_KEY_NAME};"
            f"SharedAccessKey={SAS_KEY_VALUE};UseDevelopmentEmulator=true;"
        )

    @property
    def is_running(self) -> bool:
        """Whether the reactor thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def failure(self) -> str | None:
        """Why the reactor stopped when nobody asked it to, or ``None``: what the stack's health check reports."""
        if self._error is None:
            return None
        return f"the Service Bus emulator's reactor stopped: {type(self._error).__name__}: {self._error}"

    def _refuse_new_connections(self) -> None:
        """After the reactor died, close its listening socket, so a new client is refused at once, not left hanging."""
        acceptor = self._acceptor
        if acceptor is not None:
            with contextlib.suppress(Exception):
                acceptor._selectable.close()

    def start(self, timeout: float = 10.0) -> ServiceBusEmulator:
        """Listen and start the reactor thread; returns once the port is bound. Raises if it cannot start."""
        if self._thread is not None:
            raise RuntimeError("the Service Bus emulator is already running")
        self._ready = threading.Event()
        self._error = None
        handler = _StopHandler(self.broker, tick_seconds=self._tick_seconds)
        injector = EventInjector()
        self._injector = injector

        def listen(container: Container) -> None:
            try:
                self._acceptor = Acceptor(container, "127.0.0.1", self._requested_port)
                self.port = int(self._acceptor._selectable.getsockname()[1])
                container.selectable(injector)
            except BaseException as error:
                self._error = error
                container.stop()
            finally:
                self._ready.set()

        handler.on_ready = listen

        def run() -> None:
            try:
                Container(handler).run()
            except BaseException as error:
                self._error = error
                _log.error("the Service Bus emulator's reactor stopped: %r", error, exc_info=error)
                self._refuse_new_connections()
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=run, name="devstack-servicebus", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None or not self.port:
            self.stop()
            raise RuntimeError(f"the Service Bus emulator did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop the reactor and join its thread. Safe to call twice."""
        thread, injector = self._thread, self._injector
        if thread is not None and injector is not None and thread.is_alive():
            injector.trigger(ApplicationEvent(_STOP))
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError("the Service Bus emulator's reactor thread did not stop")
        if injector is not None:
            for fd in injector.pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._thread = None
        self._injector = None

    def __enter__(self) -> ServiceBusEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def add(self, config: Mapping[str, Any] | NamespaceConfig) -> None:
        """Create more entities (a Config.json-shaped document, as :func:`default_config` builds) while running."""
        self.broker.add_entities(config if isinstance(config, NamespaceConfig) else load_config(config))

    # ----------------------------------------------------------------- inspection for tests and benchmarks

    def counts(self, entity: str) -> EntityCounts:
        """Active, locked, deferred, scheduled and dead-lettered counts of a queue/subscription (topic: summed)."""
        return self.broker.counts(entity)

    def queue_depth(self, entity: str) -> int:
        """Messages still to be settled in a queue or subscription: active (incl. locked), deferred, scheduled."""
        counts = self.broker.counts(entity)
        return counts.active + counts.deferred + counts.scheduled

    def messages(self, entity: str) -> list[MessageSummary]:
        """Summaries of the messages held by a queue, subscription or ``<entity>/$DeadLetterQueue``."""
        return self.broker.summaries(entity)

    def dead_letters(self, entity: str) -> list[MessageSummary]:
        """Summaries of the dead-lettered messages of a queue or subscription."""
        return self.broker.summaries(f"{entity}/$DeadLetterQueue")

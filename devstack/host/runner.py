"""The local stand-in for the Azure Functions host: load an app, then drive its HTTP, Service Bus and timer triggers.

Start-up order: settings into ``os.environ``, import ``function_app.py``, resolve every binding (a missing
setting fails start-up before anything listens), then start Service Bus receivers, timers and the HTTP
server. ``stop`` is graceful: stop taking work, let in-flight invocations finish within ``shutdown_timeout``,
settle their messages, close receivers, stop timers and the HTTP server, restore ``os.environ``.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, TypeVar

from devstack.host.http import FunctionsFrontDoor
from devstack.host.invocation import Invoker
from devstack.host.keys import HostKeys
from devstack.host.loader import (
    HTTP_TRIGGER,
    SERVICEBUS_TRIGGER,
    TIMER_TRIGGER,
    FunctionAppError,
    FunctionMetadata,
    load_function_app,
)
from devstack.host.servicebus import ServiceBusBinding, ServiceBusListener, admin_message
from devstack.host.settings import AppSettings, HostOptions, LocalSettings
from devstack.host.telemetry import configure_like_the_worker
from devstack.host.timer import TimerListener
from devstack.server import ServerThread

logger = logging.getLogger("devstack.host")
_T = TypeVar("_T")

DEFAULT_HTTP_PORT = 7071
ADMIN_REASON = "This function was programmatically called via the host APIs."
MANUAL_REASON = "This function was called from Python (invoke_timer)."


def _select(functions: dict[str, FunctionMetadata], names: tuple[str, ...] | None) -> dict[str, FunctionMetadata]:
    """Keep only ``names`` (host.json ``functions``), all when None; raises FunctionAppError for an unknown name."""
    if names is None:
        return dict(functions)
    unknown = sorted(set(names) - set(functions))
    if unknown:
        raise FunctionAppError(f"functions {unknown} are listed but the app does not define them")
    return {name: function for name, function in functions.items() if name in names}


def is_disabled(settings: AppSettings, name: str) -> bool:
    """Whether the app setting ``AzureWebJobs.<name>.Disabled`` (or ``AzureWebJobs__<name>__Disabled``) is true."""
    for key in (f"AzureWebJobs.{name}.Disabled", f"AzureWebJobs__{name}__Disabled"):
        if settings.get(key, "").strip().lower() in {"true", "1"}:
            return True
    return False


class FunctionsRunner:
    """Runs one Functions app locally.

    ``app_dir`` holds ``function_app.py`` and ``host.json``. ``settings`` override everything else;
    ``local_settings_file`` defaults to ``app_dir/local.settings.json``. ``http_port`` defaults to
    ``Host.LocalHttpPort`` from local.settings.json, else 7071; 0 picks a free port. ``keys_file`` defaults to
    ``app_dir/.devstack/host-keys.json`` and is created with random keys if missing.
    ``servicebus_connection`` is the emulator connection string identity-based connections map to.
    ``functions`` loads only the named functions (like host.json ``functions``, which it overrides).
    ``start`` waits up to ``listener_start_timeout`` seconds for Service Bus receivers to connect (then logs and
    goes on; they keep retrying). ``stop`` gives in-flight invocations ``shutdown_timeout`` seconds.
    """

    def __init__(
        self,
        app_dir: Path,
        settings: dict[str, str] | None = None,
        http_port: int | None = None,
        keys_file: Path | None = None,
        servicebus_connection: str | None = None,
        *,
        functions: list[str] | tuple[str, ...] | None = None,
        local_settings_file: Path | None = None,
        shutdown_timeout: float = 30.0,
        listener_start_timeout: float = 10.0,
    ) -> None:
        self.app_dir = Path(app_dir)
        self._explicit = dict(settings or {})
        self._http_port = http_port
        self.keys_file = keys_file or self.app_dir / ".devstack" / "host-keys.json"
        self._servicebus_connection = servicebus_connection
        self._local_settings_file = local_settings_file or self.app_dir / "local.settings.json"
        self._shutdown_timeout = shutdown_timeout
        self._listener_start_timeout = listener_start_timeout
        self._only = tuple(functions) if functions is not None else None
        self._state = "Stopped"
        self._route_prefix = ""
        self._settings: AppSettings | None = None
        self._keys: HostKeys | None = None
        self._module: ModuleType | None = None
        self._functions: dict[str, FunctionMetadata] = {}
        self._invoker: Invoker | None = None
        self._server: ServerThread | None = None
        self._bus_listeners: list[ServiceBusListener] = []
        self._timers: dict[str, TimerListener] = {}
        self._listener_futures: list[concurrent.futures.Future[Any]] = []
        self._futures_lock = threading.Lock()

    # -- public view -------------------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``Stopped``, ``Running`` or ``Stopping``."""
        return self._state

    @property
    def host_url(self) -> str:
        """``http://127.0.0.1:PORT``: where the admin API lives."""
        return self._require(self._server, "the runner is not started").url

    @property
    def url(self) -> str:
        """Base URL of HTTP functions, route prefix included: ``http://127.0.0.1:PORT/api``."""
        prefix = self._route_prefix
        return f"{self.host_url}/{prefix}" if prefix else self.host_url

    @property
    def port(self) -> int:
        return self._require(self._server, "the runner is not started").port

    @property
    def function_key(self) -> str:
        return self._require(self._keys, "the runner is not started").default_function_key

    @property
    def master_key(self) -> str:
        return self._require(self._keys, "the runner is not started").master_key

    @property
    def functions(self) -> dict[str, FunctionMetadata]:
        """Indexed functions by name, as read from the app's metadata."""
        return dict(self._functions)

    @property
    def module(self) -> ModuleType:
        """The imported ``function_app`` module (each runner imports its own copy)."""
        return self._require(self._module, "the runner is not started")

    @property
    def servicebus_listeners_connected(self) -> bool:
        """Whether every Service Bus trigger has an open receiver."""
        return all(listener.connected for listener in self._bus_listeners)

    @staticmethod
    def _require(value: _T | None, message: str) -> _T:
        if value is None:
            raise RuntimeError(message)
        return value

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> FunctionsRunner:
        """Load the app and start every trigger. Raises SettingsError/FunctionAppError and cleans up on failure."""
        if self._state != "Stopped":
            raise RuntimeError("the runner is already started")
        local = LocalSettings.load(self._local_settings_file)
        self._settings = AppSettings(local.values, self._explicit)
        self._settings.apply_to_environment()
        try:
            self._start(local)
        except BaseException:
            self._state = "Stopping"
            self._shutdown()
            raise
        self._state = "Running"
        logger.info("Functions host running: %s (%d functions)", self.host_url, len(self._functions))
        return self

    def _start(self, local: LocalSettings) -> None:
        settings = self._require(self._settings, "settings are not loaded")
        options = HostOptions.load(self.app_dir / "host.json")
        configure_like_the_worker(settings)
        self._route_prefix = options.route_prefix
        loaded = load_function_app(self.app_dir)
        self._module = loaded.module
        self._functions = _select(loaded.functions, self._only if self._only is not None else options.functions)
        self._keys = HostKeys.load_or_create(self.keys_file)
        invoker = Invoker(self.app_dir, max_threads=int(settings.get("PYTHON_THREADPOOL_THREAD_COUNT") or 64))
        self._invoker = invoker
        bindings: list[tuple[FunctionMetadata, ServiceBusBinding]] = []
        timers: dict[str, TimerListener] = {}
        disabled = frozenset(name for name in self._functions if is_disabled(settings, name))
        for function in self._functions.values():
            if function.name in disabled:
                logger.info(
                    "function %s is disabled by its AzureWebJobs.%s.Disabled setting", function.name, function.name
                )
                continue
            if function.trigger_type == SERVICEBUS_TRIGGER:
                binding = ServiceBusBinding.resolve(function, settings, self._servicebus_connection, options.servicebus)
                bindings.append((function, binding))
            elif function.trigger_type == TIMER_TRIGGER:
                timers[function.name] = TimerListener.resolve(function, settings, self._submit)
        front_door = FunctionsFrontDoor(
            functions=self._functions,
            submit=self._submit,
            keys=self._keys,
            route_prefix=options.route_prefix,
            admin_invoke=self._admin_invoke,
            host_state=lambda: self._state,
            disabled=disabled,
        )
        port = self._http_port if self._http_port is not None else (local.local_http_port or DEFAULT_HTTP_PORT)
        self._bus_listeners = [
            ServiceBusListener(function, binding, options.servicebus, self._submit) for function, binding in bindings
        ]
        self._timers = timers
        for listener in self._bus_listeners:
            self._listener_futures.append(invoker.run_coroutine(listener.run(self._shutdown_timeout)))
        for timer in timers.values():
            self._listener_futures.append(invoker.run_coroutine(timer.run()))
        self._server = ServerThread(front_door, port=port, name="functions-host")
        self._server.start()
        self._wait_for_receivers()

    def _wait_for_receivers(self) -> None:
        deadline = time.monotonic() + self._listener_start_timeout
        while not self.servicebus_listeners_connected:
            if time.monotonic() > deadline:
                waiting = [listener.function.name for listener in self._bus_listeners if not listener.connected]
                logger.warning("Service Bus receivers of %s are not connected yet; they keep retrying", waiting)
                return
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop gracefully (see the module docstring). Safe to call twice."""
        if self._state == "Stopped":
            return
        self._state = "Stopping"
        self._shutdown()

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self._shutdown_timeout
        invoker = self._invoker
        if invoker is not None:
            stops: list[Callable[[], None]] = [listener.request_stop for listener in self._bus_listeners]
            stops += [timer.request_stop for timer in self._timers.values()]
            for request_stop in stops:
                invoker.loop.call_soon_threadsafe(request_stop)
        if self._server is not None:
            self._server.stop(timeout=max(1.0, deadline - time.monotonic()))
        if invoker is not None:
            with self._futures_lock:
                pending = list(self._listener_futures)
            concurrent.futures.wait(pending, timeout=max(0.0, deadline - time.monotonic()) + 5.0)
            if not invoker.wait_idle(max(0.0, deadline - time.monotonic())):
                logger.warning("%d invocation(s) still running at shutdown", invoker.in_flight)
            invoker.close()
        if self._settings is not None:
            self._settings.restore_environment()
        self._server = None
        self._invoker = None
        self._bus_listeners = []
        self._timers = {}
        self._listener_futures = []
        self._state = "Stopped"

    def __enter__(self) -> FunctionsRunner:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- invocation --------------------------------------------------------------------------------------------

    def _submit(self, function: FunctionMetadata, payload: Any, reason: str) -> concurrent.futures.Future[Any]:
        invoker = self._require(self._invoker, "the runner is not started")
        future: concurrent.futures.Future[Any] = invoker.submit(function, payload, reason=reason)
        return future

    def _track(self, future: concurrent.futures.Future[Any]) -> None:
        """Remember a queued manual timer run so shutdown waits for it; forget finished ones."""
        with self._futures_lock:
            self._listener_futures = [known for known in self._listener_futures if not known.done()]
            self._listener_futures.append(future)

    def _timer(self, name: str) -> TimerListener:
        timer = self._timers.get(name)
        if timer is None and name in self._functions and self._functions[name].trigger_type == TIMER_TRIGGER:
            timer = self._disabled_timer(name)
        if timer is None:
            known = ", ".join(sorted(self._timers)) or "none"
            raise KeyError(f"no timer-triggered function {name!r} (timer functions: {known})")
        return timer

    def invoke_timer(
        self, name: str, *, wait: bool = True, timeout: float | None = 60.0
    ) -> concurrent.futures.Future[None]:
        """Run timer function ``name`` now (after any run in progress), like the host's admin API.

        With ``wait`` it blocks until the run ends and re-raises the function's exception
        (``TimeoutError`` after ``timeout`` seconds). Returns the run's future either way.
        Raises KeyError for an unknown timer function, RuntimeError when the runner is not running.
        """
        if self._state != "Running":
            raise RuntimeError("the runner is not running")
        timer = self._timer(name)
        invoker = self._require(self._invoker, "the runner is not started")
        scheduled = datetime.datetime.now(datetime.UTC)
        future: concurrent.futures.Future[None] = invoker.run_coroutine(timer.fire(scheduled, MANUAL_REASON))
        self._track(future)
        if wait:
            future.result(timeout)
        return future

    def _disabled_timer(self, name: str) -> TimerListener:
        """A listener that never runs on schedule, so a disabled timer can still be invoked by hand, as in the host."""
        settings = self._require(self._settings, "the runner is not started")
        timer = TimerListener.resolve(self._functions[name], settings, self._submit)
        self._timers[name] = timer
        return timer

    def timer_runs(self, name: str) -> int:
        """How many times timer function ``name`` has started since the runner started."""
        return self._timer(name).runs

    def _admin_invoke(self, name: str, payload_input: str) -> concurrent.futures.Future[Any]:
        if self._state != "Running":
            raise RuntimeError("the host is not running")
        function = self._functions[name]
        if function.trigger_type == TIMER_TRIGGER:
            invoker = self._require(self._invoker, "the runner is not started")
            scheduled = datetime.datetime.now(datetime.UTC)
            future: concurrent.futures.Future[Any] = invoker.run_coroutine(
                self._timer(name).fire(scheduled, ADMIN_REASON)
            )
            self._track(future)
            return future
        if function.trigger_type == SERVICEBUS_TRIGGER:
            payload: Any = admin_message(payload_input)
            if str(function.trigger.get("cardinality") or "one").lower() == "many":
                payload = [payload]
            return self._submit(function, payload, ADMIN_REASON)
        raise RuntimeError(f"function {name} has a {HTTP_TRIGGER}; call its route instead")

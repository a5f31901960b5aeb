"""Run function invocations like the Python worker: ``async def`` on one event loop, ``def`` on a thread pool.

The runner owns one ``Invoker``. Every trigger (HTTP, Service Bus, timer, admin API) goes through it, so
in-flight invocations can be counted and awaited on shutdown, and invocations are logged the way the host
logs them (``Executing 'Functions.name'`` / ``Executed 'Functions.name' (Succeeded|Failed)``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import _abc as functions_abc

from devstack.host.loader import CONTEXT_PARAMETER, FunctionMetadata

logger = logging.getLogger("devstack.host")


class _TraceContext(functions_abc.TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RpcException(functions_abc.RpcException):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _RetryContext(functions_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> functions_abc.RpcException:
        return _RpcException()


class InvocationContext(func.Context):
    """The ``context`` argument a function may declare: invocation id, function name and directory."""

    def __init__(self, function_name: str, function_directory: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = _TraceContext()
        self._retry_context = _RetryContext()
        self._local = threading.local()
        self._local.invocation_id = self._invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> functions_abc.RetryContext:
        return self._retry_context


class Invoker:
    """Runs invocations and tracks the ones in flight.

    ``async def`` functions run on the worker event loop (a thread this class owns), ``def`` functions on a
    thread pool of ``max_threads``. ``submit`` may be called from any thread and returns a
    ``concurrent.futures.Future`` with the function's return value or exception.
    """

    def __init__(self, app_dir: Path, *, max_threads: int = 64) -> None:
        self._app_dir = app_dir
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="func")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="devstack-host-worker", daemon=True)
        self._in_flight = 0
        self._idle = threading.Condition()
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The worker event loop; trigger listeners run their coroutines on it."""
        return self._loop

    @property
    def in_flight(self) -> int:
        with self._idle:
            return self._in_flight

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def run_coroutine(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Schedule a listener coroutine on the worker loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def submit(self, function: FunctionMetadata, payload: Any, *, reason: str) -> concurrent.futures.Future[Any]:
        """Invoke ``function`` with ``payload`` as its trigger argument; the future holds its result.

        Raises RuntimeError when the invoker is shut down.
        """
        if self._loop.is_closed() or not self._loop.is_running():
            raise RuntimeError("the function host is stopped")
        with self._idle:
            self._in_flight += 1
        context = InvocationContext(function.name, str(self._app_dir))
        arguments: dict[str, Any] = {function.trigger_parameter: payload}
        if function.wants_context:
            arguments[CONTEXT_PARAMETER] = context
        logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function.name, reason, context.invocation_id)
        started = time.monotonic()
        future: concurrent.futures.Future[Any]
        try:
            if function.is_async:
                future = asyncio.run_coroutine_threadsafe(function.handler(**arguments), self._loop)
            else:
                call: Callable[[], Any] = lambda: function.handler(**arguments)  # noqa: E731
                future = self._executor.submit(contextvars.copy_context().run, call)
        except BaseException:
            self._finished()
            raise
        future.add_done_callback(lambda done: self._log_done(function, context, started, done))
        return future

    def _log_done(
        self,
        function: FunctionMetadata,
        context: InvocationContext,
        started: float,
        done: concurrent.futures.Future[Any],
    ) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        error = None if done.cancelled() else done.exception()
        if done.cancelled() or error is not None:
            logger.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)",
                function.name,
                context.invocation_id,
                elapsed_ms,
                exc_info=error,
            )
        else:
            logger.info(
                "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
                function.name,
                context.invocation_id,
                elapsed_ms,
            )
        self._finished()

    def _finished(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no invocation is in flight; False if ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self) -> None:
        """Stop the worker loop and the thread pool; invocations still running are abandoned to finish alone."""
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(_cancel_other_tasks(), self._loop).result(10)
            except (concurrent.futures.TimeoutError, RuntimeError):
                logger.warning("some listener tasks did not stop; closing the worker loop anyway")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

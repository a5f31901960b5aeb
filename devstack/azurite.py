"""Start Microsoft's Azurite (from ``node_modules``) for Blob and Table storage on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from devstack.accounts import DEVSTORE_ACCOUNT_KEY, DEVSTORE_ACCOUNT_NAME

REPO_ROOT = Path(__file__).resolve().parent.parent
_COMMON_FLAGS = ["--silent", "--loose", "--skipApiVersionCheck", "--disableTelemetry"]


class AzuriteNotInstalled(RuntimeError):
    """``node_modules/.bin/azurite-*`` is missing: run ``make setup`` (which runs ``npm ci``)."""


class AzuriteStartError(RuntimeError):
    """An Azurite process exited or did not accept connections in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class _Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


class Azurite:
    """Azurite's Blob and Table services as two child processes sharing ``data_dir``.

    ``blob_port``/``table_port`` of 0 pick free ports. :meth:`start` waits until both accept
    connections; :meth:`stop` terminates each process group, waits, and kills what is left.
    """

    def __init__(
        self,
        data_dir: Path,
        blob_port: int = 0,
        table_port: int = 0,
        *,
        bin_dir: Path | None = None,
        startup_timeout: float = 60.0,
        in_memory: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.in_memory = in_memory
        self.bin_dir = bin_dir or REPO_ROOT / "node_modules" / ".bin"
        self.startup_timeout = startup_timeout
        self._requested = {"blob": blob_port, "table": table_port}
        self._services: dict[str, _Service] = {}

    # --- endpoints ---------------------------------------------------------------------------

    def _port(self, name: str) -> int:
        if name not in self._services:
            raise RuntimeError("Azurite is not running: call start() first")
        return self._services[name].port

    @property
    def blob_port(self) -> int:
        return self._port("blob")

    @property
    def table_port(self) -> int:
        return self._port("table")

    @property
    def blob_url(self) -> str:
        """``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"http://127.0.0.1:{self.blob_port}/{DEVSTORE_ACCOUNT_NAME}"

    @property
    def table_url(self) -> str:
        """``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"http://127.0.0.1:{self.table_port}/{DEVSTORE_ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """For ``BlobServiceClient``/``TableServiceClient.from_connection_string`` with the well-known account."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEVSTORE_ACCOUNT_NAME};AccountKey={DEVSTORE_ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_url};TableEndpoint={self.table_url};"
        )

    # --- life cycle --------------------------------------------------------------------------

    def _executable(self, name: str) -> Path:
        path = self.bin_dir / f"azurite-{name}"
        if not path.exists():
            raise AzuriteNotInstalled(f"{path} is missing: run `make setup` (it runs `npm ci`) to install Azurite")
        return path

    def _launch(self, name: str) -> _Service:
        executable = self._executable(name)
        port = self._requested[name] or free_port()
        log = self.data_dir / f"azurite-{name}.log"
        with log.open("ab") as log_file:
            process = subprocess.Popen(
                [
                    str(executable),
                    f"--{name}Host",
                    "127.0.0.1",
                    f"--{name}Port",
                    str(port),
                    *(["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.data_dir)]),
                    *_COMMON_FLAGS,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        return _Service(name=name, port=port, process=process, log=log)

    def start(self) -> Azurite:
        """Start both services and wait until they accept connections; returns ``self``.

        Raises :class:`AzuriteNotInstalled` if the npm package is missing, :class:`AzuriteStartError`
        if a process exits or is not listening within ``startup_timeout`` seconds (both are stopped).
        """
        for name in ("blob", "table"):
            self._executable(name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name in ("blob", "table"):
                self._services[name] = self._launch(name)
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        waiting = set(self._services)
        while waiting:
            for name in sorted(waiting):
                service = self._services[name]
                if service.process.poll() is not None:
                    raise AzuriteStartError(
                        f"azurite-{name} exited with {service.process.returncode}:\n{_tail(service.log)}"
                    )
                if _accepts_connections(service.port):
                    waiting.discard(name)
            if waiting and time.monotonic() > deadline:
                name = sorted(waiting)[0]
                raise AzuriteStartError(
                    f"azurite-{name} did not listen on port {self._services[name].port} within "
                    f"{self.startup_timeout:.0f}s:\n{_tail(self._services[name].log)}"
                )
            if waiting:
                time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate each service's process group, wait up to ``timeout`` seconds, then kill it."""
        for service in self._services.values():
            _stop_group(service.process, timeout)
        self._services.clear()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _has_exited(process: subprocess.Popen[bytes]) -> bool:
    # Look without reaping: while the leader is unreaped its pid (and so its group id) cannot be reused.
    result = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return result is not None


def _stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.returncode is not None:  # already reaped: its group id may belong to someone else now
        return
    _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not _has_exited(process) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Whatever is left in the group (the leader if it ignored SIGTERM, or its children) is killed.
    _signal_group(process, signal.SIGKILL)
    process.wait(timeout)


def _tail(log: Path, limit: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"

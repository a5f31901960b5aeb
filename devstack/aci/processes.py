"""Run mode: a container group's containers as sandboxed local processes, supervised by one thread per group.

Init containers run first, one after another; a failing one fails the group. Then the app containers run
together and ``restartPolicy`` decides what happens when one exits (Never, OnFailure, Always), keeping
``restartCount`` and ``previousState`` as ACI does. stdout and stderr are captured per container with a
timestamp per line. Stopping or deleting the group kills each sandbox's whole process group.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devstack.aci.runtime import failed_provisioning_view
from devstack.aci.sandbox import BindMount, arguments_file, sandbox_arguments, sandbox_argv
from devstack.aci.spec import ContainerSpec, GroupSpec
from devstack.aci.state import (
    ContainerState,
    ContainerView,
    Event,
    GroupView,
    ProvisioningFailure,
    restarts,
    terminal_group_state,
)

LOG_LIMIT_BYTES = 4 * 1024 * 1024
POLL_SECONDS = 0.05
KILL_SWEEP_SECONDS = 10.0
NO_COMMAND_EXIT_CODE = 127
BACKOFF_DETAIL = "CrashLoopBackOff: Back-off restarting failed container"


@dataclass
class _Slot:
    """Mutable bookkeeping of one container."""

    spec: ContainerSpec
    restart_count: int = 0
    current: ContainerState | None = None
    previous: ContainerState | None = None
    events: list[Event] = field(default_factory=list)
    log: deque[tuple[float, str]] = field(default_factory=deque)
    log_bytes: int = 0
    process: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = None
    done: bool = False
    restart_at: float | None = None
    backoffs: int = 0

    def add_event(self, name: str, message: str, now: float, kind: str = "Normal") -> None:
        last = self.events[-1] if self.events else None
        if last is not None and last.name == name and last.message == message:
            self.events[-1] = Event(name, message, last.first_timestamp, now, last.count + 1, kind)
        else:
            self.events.append(Event(name, message, now, now, 1, kind))

    def view(self) -> ContainerView:
        return ContainerView(self.restart_count, self.current, self.previous, tuple(self.events))


def _alive_in_group(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is alive (a zombie waiting for its reaper is not)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def exit_code_of(returncode: int) -> int:
    """A shell-style exit code: a process killed by signal N exits 128+N, as containers report it."""
    return 128 - returncode if returncode < 0 else returncode


class ProcessGroup:
    """A container group whose containers run as bubblewrap sandboxes. Implements ``GroupRuntime``."""

    def __init__(
        self,
        spec: GroupSpec,
        *,
        bwrap: str,
        workdir: Path,
        files_root: Path,
        clock: Callable[[], float],
        failure: ProvisioningFailure | None = None,
        restart_backoff: float = 1.0,
        restart_backoff_cap: float = 300.0,
    ) -> None:
        """``restart_backoff`` is the first delay (real seconds) before a restart; it doubles up to the cap."""
        self._spec = spec
        self._restart_backoff = restart_backoff
        self._restart_backoff_cap = restart_backoff_cap
        self._bwrap = bwrap
        self._workdir = workdir
        self._files_root = files_root
        self._clock = clock
        self._failure = failure
        self._lock = threading.RLock()
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._init = {c.name: _Slot(c) for c in spec.init_containers}
        self._main = {c.name: _Slot(c) for c in spec.containers}
        self._provisioning = "Pending"
        self._state = "Pending"
        self._stopped = False
        self._deployed_at = clock()
        self._failed_at: float | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the supervisor thread that deploys and runs the group."""
        with self._lock:
            self._stop.clear()
            self._thread = threading.Thread(target=self._supervise, name=f"aci-{self._spec.name}", daemon=True)
            self._thread.start()

    def stop(self, now: float) -> None:
        """Kill every process and wait for the supervisor; the group shows Stopped."""
        self._halt()
        with self._lock:
            self._stopped = True
            self._state = "Stopped"

    def start(self, now: float) -> None:
        """Deploy a stopped or finished group again; a running group is left alone."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._reset(keep_restart_counts=False)
        self.launch()

    def restart(self, now: float) -> None:
        """Kill and rerun every container in place; restart counts grow by one."""
        self._halt()
        with self._lock:
            self._reset(keep_restart_counts=True)
            for slot in self._main.values():
                slot.restart_count += 1
        self.launch()

    def terminate(self) -> None:
        """Kill everything and remove the group's private folders (secrets, emptyDir)."""
        self._halt()
        for folder, _, _ in os.walk(self._workdir):
            os.chmod(folder, 0o700)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def _halt(self) -> None:
        """Stop supervising, kill every sandbox and record killed containers as Terminated."""
        self._stop.set()
        with self._lock:
            slots = [*self._init.values(), *self._main.values()]
        for slot in slots:
            self._kill(slot)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        with self._lock:
            for slot in slots:
                self._kill(slot)
                running = slot.current is not None and slot.current.state == "Running"
                if running and slot.process is not None and slot.process.poll() is not None:
                    self._finish(slot)
                    slot.done = True
        for slot in slots:
            if slot.reader is not None:
                slot.reader.join(timeout=5)

    def _reset(self, keep_restart_counts: bool) -> None:
        self._stopped = False
        self._provisioning = "Pending"
        self._state = "Pending"
        self._deployed_at = self._clock()
        for slot in [*self._init.values(), *self._main.values()]:
            slot.done = False
            slot.process = None
            slot.restart_at = None
            slot.backoffs = 0
            if not keep_restart_counts:
                slot.restart_count = 0
                slot.previous = None
            elif slot.current is not None and slot.current.state == "Terminated":
                slot.previous = slot.current
            slot.current = None

    # --- reading ---------------------------------------------------------------------------------

    def view(self, now: float) -> GroupView:
        """The group as it is now."""
        with self._lock:
            if self._failure is not None and self._failed_at is not None:
                return failed_provisioning_view(self._spec, self._failure, self._deployed_at, self._failed_at)
            return GroupView(
                provisioning_state=self._provisioning,
                state=self._state,
                containers={name: slot.view() for name, slot in self._main.items()},
                init_containers={name: slot.view() for name, slot in self._init.items()},
            )

    def logs(self, container: str, now: float) -> list[tuple[float, str]]:
        """The captured lines of ``container`` (all runs, capped at 4 MB)."""
        slot = self._main.get(container) or self._init.get(container)
        if slot is None:
            return []
        with self._log_lock:
            return list(slot.log)

    # --- supervision -----------------------------------------------------------------------------

    def _supervise(self) -> None:
        now = self._clock()
        with self._lock:
            self._provisioning = "Creating"
            for slot in [*self._init.values(), *self._main.values()]:
                slot.add_event("Pulling", f'pulling image "{slot.spec.image}"', now)
            if self._failure is not None:
                self._failed_at = self._clock()
                self._provisioning = "Failed"
                return
            for slot in [*self._init.values(), *self._main.values()]:
                slot.add_event("Pulled", f'Successfully pulled image "{slot.spec.image}"', self._clock())
                slot.current = ContainerState("Waiting", detail_status="")
        mounts = self._prepare_volumes()
        for slot in self._init.values():
            with self._lock:
                if self._stop.is_set():
                    return
                self._spawn(slot, mounts)
            code = self._wait(slot)
            if code is None:
                return
            if code != 0:
                with self._lock:
                    self._provisioning = "Succeeded"
                    self._state = "Failed"
                return
        with self._lock:
            if self._stop.is_set():
                return
            for slot in self._main.values():
                self._spawn(slot, mounts)
            self._provisioning = "Succeeded"
            self._state = "Running"
        self._watch(mounts)

    def _watch(self, mounts: dict[str, list[BindMount]]) -> None:
        while not self._stop.wait(POLL_SECONDS):
            with self._lock:
                for slot in self._main.values():
                    if slot.done:
                        continue
                    if slot.restart_at is not None:
                        if time.monotonic() >= slot.restart_at:
                            slot.restart_at = None
                            slot.restart_count += 1
                            self._spawn(slot, mounts)
                        continue
                    if slot.process is None:
                        slot.done = True  # it could not start (no command); restarting cannot help
                        continue
                    if slot.process.poll() is None:
                        continue
                    code = self._finish(slot)
                    if restarts(self._spec.restart_policy, code):
                        self._back_off(slot)
                    else:
                        slot.done = True
                if all(slot.done for slot in self._main.values()):
                    codes = [
                        slot.current.exit_code if slot.current and slot.current.exit_code is not None else 1
                        for slot in self._main.values()
                    ]
                    self._state = terminal_group_state(codes)
                    return

    def _back_off(self, slot: _Slot) -> None:
        """Schedule a restart after an exponential back-off, showing CrashLoopBackOff meanwhile."""
        delay = min(self._restart_backoff * 2**slot.backoffs, self._restart_backoff_cap)
        slot.backoffs += 1
        slot.previous = slot.current
        slot.current = ContainerState("Waiting", detail_status=BACKOFF_DETAIL)
        slot.add_event("BackOff", BACKOFF_DETAIL, self._clock(), "Warning")
        slot.restart_at = time.monotonic() + delay

    def _wait(self, slot: _Slot) -> int | None:
        while not self._stop.wait(POLL_SECONDS):
            with self._lock:
                if slot.process is None:
                    slot.done = True
                    return slot.current.exit_code if slot.current else NO_COMMAND_EXIT_CODE
                if slot.process.poll() is not None:
                    code = self._finish(slot)
                    slot.done = True
                    return code
        return None

    def _finish(self, slot: _Slot) -> int:
        assert slot.process is not None
        if slot.reader is not None:
            slot.reader.join(timeout=5)
        code = exit_code_of(slot.process.returncode)
        now = self._clock()
        start = slot.current.start_time if slot.current else now
        slot.current = ContainerState("Terminated", start, now, code, "Completed" if code == 0 else "Error")
        slot.add_event("Killing" if code == 137 else "Stopped", f"Container exited with code {code}", now)
        return code

    def _spawn(self, slot: _Slot, mounts: dict[str, list[BindMount]]) -> None:
        now = self._clock()
        if not slot.spec.command:
            message = "Run mode needs an exec-form command: the image's entrypoint is not available locally."
            slot.current = ContainerState("Terminated", now, now, NO_COMMAND_EXIT_CODE, message)
            slot.process = None
            slot.add_event("Failed", message, now, "Warning")
            return
        arguments = sandbox_arguments(slot.spec.environment, mounts.get(slot.spec.name, []), self._spec.name)
        fd = arguments_file(arguments)
        try:
            slot.process = subprocess.Popen(
                sandbox_argv(self._bwrap, fd, slot.spec.command, marker=str(self._workdir)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                pass_fds=(fd,),
            )
        finally:
            os.close(fd)
        slot.current = ContainerState("Running", start_time=now)
        slot.add_event("Started", "Started container", now)
        stream = slot.process.stdout
        assert stream is not None
        slot.reader = threading.Thread(target=self._read, args=(slot, stream), daemon=True)
        slot.reader.start()

    def _read(self, slot: _Slot, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self._append_log(slot, self._clock(), raw.decode("utf-8", errors="replace"))

    def _append_log(self, slot: _Slot, now: float, line: str) -> None:
        with self._log_lock:
            slot.log.append((now, line))
            slot.log_bytes += len(line)
            while slot.log_bytes > LOG_LIMIT_BYTES and slot.log:
                _, dropped = slot.log.popleft()
                slot.log_bytes -= len(dropped)

    @staticmethod
    def _kill(slot: _Slot) -> None:
        """Kill the sandbox's whole process group, and keep killing until no live process is left in it.

        One SIGKILL to the group is not enough: bubblewrap may be forking its PID-namespace child at that moment,
        and a child that misses the signal and the parent-death signal outlives the sandbox. Every process of
        the sandbox keeps bubblewrap's process group, so the group is swept until none of it is alive.
        """
        process = slot.process
        if process is None:
            return
        deadline = time.monotonic() + KILL_SWEEP_SECONDS
        while True:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            process.poll()
            if not _alive_in_group(process.pid):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox {process.pid} of {slot.spec.name} would not die")
            time.sleep(0.005)
        process.wait(timeout=30)

    def _prepare_volumes(self) -> dict[str, list[BindMount]]:
        """Create emptyDir folders and secret files, and map each container to its bind mounts."""
        sources: dict[str, tuple[Path, bool]] = {}
        for volume in self._spec.volumes.values():
            folder = self._workdir / "volumes" / volume.name
            if volume.kind == "azureFile" and volume.azure_file is not None:
                share = self._files_root / volume.azure_file.account / volume.azure_file.share
                sources[volume.name] = (share, volume.azure_file.read_only)
            elif volume.kind == "secret":
                folder.mkdir(parents=True, exist_ok=True)
                for file_name, encoded in volume.secret.items():
                    path = folder / file_name
                    path.write_bytes(base64.b64decode(encoded))
                    path.chmod(0o400)
                folder.chmod(0o500)
                sources[volume.name] = (folder, True)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                sources[volume.name] = (folder, False)
        mounts: dict[str, list[BindMount]] = {}
        for container in (*self._spec.init_containers, *self._spec.containers):
            mounts[container.name] = [
                BindMount(sources[m.volume][0], m.mount_path, m.read_only or sources[m.volume][1])
                for m in container.mounts
                if m.volume in sources
            ]
        return mounts

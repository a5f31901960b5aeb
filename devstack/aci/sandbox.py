"""Bubblewrap sandboxes for run mode: how one container's command becomes a ``bwrap`` invocation.

The image is not pulled. A container runs its exec-form ``command`` with the host's own tools, inside a sandbox
that sees the host's system folders read-only and nothing else of the host, a fresh ``/tmp``, its own ``/proc``,
``/dev`` and namespaces (PID, IPC, UTS, network), a clean environment, and its volumes bind-mounted where the spec
says. Unlike ACI, the containers of one group do not share a network namespace (no localhost between them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "Run mode needs bubblewrap (bwrap) to sandbox container processes, and it was not found on PATH. "
    "Install it with `apt-get install bubblewrap`, or use mode='simulate'."
)
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SANDBOX_HOME = "/root"
_FRESH = ("/tmp", "/proc", "/dev")  # noqa: S108 - paths inside the sandbox, each a fresh mount


class SandboxUnavailable(RuntimeError):
    """Bubblewrap is missing, so run mode cannot start containers."""


@dataclass(frozen=True)
class BindMount:
    """A host folder made visible at ``target`` inside the sandbox."""

    source: Path
    target: str
    read_only: bool


def find_bwrap() -> str:
    """The path of ``bwrap``; raises :class:`SandboxUnavailable` with install instructions when missing."""
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(INSTALL_HINT)
    return found


SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Host folders a sandbox sees, read-only: the tools jobs run (there are no images locally). Nothing else of the
host: not devstack's state (the vaults' files, the host keys), not the repository, not other jobs' folders."""
SYSTEM_FILES = (
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
)


def _system() -> list[str]:
    args: list[str] = []
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    args += ["--dir", "/etc"]
    for name in SYSTEM_FILES:
        args += ["--ro-bind-try", name, name]
    return args


def sandbox_arguments(
    environment: Mapping[str, str],
    mounts: Sequence[BindMount],
    hostname: str | None = None,
) -> list[str]:
    """The ``bwrap`` options that give a command ``environment`` and ``mounts``, to be read through a file
    descriptor (``bwrap --args FD``) so that no value, secure ones included, is on a command line
    (``/proc/*/cmdline`` is readable by every process of the host). The command follows on the command line.

    The root is an empty tmpfs holding only the read-only system folders, a fresh ``/tmp``, ``/proc`` and ``/dev``,
    an empty home, and the container's own mounts. The sandbox has its own PID, IPC, UTS and network namespaces: it
    sees no other process and reaches no emulator (only its own loopback).
    """
    args = ["--tmpfs", "/", *_system()]
    args += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--dir", SANDBOX_HOME]  # noqa: S108 - private
    # No --new-session: every process of the sandbox must stay in bubblewrap's process group, which a kill sweeps.
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-net", "--die-with-parent", "--clearenv"]
    if hostname:
        args += ["--unshare-uts", "--hostname", hostname]
    args += ["--setenv", "PATH", SANDBOX_PATH, "--setenv", "HOME", SANDBOX_HOME]
    for name, value in environment.items():
        args += ["--setenv", name, value]
    for mount in mounts:
        args += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
    args += ["--chdir", "/"]
    return args


def arguments_file(arguments: Sequence[str]) -> int:
    """An anonymous in-memory file holding ``arguments`` NUL-separated, positioned at its start, for ``--args``."""
    fd = os.memfd_create("bwrap-args", 0)
    data = b"".join(a.encode() + b"\0" for a in arguments)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def sandbox_argv(bwrap: str, fd: int, command: Sequence[str], *, marker: str | None = None) -> list[str]:
    """The ``bwrap`` command line: the options come from ``fd``, then ``command``. ``marker`` (a path that is never
    bound: a bind of a missing source is skipped) marks the command line so a check can find a sandbox that
    outlived its group."""
    argv = [bwrap]
    if marker:
        argv += ["--ro-bind-try", f"{marker}/.sandbox-marker", "/.sandbox-marker"]
    return [*argv, "--args", str(fd), "--", *command]

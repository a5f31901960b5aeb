"""Bubblewrap sandboxes for run mode: how one container's command becomes a ``bwrap`` command line.

The image is not pulled. A container runs its exec-form ``command`` with the host's own tools, inside a
sandbox with the host root filesystem read-only, a fresh ``/tmp``, its own ``/proc``, ``/dev`` and PID
namespace, a clean environment, and its volumes bind-mounted where the spec says.
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


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _deepest_existing(target: str) -> str:
    current = target
    while current != "/" and not os.path.lexists(current):
        current = os.path.dirname(current)
    return current


def _shadow_folders(mounts: Sequence[BindMount]) -> list[str]:
    """Host folders to replace by a tmpfs (re-binding their children) so missing mount points can be created."""
    shadows: set[str] = set()
    for mount in mounts:
        if os.path.lexists(mount.target) or any(_under(mount.target, fresh) for fresh in _FRESH):
            continue
        shadows.add(_deepest_existing(mount.target))
    return sorted(shadows, key=lambda folder: folder.count("/") if folder != "/" else 0)


def _rebind_children(folder: str, skip: str | None = None) -> list[str]:
    args: list[str] = []
    for entry in sorted(os.listdir(folder)):
        host = os.path.join(folder, entry)
        if host == skip or any(_under(host, fresh) for fresh in _FRESH):
            continue
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
        else:
            args += ["--ro-bind-try", host, host]
    return args


def sandbox_command(
    bwrap: str,
    command: Sequence[str],
    environment: Mapping[str, str],
    mounts: Sequence[BindMount],
    hostname: str | None = None,
    *,
    marker: str | None = None,
) -> list[str]:
    """The full ``bwrap`` argv that runs ``command`` with ``environment`` and ``mounts``.

    The host root is bound read-only (``--ro-bind / /``). When a mount target does not exist on the host,
    its deepest existing parent is covered by a tmpfs whose original entries are bound back read-only, so
    bubblewrap can create the mount point; a target directly under ``/`` uses per-entry root binds instead.
    """
    shadows = _shadow_folders(mounts)
    args = [bwrap]
    if "/" in shadows:
        args += ["--tmpfs", "/", *_rebind_children("/")]
    else:
        args += ["--ro-bind", "/", "/"]
    for folder in shadows:
        if folder != "/":
            args += ["--tmpfs", folder, *_rebind_children(folder)]
    args += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]  # noqa: S108 - a private tmpfs
    args += ["--unshare-pid", "--die-with-parent", "--clearenv"]
    if hostname:
        args += ["--unshare-uts", "--hostname", hostname]
    args += ["--setenv", "PATH", SANDBOX_PATH, "--setenv", "HOME", SANDBOX_HOME]
    if marker:
        # A bind of a source that does not exist is skipped: the path only marks the command line of every process
        # of the sandbox, so a check can find one that outlived its group. Nothing shows inside.
        args += ["--ro-bind-try", f"{marker}/.sandbox-marker", "/.sandbox-marker"]
    for name, value in environment.items():
        args += ["--setenv", name, value]
    for mount in mounts:
        args += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
    args += ["--chdir", "/", "--", *command]
    return args

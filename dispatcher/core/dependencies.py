"""Whether a waiting job may run: its dependencies' statuses against their conditions. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from dispatcher.domain.jobs import Status
from dispatcher.domain.spec import Dependency


class Verdict(StrEnum):
    WAIT = "wait"
    READY = "ready"
    FAIL = "fail"


CYCLE = "dependency cycle: "


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    missing: tuple[str, ...] = ()
    failed: str | None = None
    """The dependency that ended in a way that never meets its condition."""


def cycle_reason(path: Sequence[str]) -> str:
    return CYCLE + " -> ".join(path)


def in_cycle(reason: str | None, job_id: str) -> bool:
    """Whether ``reason`` is a cycle's and names ``job_id``: a member of a cycle fails for the cycle, not for the
    member that happened to fail first."""
    return reason is not None and reason.startswith(CYCLE) and job_id in reason.removeprefix(CYCLE).split(" -> ")


def decide(dependencies: Sequence[Dependency], statuses: Mapping[str, Status | None]) -> Decision:
    """``READY`` once every dependency meets its condition; ``FAIL`` as soon as one ended in a way that never
    will (naming it); else ``WAIT``, with the ids not recorded yet.

    ``Succeeded`` is met only by Succeeded; ``Completed`` by any end, Rejected and Cancelled included.
    """
    missing: list[str] = []
    waiting = False
    for dependency in dependencies:
        status = statuses.get(dependency.job)
        if status is None:
            missing.append(dependency.job)
        elif not status.terminal:
            waiting = True
        elif dependency.condition == "Succeeded" and status is not Status.SUCCEEDED:
            reason = f"dependency {dependency.job} ended {status.value}; this job needs it to succeed"
            return Decision(Verdict.FAIL, reason, failed=dependency.job)
    if missing or waiting:
        return Decision(Verdict.WAIT, missing=tuple(missing))
    return Decision(Verdict.READY)


def cycle_through(start: str, edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle through ``start`` in ``edges`` (job → the jobs it waits on), as the path
    ``[start, ..., start]``, or ``None``."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None

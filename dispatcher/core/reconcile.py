"""The reconciler's decisions: from recorded jobs and observed groups to actions. Pure: no I/O.

:mod:`dispatcher.service.reconciler` gathers the facts and performs the actions these functions return.

One tick, per pool, the handler gathers the pool's reservations (its active set) and the paged list of
the pool's groups; it ``get``s the groups :func:`groups_to_inspect` picks within the tick's read budget,
reads the job records :func:`needs_record` asks for (a running job's record is read only when something
is to be done), then calls :func:`decide` and applies the actions it returns, each idempotently.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dispatcher.domain.jobs import Attempt, JobRecord, Status
from dispatcher.domain.naming import TAG_CREATED, TAG_INSTANCE
from dispatcher.domain.observed import GroupSummary, GroupView
from dispatcher.domain.placement import Reservation

FAILURE_EVENTS = frozenset({"Failed", "FailedMount", "BackOff", "ErrImagePull", "ImagePullBackOff", "FailedSync"})


@dataclass(frozen=True)
class MarkStarted:
    """The group runs: record the attempt as Running."""

    job_id: str
    group: str
    started_at: dt.datetime


@dataclass(frozen=True)
class Finish:
    """The attempt is over: harvest what there is, delete the group, record the outcome (or a retry)."""

    job_id: str
    group: str
    outcome: Status
    reason: str
    stop_first: bool = False
    exists: bool = True
    lost: bool = False


@dataclass(frozen=True)
class NoteStarted:
    """The record says Running but the reservation does not know it yet: tell it, so the record is not re-read."""

    group: str


@dataclass(frozen=True)
class Relaunch:
    """A claimed attempt whose group was never confirmed: PUT it again under the same name."""

    job_id: str
    group: str


@dataclass(frozen=True)
class Cleanup:
    """A reservation whose job no longer needs it: delete its group if it exists, then release it."""

    group: str
    delete_group: bool
    reason: str


@dataclass(frozen=True)
class DeleteOrphan:
    """A group tagged by this dispatcher that no job owns, past the grace period."""

    group: str


Action = MarkStarted | NoteStarted | Finish | Relaunch | Cleanup | DeleteOrphan


def outcome_of(view: GroupView) -> tuple[Status, str]:
    """Succeeded when every container exited 0; otherwise Failed, with the exit codes as the reason."""
    failed_init = [c for c in view.init_containers if c.exit_code not in (None, 0)]
    if failed_init:
        return Status.FAILED, "init container " + ", ".join(f"{c.name} exited {c.exit_code}" for c in failed_init)
    codes = {c.name: c.exit_code for c in view.containers}
    if codes and all(code == 0 for code in codes.values()):
        return Status.SUCCEEDED, "every container exited 0"
    bad = ", ".join(f"{name} exited {code}" for name, code in codes.items() if code != 0)
    return Status.FAILED, bad or f"the group ended in state {view.state}"


EVICTION_STATES = ("Repairing", "Unhealthy")
"""Provisioning states in which ACI moves a group to other hosts, restarting its containers."""


def evicted(record: JobRecord, view: GroupView) -> str | None:
    """Why a Spot group's attempt was taken away by the platform, or ``None``.

    ACI documents that an evicted Spot group is restarted automatically, and no state or event name for it; so
    an eviction is recognised by its effects: a container of a ``Never`` restart policy that restarted, a group
    being repaired, or a group Stopped that the dispatcher did not stop (every stop of its own is recorded first
    as the attempt's ``ending``). A restart reruns the work from the start, so the attempt is lost either way.
    """
    spec = record.job_spec
    if spec.priority != "Spot":
        return None
    if view.provisioning_state in EVICTION_STATES:
        return f"evicted: the Spot group is {view.provisioning_state} (moved by ACI)"
    restarted = [c.name for c in view.containers if c.restart_count > 0]
    if restarted and spec.restart_policy == "Never":
        return f"evicted: the Spot group was restarted by ACI (container {restarted[0]} restarted)"
    if view.state == "Stopped":
        return "evicted: the Spot group was stopped by ACI"
    return None


def stuck_reason(view: GroupView) -> str | None:
    """The ACI event that explains why the group cannot start, if there is one."""
    if view.provisioning_state == "Failed":
        failures = [e for e in view.all_events if e.name in FAILURE_EVENTS or e.type == "Warning"]
        event = failures[-1] if failures else None
        return f"provisioning failed: {event.name}: {event.message}" if event else "provisioning failed"
    for container in (*view.init_containers, *view.containers):
        if container.state == "Waiting":
            failures = [e for e in container.events if e.name in FAILURE_EVENTS]
            if failures:
                return f"container {container.name} cannot start: {failures[-1].name}: {failures[-1].message}"
    return None


def _deadline(attempt: Attempt, timeout_seconds: int) -> dt.datetime | None:
    start = attempt.launched_at
    return start + dt.timedelta(seconds=timeout_seconds) if start else None


def _overdue(reservation: Reservation, now: dt.datetime) -> bool:
    return now >= reservation.earliest_deadline


@dataclass(frozen=True)
class Inspection:
    """The groups to ``get`` this run, in order: ``first`` urgent or starting ones, then a round over the ``size``
    others that began at ``start`` of their stable order."""

    names: list[str]
    first: int = 0
    start: int = 0
    size: int = 0

    def cursor(self, inspected: int) -> int:
        """Where the next run's round begins when only the first ``inspected`` of :attr:`names` were got."""
        if not self.size:
            return 0
        return (self.start + max(min(inspected, len(self.names)) - self.first, 0)) % self.size


def groups_to_inspect(
    reservations: Sequence[Reservation],
    listed: Mapping[str, GroupSummary],
    now: dt.datetime,
    *,
    limit: int,
    cursor: int = 0,
    share: float = 1.0,
) -> Inspection:
    """The reserved groups to ``get`` this tick, at most ``limit`` (ARM's read budget), in order.

    Only a ``get`` shows a group's state. Groups that may be past their timeout or asked to cancel come
    first, then groups whose start is not recorded yet (a change is likely in both), then the rest in a stable
    order starting at ``cursor``: at most ``share`` of them (rounded up), so that with runs every few seconds
    each running group is read every few runs, not every run. :meth:`Inspection.cursor` moves past the groups
    inspected, so that successive ticks go round all of them even when there are more than ``limit`` or a run
    stops early.
    """
    urgent, starting, rest = [], [], []
    for reservation in reservations:
        if reservation.group not in listed:
            continue
        if reservation.cancel_requested or _overdue(reservation, now):
            urgent.append(reservation.group)
        elif not reservation.started:
            starting.append(reservation.group)
        else:
            rest.append(reservation.group)
    first = (urgent + sorted(starting))[: max(limit, 0)]
    rest.sort()
    slots = min(max(limit - len(first), 0), len(rest), math.ceil(len(rest) * min(max(share, 0.0), 1.0)))
    if not rest:
        return Inspection(first, len(first))
    start = cursor % len(rest)
    turn = (rest[start:] + rest[:start])[:slots]
    return Inspection(first + turn, len(first), start, len(rest))


def needs_record(
    reservation: Reservation, listed: Mapping[str, GroupSummary], views: Mapping[str, GroupView], now: dt.datetime
) -> bool:
    """Whether deciding about ``reservation`` needs its job record: only when something may have to be done."""
    if reservation.cancel_requested or reservation.group not in listed or _overdue(reservation, now):
        return True
    view = views.get(reservation.group)
    if view is None:
        return False  # not inspected this tick: nothing is known to have changed
    if view.finished or stuck_reason(view) is not None:
        return True
    if view.provisioning_state in EVICTION_STATES or any(c.restart_count > 0 for c in view.containers):
        return True  # perhaps an eviction; the record says whether the job is Spot
    return not reservation.started and any(c.state in ("Running", "Terminated") for c in view.containers)


def decide(
    reservations: Sequence[Reservation],
    records: Mapping[str, JobRecord | None],
    listed: Mapping[str, GroupSummary],
    views: Mapping[str, GroupView],
    now: dt.datetime,
    *,
    instance: str,
    default_timeout: int,
    stuck_grace: dt.timedelta,
    orphan_grace: dt.timedelta,
    launch_grace: dt.timedelta,
) -> list[Action]:
    """Every action one pool needs now, given its reservations, the records read and what ACI shows.

    ``records`` maps the job ids whose record was read to the record, or to ``None`` when there is none;
    a reservation whose record was not read (:func:`needs_record` said so) needs nothing this tick.
    """
    actions: list[Action] = []
    owned: set[str] = set()
    for reservation in reservations:
        owned.add(reservation.group)
        if reservation.job_id not in records:
            continue
        record = records[reservation.job_id]
        attempt = record.current if record else None
        exists = reservation.group in listed
        if record is None or attempt is None or attempt.group != reservation.group:
            actions.append(Cleanup(reservation.group, exists, "the reservation has no current attempt"))
            continue
        if record.status.terminal or attempt.outcome is not None:
            actions.append(Cleanup(reservation.group, exists, f"the job is {record.status}"))
            continue
        action = _decide_attempt(
            record,
            attempt=attempt,
            listed=listed,
            views=views,
            now=now,
            default_timeout=default_timeout,
            stuck_grace=stuck_grace,
            launch_grace=launch_grace,
        )
        if action is not None:
            actions.append(action)
        elif record.status is Status.RUNNING and not reservation.started:
            actions.append(NoteStarted(reservation.group))

    for name, summary in listed.items():
        if name in owned or summary.tags.get(TAG_INSTANCE) != instance:
            continue
        created = summary.tags.get(TAG_CREATED)
        try:
            created_at = dt.datetime.fromisoformat(created) if created else None
        except ValueError:
            created_at = None
        if created_at is None or now - created_at >= orphan_grace:
            actions.append(DeleteOrphan(name))
    return actions


def _decide_attempt(
    record: JobRecord,
    *,
    attempt: Attempt,
    listed: Mapping[str, GroupSummary],
    views: Mapping[str, GroupView],
    now: dt.datetime,
    default_timeout: int,
    stuck_grace: dt.timedelta,
    launch_grace: dt.timedelta,
) -> Action | None:
    name = attempt.group
    if record.cancel_requested:
        return Finish(record.id, name, Status.CANCELLED, "cancelled on request", stop_first=name in listed)
    if attempt.launched_at is None:
        return Relaunch(record.id, name) if now - attempt.reserved_at >= launch_grace else None
    if attempt.ending is not None:  # a run decided and stopped, and did not get to record the outcome
        view = views.get(name)
        running = name in listed and (view is None or not view.finished)
        ending = attempt.ending
        return Finish(
            record.id, name, ending.outcome, ending.reason, stop_first=running, exists=name in listed, lost=ending.lost
        )
    if name not in listed:
        if now - attempt.launched_at >= launch_grace:  # a new group may take a moment to show in the list
            return Finish(
                record.id, name, Status.FAILED, "Lost: the group was deleted outside the dispatcher", exists=False
            )
        return None
    view = views.get(name)
    if view is None:
        return None  # vanished between the list and the get: the next tick sees it gone
    eviction = evicted(record, view)
    if eviction is not None:
        return Finish(record.id, name, Status.FAILED, eviction, stop_first=not view.finished, lost=True)
    if view.finished:
        outcome, reason = outcome_of(view)
        return Finish(record.id, name, outcome, reason)
    timeout = record.job_spec.timeout_seconds or default_timeout
    deadline = _deadline(attempt, timeout)
    if deadline is not None and now >= deadline:
        return Finish(record.id, name, Status.TIMED_OUT, f"ran past its timeout of {timeout} s", stop_first=True)
    stuck = stuck_reason(view)
    if stuck is not None and (view.provisioning_state == "Failed" or now - attempt.launched_at >= stuck_grace):
        return Finish(record.id, name, Status.FAILED, stuck)
    if record.status is Status.LAUNCHING and any(c.state in ("Running", "Terminated") for c in view.containers):
        return MarkStarted(record.id, name, view.started_at or now)
    return None

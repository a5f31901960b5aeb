"""The reconciler's decisions: from recorded jobs and observed groups to actions. Pure: no I/O.

One tick, per pool, the handler gathers the pool's reservations (its active set), their job records,
the paged list of the pool's groups and a ``get`` of each group that may have changed state, then calls
:func:`decide` and applies the actions it returns, each idempotently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from dispatcher.azure.mapping import TAG_CREATED, TAG_INSTANCE
from dispatcher.jobs import Attempt, JobRecord, Status
from dispatcher.observed import GroupSummary, GroupView
from dispatcher.placement import Reservation

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


Action = MarkStarted | Finish | Relaunch | Cleanup | DeleteOrphan


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


def groups_to_inspect(records: Iterable[JobRecord], listed: Mapping[str, GroupSummary]) -> list[str]:
    """The groups worth a ``get`` this tick: the current groups of active jobs that the list shows."""
    names = []
    for record in records:
        attempt = record.current
        if attempt and not record.status.terminal and attempt.launched_at and attempt.group in listed:
            names.append(attempt.group)
    return names


def decide(
    reservations: Sequence[Reservation],
    records: Mapping[str, JobRecord],
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
    """Every action one pool needs now, given its reservations, their records and what ACI shows."""
    actions: list[Action] = []
    owned: set[str] = set()
    for reservation in reservations:
        owned.add(reservation.group)
        record = records.get(reservation.job_id)
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
    if name not in listed:
        if now - attempt.launched_at >= launch_grace:  # a new group may take a moment to show in the list
            return Finish(record.id, name, Status.FAILED, "Lost: the group was deleted outside the dispatcher")
        return None
    view = views.get(name)
    if view is None:
        return None  # vanished between the list and the get: the next tick sees it gone
    if view.finished:
        outcome, reason = outcome_of(view)
        return Finish(record.id, name, outcome, reason)
    timeout = int(record.spec.get("timeoutSeconds") or default_timeout)
    deadline = _deadline(attempt, timeout)
    if deadline is not None and now >= deadline:
        return Finish(record.id, name, Status.TIMED_OUT, f"ran past its timeout of {timeout} s", stop_first=True)
    stuck = stuck_reason(view)
    if stuck is not None and (view.provisioning_state == "Failed" or now - attempt.launched_at >= stuck_grace):
        return Finish(record.id, name, Status.FAILED, stuck)
    if record.status is Status.LAUNCHING and any(c.state in ("Running", "Terminated") for c in view.containers):
        return MarkStarted(record.id, name, view.started_at or now)
    return None

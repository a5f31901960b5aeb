"""The reconciler's pure decision, table-tested: (reservations, records, observed groups, now) -> actions."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from dispatcher.adapters.azure.mapping import TAG_CREATED, TAG_INSTANCE
from dispatcher.core.reconcile import (
    Action,
    Cleanup,
    DeleteOrphan,
    Finish,
    MarkStarted,
    NoteStarted,
    Relaunch,
    decide,
    groups_to_inspect,
    needs_record,
    outcome_of,
)
from dispatcher.domain.document import validate_job
from dispatcher.domain.jobs import Attempt, JobRecord, Status
from dispatcher.domain.observed import AciEvent, ContainerView, GroupSummary, GroupView
from dispatcher.domain.placement import Reservation

T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
GROUP = "job-1-a1"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def job(status: Status = Status.RUNNING, *, launched: bool = True, timeout: int = 600, **changes: object) -> JobRecord:
    attempt = Attempt(
        number=1, group=GROUP, pool="p1", location="westeurope", reserved_at=T0, launched_at=T0 if launched else None
    )
    record = JobRecord(
        id="job-1",
        spec=validate_job({"id": "job-1", "image": "busybox", "timeoutSeconds": timeout}),
        spec_hash="h",
        status=status,
        submitted_at=T0,
        updated_at=T0,
        attempts=[attempt],
    )
    return record.model_copy(update=changes)


def container(state: str, exit_code: int | None = None, *events: AciEvent, name: str = "main") -> ContainerView:
    return ContainerView(name=name, state=state, exit_code=exit_code, start_time=T0, events=events)


def view(*containers: ContainerView, state: str | None = "Running", provisioning: str = "Succeeded") -> GroupView:
    return GroupView(name=GROUP, provisioning_state=provisioning, state=state, containers=containers)


LISTED = {GROUP: GroupSummary(GROUP, "Succeeded", {TAG_INSTANCE: "test"})}
RESERVED = [Reservation(GROUP, "job-1", 1, 1.0, T0, timeout_seconds=600, started=True)]
PULL_FAILED = AciEvent("Failed", 'Failed to pull image "nope:1": not found')


def run(
    record: JobRecord | None,
    group: GroupView | None,
    now: dt.datetime,
    *,
    listed: dict[str, GroupSummary] | None = None,
    reservations: list[Reservation] | None = None,
) -> list[Action]:
    return decide(
        RESERVED if reservations is None else reservations,
        {"job-1": record},
        LISTED if listed is None else listed,
        {GROUP: group} if group else {},
        now,
        instance="test",
        default_timeout=3600,
        stuck_grace=dt.timedelta(seconds=120),
        orphan_grace=dt.timedelta(seconds=300),
        launch_grace=dt.timedelta(seconds=60),
    )


@pytest.mark.parametrize(
    ("record", "group", "now", "expected"),
    [
        pytest.param(
            job(),
            view(container("Terminated", 0), state="Succeeded"),
            at(10),
            [Finish("job-1", GROUP, Status.SUCCEEDED, "every container exited 0")],
            id="finished-ok",
        ),
        pytest.param(
            job(),
            view(container("Terminated", 3), state="Failed"),
            at(10),
            [Finish("job-1", GROUP, Status.FAILED, "main exited 3")],
            id="finished-exit-3",
        ),
        pytest.param(job(), view(container("Running")), at(10), [], id="still-running"),
        pytest.param(
            job(Status.LAUNCHING),
            view(container("Running")),
            at(10),
            [MarkStarted("job-1", GROUP, T0)],
            id="launching-now-running",
        ),
        pytest.param(
            job(timeout=5),
            view(container("Running")),
            at(6),
            [Finish("job-1", GROUP, Status.TIMED_OUT, "ran past its timeout of 5 s", stop_first=True)],
            id="timeout",
        ),
        pytest.param(
            job(Status.LAUNCHING),
            view(container("Waiting", None, PULL_FAILED), state="Pending"),
            at(30),
            [],
            id="pull-failure-within-grace",
        ),
        pytest.param(
            job(Status.LAUNCHING),
            view(container("Waiting", None, PULL_FAILED), state="Pending"),
            at(121),
            [
                Finish(
                    "job-1",
                    GROUP,
                    Status.FAILED,
                    'container main cannot start: Failed: Failed to pull image "nope:1": not found',
                )
            ],
            id="pull-failure-past-grace",
        ),
        pytest.param(
            job(Status.LAUNCHING),
            GroupView(GROUP, "Failed", "Pending", events=(AciEvent("FailedMount", "mount error(13)"),)),
            at(5),
            [Finish("job-1", GROUP, Status.FAILED, "provisioning failed: FailedMount: mount error(13)")],
            id="provisioning-failed",
        ),
        pytest.param(
            job(cancel_requested=True),
            view(container("Running")),
            at(5),
            [Finish("job-1", GROUP, Status.CANCELLED, "cancelled on request", stop_first=True)],
            id="cancel",
        ),
        pytest.param(job(Status.LAUNCHING, launched=False), None, at(30), [], id="claimed-being-launched"),
        pytest.param(
            job(Status.LAUNCHING, launched=False),
            None,
            at(61),
            [Relaunch("job-1", GROUP)],
            id="claimed-stale",
        ),
    ],
)
def test_decisions_for_an_active_attempt(
    record: JobRecord, group: GroupView | None, now: dt.datetime, expected: list[Action]
) -> None:
    assert run(record, group, now) == expected


def test_a_group_deleted_out_of_band_is_lost_after_the_list_lag() -> None:
    assert run(job(), None, at(30), listed={}) == []
    assert run(job(), None, at(61), listed={}) == [
        Finish("job-1", GROUP, Status.FAILED, "Lost: the group was deleted outside the dispatcher", exists=False)
    ]


def test_a_reservation_of_a_terminal_job_is_cleaned_up_with_its_group() -> None:
    done = job(Status.SUCCEEDED)
    assert run(done, None, at(5)) == [Cleanup(GROUP, True, "the job is Succeeded")]


def test_a_reservation_without_a_record_is_released() -> None:
    assert run(None, None, at(5), listed={}) == [Cleanup(GROUP, False, "the reservation has no current attempt")]


def test_orphans_are_deleted_only_after_the_grace_period_and_only_our_own() -> None:
    listed = {
        "orphan-young": GroupSummary(
            "orphan-young", "Succeeded", {TAG_INSTANCE: "test", TAG_CREATED: "2026-11-22T12:00:00Z"}
        ),
        "orphan-old": GroupSummary(
            "orphan-old", "Succeeded", {TAG_INSTANCE: "test", TAG_CREATED: "2026-11-22T11:00:00Z"}
        ),
        "someone-else": GroupSummary("someone-else", "Succeeded", {TAG_INSTANCE: "other"}),
        "untagged": GroupSummary("untagged", "Succeeded", {}),
    }
    assert run(None, None, at(60), listed=listed, reservations=[]) == [DeleteOrphan("orphan-old")]


def test_a_reservation_whose_record_was_not_read_needs_nothing() -> None:
    assert (
        decide(
            RESERVED,
            {},
            LISTED,
            {},
            at(5),
            instance="test",
            default_timeout=3600,
            stuck_grace=dt.timedelta(seconds=120),
            orphan_grace=dt.timedelta(seconds=300),
            launch_grace=dt.timedelta(seconds=60),
        )
        == []
    )


def test_a_running_record_teaches_its_reservation_that_it_started() -> None:
    unstarted = [Reservation(GROUP, "job-1", 1, 1.0, T0, timeout_seconds=600)]
    assert run(job(), view(container("Running")), at(5), reservations=unstarted) == [NoteStarted(GROUP)]


def reservation(group: str, **changes: Any) -> Reservation:
    return dataclasses.replace(
        Reservation(group, f"job-{group}", 1, 1.0, T0, timeout_seconds=600, started=True), **changes
    )


def test_inspection_puts_urgent_then_starting_groups_first_and_stays_within_the_budget() -> None:
    held = [
        reservation("r1"),
        reservation("r2"),
        reservation("new", started=False),
        reservation("cancelled", cancel_requested=True),
        reservation("overdue", timeout_seconds=60),
        reservation("gone"),
    ]
    listed = {r.group: GroupSummary(r.group, "Succeeded", {}) for r in held if r.group != "gone"}
    assert groups_to_inspect(held, listed, at(120), limit=10).names == ["cancelled", "overdue", "new", "r1", "r2"]
    assert groups_to_inspect(held, listed, at(120), limit=3).names == ["cancelled", "overdue", "new"]


def test_inspection_goes_round_every_group_even_when_urgent_ones_take_part_of_the_budget() -> None:
    held = [reservation(f"g{n}") for n in range(7)] + [reservation("new", started=False)]
    listed = {r.group: GroupSummary(r.group, "Succeeded", {}) for r in held}
    seen: set[str] = set()
    cursor = 0
    for tick in range(4):  # 7 running groups, 2 slots left per tick by the starting one
        inspection = groups_to_inspect(held, listed, at(30 * tick), limit=3, cursor=cursor)
        chosen, cursor = inspection.names, inspection.cursor(len(inspection.names))
        assert chosen[0] == "new"
        assert len(chosen) == 3
        seen.update(chosen)
    assert seen == {r.group for r in held}


@pytest.mark.parametrize(
    ("running", "share", "limit", "swept"),
    [
        (10, 1.0, 100, 10),  # every run reads every running group
        (10, 0.5, 100, 5),  # runs every 5 s, each group every 10 s
        (9, 0.5, 100, 5),  # rounded up
        (1, 0.1, 100, 1),  # at least one
        (100, 0.5, 20, 19),  # the budget still binds (one read went to the new group)
    ],
)
def test_each_run_reads_its_share_of_the_running_groups_and_every_new_one(
    running: int, share: float, limit: int, swept: int
) -> None:
    held = [reservation(f"g{n:03}") for n in range(running)] + [reservation("new", started=False)]
    listed = {r.group: GroupSummary(r.group, "Succeeded", {}) for r in held}

    names = groups_to_inspect(held, listed, at(30), limit=limit, share=share).names

    assert names[0] == "new"
    assert len(names) - 1 == swept


def test_with_a_share_the_sweep_still_goes_round_every_group_in_one_over_share_runs() -> None:
    held = [reservation(f"g{n}") for n in range(8)]
    listed = {r.group: GroupSummary(r.group, "Succeeded", {}) for r in held}
    seen: list[str] = []
    cursor = 0
    for tick in range(2):
        inspection = groups_to_inspect(held, listed, at(30 * tick), limit=100, cursor=cursor, share=0.5)
        seen += inspection.names
        cursor = inspection.cursor(len(inspection.names))
    assert sorted(seen) == sorted(r.group for r in held)  # each once in two runs


@pytest.mark.parametrize(
    ("held", "listed", "group", "now", "needed"),
    [
        pytest.param(RESERVED[0], LISTED, view(container("Running")), at(5), False, id="running-nothing-to-do"),
        pytest.param(RESERVED[0], LISTED, None, at(5), False, id="not-inspected"),
        pytest.param(RESERVED[0], {}, None, at(5), True, id="not-listed"),
        pytest.param(RESERVED[0], LISTED, view(container("Terminated", 0), state="Succeeded"), at(5), True, id="done"),
        pytest.param(RESERVED[0], LISTED, view(container("Running")), at(600), True, id="maybe-overdue"),
        pytest.param(
            RESERVED[0], LISTED, view(container("Waiting", None, PULL_FAILED), state=None), at(5), True, id="stuck"
        ),
        pytest.param(
            Reservation(GROUP, "job-1", 1, 1.0, T0, timeout_seconds=600, cancel_requested=True, started=True),
            LISTED,
            view(container("Running")),
            at(5),
            True,
            id="cancel",
        ),
        pytest.param(
            Reservation(GROUP, "job-1", 1, 1.0, T0, timeout_seconds=600),
            LISTED,
            view(container("Running")),
            at(5),
            True,
            id="start-seen",
        ),
        pytest.param(
            Reservation(GROUP, "job-1", 1, 1.0, T0, timeout_seconds=600),
            LISTED,
            view(container("Waiting")),
            at(5),
            False,
            id="pending",
        ),
    ],
)
def test_the_record_is_read_only_when_something_may_have_to_be_done(
    held: Reservation, listed: dict[str, GroupSummary], group: GroupView | None, now: dt.datetime, needed: bool
) -> None:
    assert needs_record(held, listed, {GROUP: group} if group else {}, now) is needed


def test_a_failing_init_container_fails_the_attempt() -> None:
    group = GroupView(
        GROUP, "Succeeded", "Failed", containers=(), init_containers=(container("Terminated", 2, name="prep"),)
    )
    assert outcome_of(group) == (Status.FAILED, "init container prep exited 2")


def test_a_run_that_stops_early_resumes_its_round_at_the_first_group_it_did_not_get() -> None:
    held = [reservation(f"g{n}") for n in range(5)] + [reservation("new", started=False)]
    listed = {r.group: GroupSummary(r.group, "Succeeded", {}) for r in held}
    inspection = groups_to_inspect(held, listed, at(30), limit=4, cursor=3)
    assert inspection.names == ["new", "g3", "g4", "g0"]
    assert inspection.cursor(0) == inspection.cursor(1) == 3  # only the starting group was got
    assert inspection.cursor(2) == 4
    assert inspection.cursor(4) == 1

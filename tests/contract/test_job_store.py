"""One contract for the JobStore port, run against the in-memory fake and the Table adapter over Azurite."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
from collections.abc import Iterator

import pytest
from azure.data.tables import TableClient, UpdateMode

from devstack.azurite import Azurite
from dispatcher.adapters.azure.tables import TableJobStore
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.placement import Demand, Reservation
from dispatcher.ports import AlreadyExists, Conflict, JobStore
from dispatcher.settings import Pool
from tests.fakes import FakeJobStore

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
POOL = Pool(name="p1", subscription_id="s", resource_group="rg", location="westeurope", max_groups=3, max_cores=3)


@pytest.fixture(params=["fake", "table"])
def store(request: pytest.FixtureRequest) -> Iterator[JobStore]:
    if request.param == "fake":
        yield FakeJobStore()
        return
    azurite: Azurite = request.getfixturevalue("azurite")
    table = TableClient.from_connection_string(azurite.connection_string, f"jobs{uuid.uuid4().hex[:12]}")
    adapter = TableJobStore(table)
    adapter.ensure_table()
    yield adapter
    table.delete_table()


def record(job_id: str, *, priority: int = 1, minute: int = 0, **changes: object) -> JobRecord:
    at = NOW + dt.timedelta(minutes=minute)
    base = JobRecord(
        id=job_id,
        spec={"image": "busybox"},
        spec_hash="h",
        status=Status.QUEUED,
        priority=priority,
        submitted_at=at,
        updated_at=at,
    )
    return base.model_copy(update=changes)


def reservation(group: str, cores: float = 1.0) -> Reservation:
    return Reservation(group=group, job_id=group, attempt=1, cores=cores, created_at=NOW)


def test_a_record_is_inserted_once(store: JobStore) -> None:
    store.insert(record("a"))
    with pytest.raises(AlreadyExists):
        store.insert(record("a"))


def test_get_returns_what_was_written_with_an_etag(store: JobStore) -> None:
    written = store.insert(record("a", labels={"team": "x"}))
    found = store.get("a")
    assert found is not None
    assert (found.value, found.etag) == (written.value, written.etag)
    assert store.get("missing") is None


def test_replace_succeeds_on_the_current_etag_and_conflicts_on_a_stale_one(store: JobStore) -> None:
    first = store.insert(record("a"))
    second = store.replace(first.value.transition(Status.CANCELLED, NOW), first.etag)
    with pytest.raises(Conflict):
        store.replace(first.value.transition(Status.LAUNCHING, NOW), first.etag)
    found = store.get("a")
    assert found is not None
    assert found.value.status is Status.CANCELLED
    assert found.etag == second.etag


def test_a_large_record_round_trips(store: JobStore) -> None:
    big = record("a", reason="x" * 200_000)
    store.insert(big)
    found = store.get("a")
    assert found is not None
    assert found.value == big


def test_the_queue_lists_by_priority_then_arrival(store: JobStore) -> None:
    for job_id, priority, minute in [("late", 0, 5), ("spot", 1, 0), ("early", 0, 1)]:
        store.enqueue(record(job_id, priority=priority, minute=minute), Demand(cores=1.0, memory_gb=1.5))
    assert [e.job_id for e in store.queued(10)] == ["early", "late", "spot"]
    assert [e.job_id for e in store.queued(1)] == ["early"]
    store.dequeue(record("late", priority=0, minute=5))
    store.dequeue(record("late", priority=0, minute=5))
    assert [e.job_id for e in store.queued(10)] == ["early", "spot"]


def test_a_queue_entry_keeps_the_jobs_demand(store: JobStore) -> None:
    demand = Demand(cores=2.5, memory_gb=4.0, spot=True, region="westeurope", pool="p1", spread_group="batch")
    store.enqueue(record("a"), demand)
    store.enqueue(record("b", minute=1), Demand(cores=1.0, memory_gb=1.5))
    assert [e.demand for e in store.queued(10)] == [demand, Demand(cores=1.0, memory_gb=1.5)]


def test_a_queue_entry_written_without_a_demand_lists_none(azurite: Azurite) -> None:
    # Given a queue index entry as written before entries kept the job's demand
    table = TableClient.from_connection_string(azurite.connection_string, f"jobs{uuid.uuid4().hex[:12]}")
    store = TableJobStore(table)
    store.ensure_table()
    store.enqueue(record("a"), Demand(cores=1.0, memory_gb=1.5))
    (entity,) = table.query_entities("PartitionKey eq 'queue'")
    for name in ("Cores", "MemoryGb", "Spot", "Region", "Pool", "SpreadGroup"):
        del entity[name]
    table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    # Then it is listed without a demand (the scheduler reads the record instead)
    assert [(e.job_id, e.demand) for e in store.queued(10)] == [("a", None)]
    table.delete_table()


def test_reservations_count_groups_cores_and_creates(store: JobStore) -> None:
    state = store.pool_state(POOL)
    written = store.reserve(state, reservation("g1", 2.0), NOW)
    after = store.pool_state(POOL)
    assert written == after
    assert written is not None
    assert written.etag == after.etag  # the next reservation can start from it unread
    assert (after.groups, after.cores, after.creates.last_5min(NOW), after.creates.last_hour(NOW)) == (1, 2.0, 1, 1)
    state, held = store.reservations(POOL)
    assert state == after
    assert [r.group for r in held] == ["g1"]


def test_a_reservation_round_trips_with_what_the_reconciler_needs(store: JobStore) -> None:
    taken = dataclasses.replace(reservation("g1", 2.0), spread_group="batch", timeout_seconds=600)
    assert store.reserve(store.pool_state(POOL), taken, NOW)
    assert store.pool_state(POOL).spread_members("batch") == 1
    assert store.reservations(POOL)[1] == [taken]
    store.mark_reservation(POOL, "g1", started=True)
    store.mark_reservation(POOL, "g1", cancel_requested=True)
    store.mark_reservation(POOL, "gone", cancel_requested=True)  # released already: nothing happens
    assert store.reservations(POOL)[1] == [dataclasses.replace(taken, started=True, cancel_requested=True)]


def test_a_group_cannot_be_reserved_twice(store: JobStore) -> None:
    assert store.reserve(store.pool_state(POOL), reservation("g1"), NOW)
    assert not store.reserve(store.pool_state(POOL), reservation("g1"), NOW)
    assert store.pool_state(POOL).groups == 1


def test_a_reservation_on_a_stale_pool_state_is_refused(store: JobStore) -> None:
    stale = store.pool_state(POOL)
    written = store.reserve(stale, reservation("g1"), NOW)
    assert written is not None
    assert not store.reserve(stale, reservation("g2"), NOW)
    assert store.reserve(written, reservation("g2"), NOW)
    assert store.pool_state(POOL).groups == 2


def test_release_is_idempotent(store: JobStore) -> None:
    store.reserve(store.pool_state(POOL), reservation("g1"), NOW)
    assert store.release(POOL, "g1", NOW, deleted=True)
    assert not store.release(POOL, "g1", NOW, deleted=True)
    after = store.pool_state(POOL)
    assert (after.groups, after.cores, after.deletes.last_5min(NOW)) == (0, 0.0, 1)
    assert store.reservations(POOL)[1] == []


def test_a_release_on_what_the_caller_read_writes_unread_and_a_stale_read_still_releases(store: JobStore) -> None:
    first, second = reservation("g1", 1.0), reservation("g2", 2.0)
    store.reserve(store.pool_state(POOL), first, NOW)
    state = store.reserve(store.pool_state(POOL), second, NOW)
    assert state is not None
    written = store.release(POOL, "g1", NOW, deleted=True, known=(state, first))
    assert written == store.pool_state(POOL)
    assert written is not None
    assert (written.groups, written.cores, written.etag) == (1, 2.0, store.pool_state(POOL).etag)
    # The state read before the first release is stale now: the release reads it again and still counts right
    again = store.release(POOL, "g2", NOW, deleted=True, known=(state, second))
    assert again is not None
    assert (again.groups, again.cores, again.deletes.last_5min(NOW)) == (0, 0.0, 2)
    assert store.reservations(POOL)[1] == []
    assert store.release(POOL, "g2", NOW, known=(again, second)) is None  # released already: nothing held


def test_find_reservation_names_the_pool_that_holds_a_group(store: JobStore) -> None:
    other = POOL.model_copy(update={"name": "p2"})
    store.reserve(store.pool_state(other), reservation("g1"), NOW)
    found = store.find_reservation([POOL, other], "g1")
    assert found is not None
    assert (found[0].name, found[1].group) == ("p2", "g1")
    assert store.find_reservation([POOL, other], "nope") is None


def test_a_saturated_pool_refuses_until_the_cooldown_ends(store: JobStore) -> None:
    store.mark_saturated(POOL, NOW + dt.timedelta(seconds=60))
    state = store.pool_state(POOL)
    assert state.refusal(Demand(1, 1), NOW) is not None
    assert state.refusal(Demand(1, 1), NOW + dt.timedelta(seconds=61)) is None


def test_concurrent_admissions_never_exceed_the_pool_limits(store: JobStore) -> None:
    def admit(i: int) -> None:
        for _ in range(20):
            state = store.pool_state(POOL)
            if state.refusal(Demand(1, 1), NOW) is not None:
                return
            if store.reserve(state, reservation(f"g{i}"), NOW):
                return

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.pool_state(POOL).groups == POOL.max_groups


def test_terminal_records_are_listed_for_retention_oldest_first_and_purged(store: JobStore) -> None:
    for job_id, minute in [("b", 2), ("a", 1), ("live", 0)]:
        store.insert(record(job_id, minute=minute))
    for job_id in ("a", "b"):
        found = store.get(job_id)
        assert found is not None
        store.replace(
            found.value.transition(Status.CANCELLED, NOW + dt.timedelta(minutes=10 if job_id == "a" else 20)),
            found.etag,
        )
    assert [j for j, _ in store.expired(NOW + dt.timedelta(minutes=15), 10)] == ["a"]
    expired = store.expired(NOW + dt.timedelta(hours=1), 10)
    assert [j for j, _ in expired] == ["a", "b"]
    store.purge("a")
    store.forget(expired[0][1])
    assert store.get("a") is None
    assert [j for j, _ in store.expired(NOW + dt.timedelta(hours=1), 10)] == ["b"]
    assert store.get("live") is not None

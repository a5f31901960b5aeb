"""One contract for the job partition's ports (JobRecords, QueueIndex, Outbox, Retention), run against the fake and
the Table adapters over Azurite."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from dispatcher.domain.document import validate_job
from dispatcher.domain.errors import AlreadyExists, Conflict
from dispatcher.domain.events import job_event
from dispatcher.domain.jobs import Attempt, Intent, IntentKind, JobRecord, Status
from dispatcher.domain.placement import Demand
from dispatcher.ports import JobQuery
from tests.contract.conftest import JobData

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def record(job_id: str, *, priority: int = 1, minute: int = 0, cpu: float = 1.0, **changes: object) -> JobRecord:
    at = NOW + dt.timedelta(minutes=minute)
    spec = validate_job({"id": job_id, "containers": [{"name": "main", "image": "busybox", "cpu": cpu}]})
    base = JobRecord(
        id=job_id, spec=spec, spec_hash="h", status=Status.QUEUED, priority=priority, submitted_at=at, updated_at=at
    )
    return base.model_copy(update=changes)


def rejected(key: str) -> JobRecord:
    return JobRecord(id=key, spec=None, spec_hash="r", status=Status.REJECTED, submitted_at=NOW, updated_at=NOW)


def claimed(found: JobRecord, *, launched: bool = False) -> JobRecord:
    attempt = Attempt(
        number=1,
        group=f"{found.id}-a1",
        pool="p1",
        location="westeurope",
        reserved_at=NOW,
        launched_at=NOW if launched else None,
    )
    return found.with_attempt(attempt).transition(Status.LAUNCHING, NOW)


def test_a_record_is_inserted_once(job_data: JobData) -> None:
    job_data.records.insert(record("a"))
    with pytest.raises(AlreadyExists):
        job_data.records.insert(record("a"))


def test_get_returns_what_was_written_with_an_etag(job_data: JobData) -> None:
    written = job_data.records.insert(record("a", labels={"team": "x"}))
    found = job_data.records.get("a")
    assert found is not None
    assert (found.value, found.etag) == (written.value, written.etag)
    assert job_data.records.get("missing") is None


def test_replace_succeeds_on_the_current_etag_and_conflicts_on_a_stale_one(job_data: JobData) -> None:
    first = job_data.records.insert(record("a"))
    second = job_data.records.replace(first, first.value.transition(Status.CANCELLED, NOW))
    with pytest.raises(Conflict):
        job_data.records.replace(first, first.value.transition(Status.LAUNCHING, NOW))
    found = job_data.records.get("a")
    assert found is not None
    assert found.value.status is Status.CANCELLED
    assert found.etag == second.etag


def test_a_large_record_round_trips(job_data: JobData) -> None:
    big = record("a", reason="x" * 200_000)
    job_data.records.insert(big)
    found = job_data.records.get("a")
    assert found is not None
    assert found.value == big


def test_the_queue_index_follows_the_record_in_the_same_write(job_data: JobData) -> None:
    # Given three queued jobs of two ranks
    for job_id, priority, minute in [("late", 0, 5), ("spot", 1, 0), ("early", 0, 1)]:
        job_data.records.insert(record(job_id, priority=priority, minute=minute))
    assert [e.job_id for e in job_data.queue.queued(10)] == ["early", "late", "spot"]
    assert [e.job_id for e in job_data.queue.queued(1)] == ["early"]
    assert (job_data.queue.depth(10), job_data.queue.depth(2), job_data.queue.depth(10, "a-team")) == (3, 2, 0)
    # When one is claimed, its entry goes and its launch intent opens; once launched, the intent closes
    late = job_data.records.get("late")
    assert late is not None
    late = job_data.records.replace(late, claimed(late.value))
    assert [e.job_id for e in job_data.queue.queued(10)] == ["early", "spot"]
    assert job_data.queue.depth(10) == 2
    assert job_data.intents.stale(NOW + dt.timedelta(seconds=1), 10) == [Intent("late", IntentKind.LAUNCH, NOW)]
    assert job_data.intents.stale(NOW, 10) == []  # recorded at NOW: not before it
    job_data.records.replace(late, claimed(late.value, launched=True))
    assert job_data.intents.stale(NOW + dt.timedelta(days=1), 10) == []
    # And a cancel removes a queued job's entry
    spot = job_data.records.get("spot")
    assert spot is not None
    job_data.records.replace(spot, spot.value.transition(Status.CANCELLED, NOW))
    assert [e.job_id for e in job_data.queue.queued(10)] == ["early"]


def test_a_queue_entry_keeps_the_jobs_demand(job_data: JobData) -> None:
    job_data.records.insert(record("a", cpu=2.5))
    job_data.records.insert(record("b", minute=1))
    assert [e.demand for e in job_data.queue.queued(10)] == [Demand(2.5, 1.5), Demand(1.0, 1.5)]


def test_a_record_waiting_for_its_secrets_is_not_queued_until_they_are_stored(job_data: JobData) -> None:
    pending = job_data.records.insert(record("a", secrets_pending=True))
    assert job_data.queue.queued(10) == []
    assert job_data.intents.stale(NOW + dt.timedelta(seconds=1), 10) == [Intent("a", IntentKind.SECRETS, NOW)]
    job_data.records.replace(pending, pending.value.model_copy(update={"secrets_pending": False}))
    assert [e.job_id for e in job_data.queue.queued(10)] == ["a"]
    assert job_data.intents.stale(NOW + dt.timedelta(days=1), 10) == []


def test_the_events_of_a_write_are_pending_in_the_outbox_until_cleared(job_data: JobData) -> None:
    queued = record("a")
    first = job_event(queued, "queued", instance="t")
    written = job_data.records.insert(queued, [first])
    done = queued.transition(Status.CANCELLED, NOW + dt.timedelta(seconds=5))
    second = job_event(done, "cancelled", instance="t")
    job_data.records.replace(written, done, [second])
    assert job_data.outbox.pending(10) == [first, second]  # oldest first
    job_data.outbox.clear(first)
    job_data.outbox.clear(first)  # idempotent
    assert job_data.outbox.pending(10) == [second]


def test_a_large_event_is_kept_whole(job_data: JobData) -> None:
    big = rejected("r").model_copy(update={"reason": "x" * 60_000})
    event = job_event(big, "rejected", instance="t")
    job_data.records.insert(big, [event])
    assert job_data.outbox.pending(10) == [event]


def test_a_failed_write_leaves_no_event_behind(job_data: JobData) -> None:
    written = job_data.records.insert(record("a"))
    job_data.records.replace(written, written.value.transition(Status.CANCELLED, NOW))
    stale = written.value.transition(Status.FAILED, NOW)
    with pytest.raises(Conflict):
        job_data.records.replace(written, stale, [job_event(stale, "failed", instance="t")])
    assert job_data.outbox.pending(10) == []


def test_a_conflicting_submission_is_kept_beside_the_record_with_its_event(job_data: JobData) -> None:
    job_data.records.insert(record("a"))
    conflict = rejected("a")
    event = job_event(conflict, "rejected", instance="t")
    job_data.records.add_conflict(conflict, [event])
    job_data.records.add_conflict(conflict, [event])
    found = job_data.records.get("a")
    assert found is not None
    assert found.value.status is Status.QUEUED
    assert job_data.outbox.pending(10) == [event]


@pytest.mark.parametrize("job_id", ["queue", "done", "state", "pool-local", "outbox", "job", "ledger"])
def test_ids_that_name_internal_rows_elsewhere_are_ordinary_jobs(job_data: JobData, job_id: str) -> None:
    # Given a job whose id is also a word the layout uses, and an ordinary queued job
    job_data.records.insert(record("other", minute=1))
    job_data.records.insert(record(job_id))
    # Then both are queued, and ending and purging the first touches nothing of the other
    assert [e.job_id for e in job_data.queue.queued(10)] == [job_id, "other"]
    found = job_data.records.get(job_id)
    assert found is not None
    job_data.records.replace(found, found.value.transition(Status.CANCELLED, NOW))
    job_data.retention.purge(job_id)
    assert job_data.records.get(job_id) is None
    assert [e.job_id for e in job_data.queue.queued(10)] == ["other"]
    assert [e.job_id for e in job_data.retention.expired(NOW + dt.timedelta(days=1), 10)] == [job_id]


@pytest.mark.parametrize("key", ["queue", "done", "pool-local", "pool.local", "Q_1"])
def test_a_rejected_submission_touches_no_index_row_and_its_purge_only_its_own_rows(
    job_data: JobData, key: str
) -> None:
    written = job_data.records.insert(record("a"))
    job_data.records.insert(record("a-b", minute=1))
    job_data.records.insert(rejected(key))
    assert [e.job_id for e in job_data.queue.queued(10)] == ["a", "a-b"]
    job_data.retention.purge(key)
    job_data.records.replace(written, written.value.transition(Status.CANCELLED, NOW))
    job_data.retention.purge("a")  # "a" is a prefix of "a-b": its purge must not reach it
    assert job_data.records.get(key) is None
    assert job_data.records.get("a-b") is not None
    assert [e.job_id for e in job_data.queue.queued(10)] == ["a-b"]


def test_terminal_records_are_listed_for_retention_oldest_first_and_purged(job_data: JobData) -> None:
    for job_id, minute in [("b", 2), ("a", 1), ("live", 0)]:
        job_data.records.insert(record(job_id, minute=minute))
    for job_id in ("a", "b"):
        found = job_data.records.get(job_id)
        assert found is not None
        ended = NOW + dt.timedelta(minutes=10 if job_id == "a" else 20)
        job_data.records.replace(found, found.value.transition(Status.CANCELLED, ended))
    assert [e.job_id for e in job_data.retention.expired(NOW + dt.timedelta(minutes=15), 10)] == ["a"]
    expired = job_data.retention.expired(NOW + dt.timedelta(hours=1), 10)
    assert [e.job_id for e in expired] == ["a", "b"]
    job_data.retention.purge("a")
    job_data.retention.forget(expired[0].index_key)
    assert job_data.records.get("a") is None
    assert [e.job_id for e in job_data.retention.expired(NOW + dt.timedelta(hours=1), 10)] == ["b"]
    assert job_data.records.get("live") is not None


def test_records_are_listed_by_status_and_label_a_page_at_a_time(job_data: JobData) -> None:
    for n in range(5):
        job_data.records.insert(record(f"j{n}", minute=n, labels={"team": "red" if n % 2 else "blue"}))
    job_data.records.insert(rejected("r"))
    seen: list[str] = []
    token = None
    while True:
        page, token = job_data.records.list(JobQuery(status="Queued", limit=2, continuation=token))
        seen += [r.id for r in page]
        if token is None:
            break
    assert sorted(seen) == [f"j{n}" for n in range(5)]
    red, _ = job_data.records.list(JobQuery(labels=(("team", "red"),), limit=50))
    assert sorted(r.id for r in red) == ["j1", "j3"]
    with pytest.raises(ValueError, match="continuation"):
        job_data.records.list(JobQuery(continuation="[]"))


def test_concurrent_writers_of_one_record_converge_on_one_winner(job_data: JobData) -> None:
    first = job_data.records.insert(record("a"))
    wins: list[int] = []

    def write(n: int) -> None:
        try:
            job_data.records.replace(first, first.value.model_copy(update={"reason": str(n)}))
            wins.append(n)
        except Conflict:
            return

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = job_data.records.get("a")
    assert found is not None
    assert len(wins) == 1
    assert found.value.reason == str(wins[0])


def test_postpone_moves_a_retention_entry_to_a_later_time(job_data: JobData) -> None:
    found = job_data.records.insert(record("a"))
    job_data.records.replace(found, found.value.transition(Status.CANCELLED, NOW))
    [expired] = job_data.retention.expired(NOW + dt.timedelta(seconds=1), 10)
    later = NOW + dt.timedelta(days=1)
    job_data.retention.postpone(expired, later)
    job_data.retention.postpone(expired, later)  # idempotent
    assert job_data.retention.expired(later, 10) == []
    assert [e.job_id for e in job_data.retention.expired(later + dt.timedelta(seconds=1), 10)] == ["a"]


def test_listing_is_newest_first_or_oldest_first_by_submission_and_a_purge_unlists(job_data: JobData) -> None:
    for n, job_id in enumerate(["m", "a", "z"]):  # ids out of time order: the order is by submission, not id
        job_data.records.insert(record(job_id, minute=n))
    newest, _ = job_data.records.list(JobQuery(limit=1))
    assert [r.id for r in newest] == ["z"]
    pages: list[str] = []
    token = None
    while True:
        page, token = job_data.records.list(JobQuery(limit=2, continuation=token, oldest_first=True))
        pages += [r.id for r in page]
        if token is None:
            break
    assert pages == ["m", "a", "z"]
    found = job_data.records.get("a")
    assert found is not None
    job_data.records.replace(found, found.value.transition(Status.CANCELLED, NOW))
    cancelled, _ = job_data.records.list(JobQuery(status="Cancelled"))
    assert [r.id for r in cancelled] == ["a"]
    job_data.retention.purge("a")
    listed, _ = job_data.records.list(JobQuery(limit=10))
    assert [r.id for r in listed] == ["z", "m"]

"""One contract for the LogStore port, run against the fake and the Blob adapter over Azurite."""

from __future__ import annotations

from dispatcher.ports import LogStore


def test_a_log_is_put_and_read_back_and_the_first_put_stands(log_store: LogStore) -> None:
    reference = log_store.put("job-1/1/main.log", "first\n")
    again = log_store.put("job-1/1/main.log", "")  # a later harvest that found the group deleted
    assert reference.endswith("job-1/1/main.log")
    assert again == reference
    assert log_store.get("job-1/1/main.log") == "first\n"
    assert log_store.get("job-1/9/main.log") is None


def test_deleting_a_jobs_logs_keeps_every_other_jobs(log_store: LogStore) -> None:
    for path in ("job-1/1/main.log", "job-1/2/main.log", "job-10/1/main.log", "job-2/1/main.log"):
        log_store.put(path, path)
    log_store.delete_job("job-1")
    log_store.delete_job("job-1")
    assert [log_store.get(p) for p in ("job-1/1/main.log", "job-1/2/main.log")] == [None, None]
    assert log_store.get("job-10/1/main.log") == "job-10/1/main.log"
    assert log_store.get("job-2/1/main.log") == "job-2/1/main.log"

"""Delete terminal jobs older than the retention period: logs, workspace share, stored secrets, then rows."""

from __future__ import annotations

import datetime as dt

from dispatcher.domain.schedules import SCHEDULE_LABEL
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services

PURGE_BATCH = 50


def purge_expired(services: Services, report: RunReport) -> None:
    """Purge what ended before the retention cutoff, each job on its own; a failure is retried next run.

    A job its schedule still shows in its history is kept: its retention entry moves on by one period, so it is
    purged once it has left the history (and the schedule's own deletion leaves it to normal retention).
    """
    now = services.clock.now()
    cutoff = now - dt.timedelta(days=services.settings.retention_days)
    kept: dict[str, set[str]] = {}
    for expired in services.retention.expired(cutoff, PURGE_BATCH):
        if report.out_of_time():
            return
        with report.contained(f"purge {expired.job_id}"):
            if _kept_by_schedule(services, expired.job_id, kept):
                services.retention.postpone(expired, now)
                report.count("KeepForSchedule")
                continue
            purge_job(services, expired.job_id)
            services.retention.forget(expired.index_key)
            report.count("Purge")


def _kept_by_schedule(services: Services, job_id: str, kept: dict[str, set[str]]) -> bool:
    """Whether the schedule that started ``job_id`` keeps it in its history (each schedule read once a run)."""
    found = services.records.get(job_id)
    name = found.value.labels.get(SCHEDULE_LABEL) if found is not None else None
    if name is None:
        return False
    if name not in kept:
        schedule = services.schedules.get(name)
        kept[name] = schedule.value.kept() if schedule is not None else set()
    return job_id in kept[name]


def purge_job(services: Services, job_id: str) -> bool:
    """Delete everything stored for one terminal job; ``False`` (and nothing deleted) if it is not terminal."""
    found = services.records.get(job_id)
    if found is not None:
        record = found.value
        if not record.status.terminal:
            return False
        services.logs.delete_job(job_id)
        if record.workspace:
            services.shares.delete(record.workspace)
        for name in record.owned_secrets:
            services.job_secrets.delete(name)
    services.retention.purge(job_id)
    return True

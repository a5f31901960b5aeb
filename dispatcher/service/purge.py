"""Delete terminal jobs older than the retention period: logs, workspace share, stored secrets, then rows."""

from __future__ import annotations

import datetime as dt

from dispatcher.service.report import RunReport
from dispatcher.service.services import Services

PURGE_BATCH = 50


def purge_expired(services: Services, report: RunReport) -> None:
    """Purge what ended before the retention cutoff, each job on its own; a failure is retried next run."""
    cutoff = services.clock.now() - dt.timedelta(days=services.settings.retention_days)
    for expired in services.retention.expired(cutoff, PURGE_BATCH):
        if report.out_of_time():
            return
        with report.contained(f"purge {expired.job_id}"):
            purge_job(services, expired.job_id)
            services.retention.forget(expired.index_key)
            report.count("Purge")


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

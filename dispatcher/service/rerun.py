"""``POST /api/jobs/{id}/rerun``: a new job from an old one's spec, with overrides, linked both ways.

The new job is recorded first, under an id derived from the old id and the request's idempotency key, then the
old record lists it. A retried request records the same job (a duplicate) and lists it once. Inline values the
old job had are read from the job-secrets vault and stored again under the new job's own names, so either job
can be purged without the other losing them.
"""

from __future__ import annotations

from pydantic import SecretStr

from dispatcher.domain.errors import Conflict
from dispatcher.domain.identity import Actor
from dispatcher.domain.naming import INLINE_PREFIX
from dispatcher.domain.policy import apply_policy
from dispatcher.domain.rerun import MAX_RERUNS_LISTED, Overrides, overridden, rerun_id
from dispatcher.domain.secrets import with_references
from dispatcher.domain.spec import JobSpec, SecretRef
from dispatcher.service.records import commit
from dispatcher.service.services import Services
from dispatcher.service.submit import Submitted, record_job
from dispatcher.service.telemetry import span

MAX_RACES = 5


class JobNotFound(LookupError):
    """No job has this id."""


def _with_values(services: Services, spec: JobSpec) -> JobSpec:
    """``spec`` with the references to the old job's stored inline values turned back into values."""
    inline = {
        path: SecretRef(value=SecretStr(services.job_secrets.get(ref.key)))
        for path, ref in spec.secret_refs()
        if ref.secret is not None and ref.secret.startswith(INLINE_PREFIX)
    }
    return with_references(spec, inline) if inline else spec


def rerun(services: Services, job_id: str, overrides: Overrides, key: str | None, by: Actor | None = None) -> Submitted:
    """Record the re-run of ``job_id`` by ``by`` and list it on the old job: the re-run counts against the old
    job's team. Raises :class:`JobNotFound`, or :class:`~dispatcher.domain.errors.JobError` naming an override that
    makes the spec invalid."""
    old = services.records.get(job_id)
    if old is None or old.value.spec is None:
        raise JobNotFound(job_id)
    record = old.value
    failed = record.array.failed_indexes if record.array is not None and record.status.terminal else None
    spec = overridden(old.value.spec, overrides, rerun_id(job_id, key), failed)
    with span("dispatcher.rerun", attributes={"dispatcher.rerun_of": job_id}):  # the re-run's trace begins here
        checked = apply_policy(_with_values(services, spec), services.settings, record.team)
        submitted = record_job(services, checked, rerun_of=job_id, owner=by)
    if submitted.outcome == "conflict":
        return submitted
    for _ in range(MAX_RACES):
        found = services.records.get(job_id)
        if found is None or submitted.job_id in found.value.reruns:
            break
        reruns = [*found.value.reruns, submitted.job_id][-MAX_RERUNS_LISTED:]
        try:
            commit(services, found, found.value.model_copy(update={"reruns": reruns}))
        except Conflict:
            continue
        break
    return submitted

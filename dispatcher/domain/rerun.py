"""Re-runs: a new job from an old one's spec, with overrides. Pure."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from dispatcher.domain.document import errors_from, validate_job
from dispatcher.domain.errors import FieldError, InvalidJob
from dispatcher.domain.spec import JobSpec

RERUN_NAMESPACE = uuid.UUID("4d3c2b1a-5e6f-4a0b-9c8d-7e6f5a4b3c2d")
MAX_RERUNS_LISTED = 50


class Overrides(BaseModel):
    """What ``POST /api/jobs/{id}/rerun`` may change. ``env``, ``command``, ``image``, ``cpu`` and ``memoryGB``
    apply to the job's first container; ``env`` and ``labels`` are merged over the old ones."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    env: dict[str, str] | None = None
    command: list[str] | None = None
    image: str | None = None
    cpu: float | None = None
    memory_gb: float | None = Field(default=None, alias="memoryGB")
    timeout_seconds: int | None = None
    labels: dict[str, str] | None = None
    only_failed_tasks: bool = False


def parse_overrides(data: Any) -> Overrides:
    """The overrides of a re-run request (an empty body is none), or :class:`InvalidJob` naming each field."""
    if data is None:
        return Overrides()
    if not isinstance(data, dict):
        raise InvalidJob([FieldError("", f"a re-run takes a mapping of overrides, not {type(data).__name__}")])
    try:
        return Overrides.model_validate(data)
    except ValidationError as exc:
        raise InvalidJob(errors_from(exc)) from None


def rerun_id(job_id: str, key: str | None) -> str:
    """The new job's id: derived from the old id and the request's idempotency key, so a retried request makes
    one job; random without a key."""
    return str(uuid.uuid5(RERUN_NAMESPACE, f"{job_id}|{key}") if key else uuid.uuid4())


def overridden(spec: JobSpec, overrides: Overrides, new_id: str, failed: list[int] | None = None) -> JobSpec:
    """``spec`` under ``new_id`` with ``overrides`` applied, validated as a new submission would be.

    A field an override makes invalid is named as the spec names it (``containers[0].cpu``). With
    ``onlyFailedTasks``, an array job's re-run runs only ``failed``, the tasks that failed for good (``None``: the
    job has not ended), each with its own TASK_INDEX.
    """
    data = spec.canonical()
    data["id"] = new_id
    if overrides.only_failed_tasks:
        refusal = (
            "the job has no tasks: only array jobs re-run failed tasks"
            if spec.tasks is None
            else "the job has not ended: its failed tasks are not known"
            if failed is None
            else "no task of the job failed"
            if not failed
            else None
        )
        if refusal is not None:
            raise InvalidJob([FieldError("onlyFailedTasks", refusal)])
        data["tasks"] = {**data["tasks"], "indexes": sorted(failed or [])}
    main = dict(data["containers"][0])
    changes = {
        "image": overrides.image,
        "command": overrides.command,
        "cpu": overrides.cpu,
        "memoryGB": overrides.memory_gb,
    }
    main.update({k: v for k, v in changes.items() if v is not None})
    if overrides.env is not None:
        main["env"] = {**main.get("env", {}), **overrides.env}
    data["containers"] = [main, *data["containers"][1:]]
    if overrides.timeout_seconds is not None:
        data["timeoutSeconds"] = overrides.timeout_seconds
    if overrides.labels is not None:
        data["labels"] = {**data.get("labels", {}), **overrides.labels}
    return validate_job(data)

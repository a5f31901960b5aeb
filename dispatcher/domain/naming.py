"""Every name the dispatcher derives, in one place. Pure.

Names are deterministic, so that a repeated write converges on the same resource: an attempt's container
group, a job's workspace share, the path of a harvested log, the API's links.
"""

from __future__ import annotations

import re

GROUP_NAME_MAX = 63
"""ARM names a container group with at most 63 characters."""

JOB_ID = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
"""A job id: lowercase letters, digits and single hyphens, starting and ending with a letter or digit."""

RECORD_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
"""A record key: a job id, or the key of a rejected submission. It never holds ``|``, the store's separator."""

TAG_JOB = "dispatcher-job"
TAG_ATTEMPT = "dispatcher-attempt"
TAG_SPEC_HASH = "dispatcher-spec-hash"
TAG_INSTANCE = "dispatcher-instance"
TAG_DEADLINE = "dispatcher-deadline"
TAG_CREATED = "dispatcher-created"

JOB_ID_PROPERTY = "dispatcher-job-id"
"""The application property of a jobs-queue message that names the job when its spec names none; a replayed
dead letter carries it, so its new message id does not make it a new job."""
REPLAY_OF_PROPERTY = "dispatcher-replay-of"
"""The application property of a replayed dead letter: the message id it was dead-lettered under."""
MESSAGE_ID_MAX = 128
"""Service Bus message ids are at most 128 characters."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Hosts that are this machine: the only ones the development credential, or a key over plain http, may reach."""


def group_name(job_id: str, attempt: int) -> str:
    """The deterministic name of a job attempt's group, so redeliveries and races converge on one group."""
    return f"{job_id}-a{attempt}"


def workspace_share(job_id: str) -> str:
    """The name of the per-job Azure Files share that backs a workspace volume."""
    return f"ws-{job_id}"


TIMED_LOG = ".timed.log"


def log_path(job_id: str, attempt: int, container: str, *, timed: bool = True) -> str:
    """Where the harvested log of one container of one attempt is kept in the log store: its lines with the times
    ACI gave them (:mod:`dispatcher.domain.logs`); ``timed=False``, where logs harvested without times were."""
    return f"{job_id}/{attempt}/{container}{TIMED_LOG if timed else '.log'}"


INLINE_PREFIX = "inline-"
"""Job-secrets vault names the dispatcher gives inline values; no job may reference one."""


def inline_secret_name(job_id: str, suffix: str, index: int) -> str:
    """The job-secrets vault name of the ``index``-th inline value of a job; ``suffix`` is random per job, so a
    name is never reused (the vault's purge protection keeps a deleted name for its retention period)."""
    return f"{INLINE_PREFIX}{job_id}-{suffix}-{index}"


def job_path(job_id: str) -> str:
    """The API path of a job."""
    return f"/api/jobs/{job_id}"


def job_links(job_id: str) -> dict[str, str]:
    """The API links of a job, as events and views give them."""
    base = job_path(job_id)
    return {"self": base, "logs": f"{base}/logs", "outputs": f"{base}/outputs"}


def replay_message_id(message_id: str, sequence_number: int) -> str:
    """The message id a dead letter is replayed under: new, so the queue's duplicate detection does not drop it
    as the message it was, and the same for every replay of that dead letter, so a replay repeated after a crash
    (sent, not yet completed) is dropped."""
    suffix = f".replay-{sequence_number}"
    return message_id[: MESSAGE_ID_MAX - len(suffix)] + suffix

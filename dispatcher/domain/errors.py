"""The dispatcher's one error tree. Every error it raises on purpose is a :class:`DispatcherError`.

Each adapter translates its SDK's exceptions into these in one place, so no other module catches an SDK
exception type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: ``loc`` is a path such as ``containers[0].cpu``."""

    loc: str
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message


MAX_FIELD_ERRORS = 50
"""Field errors a record or an event keeps; the rest are counted."""
MAX_MESSAGE_CHARS = 300


def bounded(errors: list[FieldError]) -> list[FieldError]:
    """At most :data:`MAX_FIELD_ERRORS` errors with their texts shortened, so a record or an event stays small
    however many problems a document has (a 256 KiB spec can have thousands)."""
    kept = [FieldError(e.loc[:200], e.message[:MAX_MESSAGE_CHARS]) for e in errors[:MAX_FIELD_ERRORS]]
    if len(errors) > MAX_FIELD_ERRORS:
        kept.append(FieldError("", f"and {len(errors) - MAX_FIELD_ERRORS} more problems"))
    return kept


class DispatcherError(Exception):
    """Base of every error the dispatcher raises on purpose."""


class JobError(DispatcherError):
    """A job the dispatcher will not run, with every field-level reason."""

    kind = "invalid"

    LISTED = 10

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        shown = "; ".join(str(e)[:MAX_MESSAGE_CHARS] for e in self.errors[: self.LISTED])
        more = len(self.errors) - self.LISTED
        super().__init__(shown + (f"; and {more} more" if more > 0 else ""))


class InvalidJob(JobError):
    """The job spec is malformed: bad syntax, wrong types, or beyond what ACI can run."""

    kind = "invalid"


class PolicyViolation(JobError):
    """The job spec is well formed but the operator's policy forbids it."""

    kind = "policy"


class SecretNotFound(DispatcherError):
    """A secret reference names a secret the secret store does not have."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f"secret {reference!r} was not found in the secret store")


class CloudError(DispatcherError):
    """An Azure call failed after its retry budget; ``transient`` says whether a later try may succeed.

    ``code`` is the service's error code (ARM's ``ContainerGroupQuotaReached``, storage's ``EntityTooLarge``),
    ``status`` the HTTP status when there was one. The message never holds a request or response body.
    """

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, transient: bool) -> None:
        self.code = code
        self.status = status
        self.transient = transient
        super().__init__(message)


class Conflict(DispatcherError):
    """Another writer changed the entity since it was read (an ETag mismatch); re-read and re-decide."""


class AlreadyExists(DispatcherError):
    """An entity that may be created only once already exists."""


class InvalidToken(Exception):
    """A bearer token the API does not accept (expired, another audience or issuer, a bad signature): answered
    401 with ``reason``, which never holds the token."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UnsafeConfiguration(DispatcherError):
    """The settings would send a real Azure credential to a non-Azure endpoint, or are otherwise unsafe."""

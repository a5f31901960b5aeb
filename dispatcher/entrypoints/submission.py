"""What the CLI does before it sends anything: read and validate a spec locally, and follow a log's tails."""

from __future__ import annotations

import json
from dataclasses import dataclass

from dispatcher.domain.document import load_document, validate_job
from dispatcher.domain.errors import FieldError, InvalidJob
from dispatcher.domain.spec import JobSpec

JSON = "application/json"
YAML = "application/yaml"


@dataclass(frozen=True)
class Submission:
    """A locally validated job spec, ready to send: the body, its content type and its id if it has one."""

    body: bytes
    content_type: str
    spec: JobSpec

    @property
    def job_id(self) -> str | None:
        """The spec's id; ``None`` leaves the choice to the service (HTTP) or the message id (Service Bus)."""
        return self.spec.id


def prepare_submission(text: bytes, filename: str, job_id: str | None = None) -> Submission:
    """Validate a spec document locally, giving it the id ``job_id`` when one is passed.

    The document is sent as written (YAML, or JSON when the file name ends in ``.json``), unless ``job_id``
    differs from the spec's own id: then it is sent as JSON carrying that id. Raises :class:`InvalidJob`
    with every problem, as ``validate`` reports them. Operator policy is not applied here: the service
    applies its own.
    """
    data = load_document(text)
    spec = validate_job(data)
    if job_id is None or job_id == spec.id:
        return Submission(text, JSON if filename.lower().endswith(".json") else YAML, spec)
    if not isinstance(data, dict):  # validate_job accepted it, so it is a mapping
        raise InvalidJob([FieldError("", "a job spec is a mapping of fields")])
    with_id = {**data, "id": job_id}
    return Submission(json.dumps(with_id).encode(), JSON, validate_job(with_id))

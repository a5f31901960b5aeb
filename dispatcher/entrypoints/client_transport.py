"""The HTTP client's transport: retrying sessions, problems read from any answer, failures in words."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dispatcher.entrypoints.api_models import FieldProblem, Problem


def problem_from(response: requests.Response) -> Problem:
    """The response's problem details, or one made from its status when the body is not a problem."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict) and "title" in document:
        errors = [
            FieldProblem(loc=str(e.get("loc", "")), message=str(e.get("message", "")))
            for e in document.get("errors") or []
            if isinstance(e, dict)
        ]
        detail = document.get("detail")
        return Problem(
            type=str(document.get("type", "about:blank")),
            title=str(document["title"]),
            status=int(document.get("status", response.status_code)),
            detail=str(detail) if detail is not None else None,
            errors=errors,
        )
    text = response.text.strip()
    return Problem(
        title=response.reason or f"HTTP {response.status_code}",
        status=response.status_code,
        detail=text[:500] or None,
    )


RETRY_STATUSES = (429, 502, 503, 504)
"""Throttled (the Functions host sheds load with a 429 and a Retry-After) or a gateway or dependency outage."""
BACKOFF_FACTOR = 0.5
"""Seconds before the second retry, doubling after; a Retry-After header, when given, wins."""


IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})
KEYED = IDEMPOTENT | {"PUT", "POST"}
"""What the keyed session retries: a schedule's PUT replaces it whole, and a POST carries an Idempotency-Key."""


def retrying_session(methods: frozenset[str] = IDEMPOTENT) -> requests.Session:
    """A session that retries ``methods`` through a brief outage (a 503 from a dependency, a gateway error),
    honouring ``Retry-After``. A submission is not retried: without an id in its spec a second POST would be a
    second job; only calls that are idempotent by their nature or their key go through the keyed session."""
    retry = Retry(
        total=4,
        connect=2,
        read=0,
        backoff_factor=BACKOFF_FACTOR,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=methods,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, HTTPAdapter(max_retries=retry))
    return session


def reason_of(exc: BaseException) -> str:
    """The innermost cause of a requests failure, in words."""
    cause: BaseException = exc
    while cause.__context__ is not None and cause.__context__ is not cause:
        cause = cause.__context__
    text = str(cause) or type(cause).__name__
    return text.split(" (Caused by ")[0][:300]

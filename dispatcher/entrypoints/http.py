"""The HTTP API, free of any web framework: a request in, a response out.

``function_app.py`` translates ``func.HttpRequest`` to :class:`Request` and :class:`Response` back. Each handler
validates its inputs (a 4xx RFC 9457 ``application/problem+json`` with field-level details for anything wrong),
calls one service function, and shapes the answer. No business rule lives here.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import ParamSpec

from pydantic import BaseModel

from dispatcher.domain.document import load_document
from dispatcher.domain.errors import CloudError, DispatcherError, FieldError, JobError, PolicyViolation
from dispatcher.domain.identity import Caller, may_see, team_for, visible_teams
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.domain.logs import Cursor, time_text
from dispatcher.domain.naming import RECORD_KEY, job_path
from dispatcher.domain.policy import policy_of
from dispatcher.domain.spec import MAX_SPEC_BYTES
from dispatcher.entrypoints.api_models import (
    Accepted,
    Check,
    DryRun,
    FieldProblem,
    Health,
    JobList,
    LogGapOut,
    LogLineOut,
    LogPageOut,
    OutputEntryOut,
    OutputList,
    OutputSummaryOut,
    Problem,
    UsageOut,
    UsageReport,
    job_out,
)
from dispatcher.ports import JobQuery
from dispatcher.service import queries
from dispatcher.service.cancel import cancel as cancel_job
from dispatcher.service.logs import containers_of, follow, job_logs
from dispatcher.service.services import Services
from dispatcher.service.submit import check, submit_http
from dispatcher.service.usage import MAX_DAYS, usage_between

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
SPEC_TYPES = {"application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", ""}
MAX_PAGE = 200
MAX_TAIL = 100_000
MAX_PATH = 2048
MAX_SEGMENT = 255
_FORBIDDEN_IN_NAMES = frozenset('"\\:|<>*?')
_DIGITS = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class Request:
    """What a handler needs of an HTTP request. Header names are lower case.

    ``keyed`` says the request came through a keyed route, whose function key the Functions host checked;
    ``caller`` is who the request was authenticated as (:func:`dispatcher.entrypoints.http_auth.authenticate`)."""

    body: bytes = b""
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    route: Mapping[str, str] = field(default_factory=dict)
    keyed: bool = False
    caller: Caller | None = None

    @property
    def who(self) -> Caller:
        """The authenticated caller; every handler runs after authentication."""
        if self.caller is None:
            raise RuntimeError("the request was not authenticated")
        return self.caller


TEAM_HEADER = "x-dispatcher-team"
"""The team a caller in several teams submits for."""


@dataclass(frozen=True)
class Response:
    """An HTTP response."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(Exception):
    """One invalid input of a request: answered 400, naming the field."""

    def __init__(self, loc: str, message: str) -> None:
        self.error = FieldError(loc, message)
        super().__init__(str(self.error))


def json_response(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, model.model_dump_json(by_alias=True).encode(), JSON, headers or {})


def problem(status: int, title: str, detail: str | None = None, errors: list[FieldError] | None = None) -> Response:
    """An RFC 9457 problem response."""
    body = Problem(
        title=title,
        status=status,
        detail=detail,
        errors=[FieldProblem(loc=e.loc, message=e.message) for e in errors or []],
    )
    return Response(status, body.model_dump_json(by_alias=True, exclude_none=True).encode(), PROBLEM_JSON)


def job_not_found(job_id: str) -> Response:
    return problem(404, "Job not found", f"there is no job {ascii(job_id)[:200]}")


def find_job(services: Services, job_id: str, caller: Caller) -> JobRecord | None:
    """The job ``job_id`` names, or ``None``: an id that cannot be a key names no job, and another team's job is
    not found either, so that ids do not leak."""
    if not RECORD_KEY.match(job_id):
        return None
    found = services.records.get(job_id)
    if found is None or not may_see(caller, found.value.team):
        return None
    return found.value


def submitting_team(services: Services, request: Request) -> str | None:
    """The team a submission by the request's caller counts against (raises :class:`PolicyViolation` naming
    ``team``)."""
    return team_for(request.who, text_header(request, TEAM_HEADER), services.settings.teams)


def text_header(request: Request, name: str) -> str | None:
    value = request.headers.get(name, "").strip()
    return value or None


# --- inputs ---------------------------------------------------------------------------------------------------


def text_param(request: Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(name, "is not valid text") from None
    return value


def number_param(request: Request, name: str, low: int, high: int) -> int | None:
    value = text_param(request, name)
    if value is None:
        return None
    if not _DIGITS.fullmatch(value) or not low <= int(value) <= high:
        raise BadRequest(name, f"{ascii(value)[:40]} is not a whole number from {low} to {high}")
    return int(value)


def _time(request: Request, name: str) -> dt.datetime | None:
    value = text_param(request, name)
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise BadRequest(name, f"{ascii(value)[:60]} is not an ISO 8601 time within years 1-9999") from None


def workspace_path(path: str, name: str, *, folder: bool) -> str:
    """``path`` if it is a plain relative path inside a workspace (``""`` is the root of a folder listing)."""
    if folder and path == "":
        return path
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(name, "is not valid text") from None
    if len(path) > MAX_PATH:
        raise BadRequest(name, f"is {len(path)} characters; a path has at most {MAX_PATH}")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise BadRequest(name, "must be a relative path inside the workspace, without empty, '.' or '..' parts")
        if len(part) > MAX_SEGMENT:
            raise BadRequest(name, f"has a name of {len(part)} characters; a name has at most {MAX_SEGMENT}")
        if any(c in _FORBIDDEN_IN_NAMES or ord(c) < 32 or ord(c) == 127 for c in part):
            raise BadRequest(name, 'may not hold control characters or any of " \\ : | < > * ?')
    return path


def _token(marker: str | None, folder: str) -> str | None:
    """The API's continuation token of a Files listing: its marker and folder, so that a token is checked whole
    (the Files marker itself is opaque, and a service may ignore one it did not issue)."""
    if marker is None:
        return None
    return base64.urlsafe_b64encode(json.dumps({"f": folder, "m": marker}).encode()).decode().rstrip("=")


def _marker(token: str | None, folder: str) -> str | None:
    if token is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("f") != folder or not isinstance(data.get("m"), str):
        raise BadRequest("continuation", "is not a token this API issued for this folder")
    return str(data["m"])


def _query(request: Request) -> JobQuery:
    status = text_param(request, "status")
    if status is not None and status not in {s.value for s in Status}:
        raise BadRequest("status", f"{ascii(status)[:40]} is not one of {', '.join(s.value for s in Status)}")
    labels = []
    for pair in filter(None, (text_param(request, "label") or "").split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadRequest("label", f"{ascii(pair)[:80]} is not key=value")
        labels.append((key.strip(), value.strip()))
    order = text_param(request, "order")
    if order not in (None, "newest", "oldest"):
        raise BadRequest("order", f"{ascii(order)[:40]} is not newest or oldest")
    return JobQuery(
        status=status,
        since=_time(request, "since"),
        until=_time(request, "until"),
        labels=tuple(labels),
        limit=number_param(request, "limit", 1, MAX_PAGE) or 50,
        continuation=text_param(request, "continuation"),
        oldest_first=order == "oldest",
    )


# --- handlers -------------------------------------------------------------------------------------------------

P = ParamSpec("P")


def handler(route: Callable[P, Response]) -> Callable[P, Response]:
    """A route's handler: an invalid input it finds is answered 400, naming the field."""

    @functools.wraps(route)
    def answer(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return route(*args, **kwargs)
        except BadRequest as exc:
            return problem(400, "Invalid request", str(exc), [exc.error])

    return answer


def refused_body(request: Request) -> Response | None:
    """415 for a body that is neither JSON nor YAML, 413 for one over the spec limit; ``None`` when acceptable."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in SPEC_TYPES:
        shown = ascii(content_type)[:80]
        return problem(415, "Unsupported media type", f"{shown}: send application/json or application/yaml")
    if len(request.body) > MAX_SPEC_BYTES:
        return problem(413, "Document too large", f"the limit is {MAX_SPEC_BYTES // 1024} KiB")
    return None


@handler
def submit(services: Services, request: Request) -> Response:
    """``POST /api/jobs``: validate and apply policy now, record the job, enqueue it, answer 202."""
    refused = refused_body(request)
    if refused is not None:
        return refused
    dry_run = text_param(request, "dryRun")
    if dry_run not in (None, "true", "false"):
        raise BadRequest("dryRun", "is true or false")
    try:
        team = submitting_team(services, request)
        if dry_run == "true":  # validated and checked against policy as a submission would be; nothing recorded
            data = load_document(request.body)
            spec = check(data, str(uuid.uuid4()), services, team)
            named = isinstance(data, Mapping) and "id" in data
            return json_response(DryRun(id=spec.id if named else None, spec=spec.canonical()))
        submitted = submit_http(services, request.body, str(uuid.uuid4()), request.who.actor, team)
    except JobError as exc:
        title = "Policy violation" if isinstance(exc, PolicyViolation) else "Invalid job spec"
        return problem(400, title, str(exc), exc.errors)
    if submitted.outcome == "conflict":
        return problem(409, "Job id in use", f"job {submitted.job_id!r} already exists with a different spec")
    location = job_path(submitted.job_id)
    record = submitted.record
    body = Accepted(
        id=submitted.job_id,
        status=submitted.status,
        location=location,
        duplicate=submitted.outcome == "duplicate",
        updated_at=record.updated_at if record is not None else None,
    )
    return json_response(body, 202, {"Location": location})


@handler
def get_policy(services: Services) -> Response:
    """``GET /api/policy``: the operator's policy, for clients that check specs before submitting them."""
    return json_response(policy_of(services.settings))


@handler
def get_job(services: Services, job_id: str, request: Request) -> Response:
    """``GET /api/jobs/{id}``."""
    record = find_job(services, job_id, request.who)
    return json_response(job_out(record)) if record is not None else job_not_found(job_id)


@handler
def list_jobs(services: Services, request: Request) -> Response:
    """``GET /api/jobs``: filtered by status, label and submission time, a page at a time."""
    query = replace(_query(request), teams=visible_teams(request.who))
    try:
        records, token = queries.list_jobs(services, query)
    except ValueError as exc:  # a continuation token this API did not issue
        raise BadRequest("continuation", str(exc)) from None
    return json_response(JobList(items=[job_out(r) for r in records], continuation_token=token))


USAGE_BY = re.compile(r"team|label:[A-Za-z0-9._-]{1,63}")
USAGE_DAYS = 31


def _day(request: Request, name: str, default: dt.date) -> dt.date:
    moment = _time(request, name)
    return moment.date() if moment is not None else default


@handler
def usage(services: Services, request: Request) -> Response:
    """``GET /api/usage?since=&until=&by=team|label:NAME``: jobs, vCPU-seconds, GB-seconds and estimated cost per team
    or label value, over whole UTC days (the last 31 by default); the caller's teams only, unless an admin."""
    today = services.clock.now().astimezone(dt.UTC).date()
    until = _day(request, "until", today)
    since = _day(request, "since", until - dt.timedelta(days=USAGE_DAYS - 1))
    by = text_param(request, "by") or "team"
    if not USAGE_BY.fullmatch(by):
        raise BadRequest("by", f"{ascii(by)[:70]} is not team or label:NAME")
    if since > until:
        raise BadRequest("since", "is after until")
    if (until - since).days >= MAX_DAYS:
        raise BadRequest("since", f"a report covers at most {MAX_DAYS} days")
    found = usage_between(services, since, until, by, visible_teams(request.who))
    items = [
        UsageOut(
            key=k, jobs=u.jobs, vcpu_seconds=round(u.vcpu_seconds, 3), gb_seconds=round(u.gb_seconds, 3), cost=u.cost
        )
        for k, u in found.items()
    ]
    report = UsageReport(since=since, until=until, by=by, currency=services.settings.prices.currency, items=items)
    return json_response(report)


@handler
def cancel(services: Services, job_id: str, request: Request) -> Response:
    """``DELETE /api/jobs/{id}``: a queued job is cancelled now, a launched one by the reconciler. Idempotent."""
    if find_job(services, job_id, request.who) is None:
        return job_not_found(job_id)
    result = cancel_job(services, job_id, request.who.actor)
    if not result.settled:
        return problem(409, "Job changing", f"job {job_id!r} kept changing; try again")
    return json_response(job_out(result.record), 202) if result.record is not None else job_not_found(job_id)


@handler
def logs(services: Services, job_id: str, request: Request) -> Response:
    """``GET /api/jobs/{id}/logs``: live from ACI while the job runs, the harvested logs afterwards; ``?attempt=N``
    for an earlier attempt's. With ``?after=`` (empty to begin), a JSON page a follower walks (:func:`_log_page`)."""
    tail = number_param(request, "tail", 0, MAX_TAIL)
    attempt = number_param(request, "attempt", 1, 1000)
    wanted = text_param(request, "container")
    record = find_job(services, job_id, request.who)
    if record is None:
        return job_not_found(job_id)
    if wanted is not None and wanted not in containers_of(record):
        return problem(404, "Container not found", f"job {job_id!r} has no container {ascii(wanted)[:70]}")
    if attempt is not None and not any(a.number == attempt for a in record.attempts):
        return problem(404, "Attempt not found", f"job {job_id!r} has {len(record.attempts)} attempts")
    if "after" in request.query:
        return _log_page(services, record, wanted, request, attempt=attempt, tail=tail)
    texts = job_logs(services, record, wanted, tail, attempt)
    if len(texts) == 1 or wanted:
        body = next(iter(texts.values()), "")
    else:
        body = "".join(
            f"==> {name} <==\n{text}" + ("" if text.endswith("\n") or not text else "\n")
            for name, text in texts.items()
        )
    return Response(200, body.encode(), "text/plain; charset=utf-8")


def _log_page(
    services: Services,
    record: JobRecord,
    container: str | None,
    request: Request,
    *,
    attempt: int | None,
    tail: int | None,
) -> Response:
    """The lines after ``?after=`` and the cursor to pass next; an empty ``after`` begins at the start of the
    current attempt (or ``?attempt=N``), or its last ``?tail=`` lines."""
    text = text_param(request, "after")
    try:
        cursor = Cursor.decode(text) if text is not None else None
        page = follow(services, record, container, cursor, number=attempt, tail=tail)
    except ValueError as exc:
        raise BadRequest("after", str(exc)) from None
    body = LogPageOut(
        job_id=record.id,
        attempt=page.attempt,
        containers=page.containers,
        lines=[LogLineOut(container=name, time=time_text(line.at), text=line.text) for name, line in page.lines],
        gaps=[LogGapOut(container=name, after=time_text(g.after), before=time_text(g.before)) for name, g in page.gaps],
        next=page.next.encode() if page.next is not None else None,
        complete=page.complete,
        more=page.more,
    )
    return json_response(body)


@handler
def outputs(services: Services, job_id: str, request: Request) -> Response:
    """``GET /api/jobs/{id}/outputs``: one folder of the job's workspace (``?path=``), a page at a time."""
    folder = workspace_path(text_param(request, "path") or "", "path", folder=True)
    limit = number_param(request, "limit", 1, 1000) or 500
    continuation = _marker(text_param(request, "continuation"), folder)
    record = find_job(services, job_id, request.who)
    if record is None:
        return job_not_found(job_id)
    try:
        page = queries.outputs_page(services, record, folder, continuation, limit)
    except CloudError as exc:
        if exc.status == 404:
            return problem(404, "Folder not found", f"job {job_id!r} has no output folder {folder!r}")
        if exc.status == 400:
            raise BadRequest("continuation", "is not a token this API issued") from None
        raise
    prefix = f"{folder}/" if folder else ""
    entries = [
        OutputEntryOut(path=prefix + e.name, kind="directory" if e.is_directory else "file", size=e.size)
        for e in page.entries
    ]
    summary = OutputSummaryOut.model_validate(record.outputs, from_attributes=True) if record.outputs else None
    listing = OutputList(
        job_id=record.id,
        workspace=record.workspace,
        path=folder,
        summary=summary,
        entries=entries,
        continuation_token=_token(page.continuation, folder),
    )
    return json_response(listing)


@handler
def output_file(services: Services, job_id: str, path: str, request: Request) -> Response:
    """``GET /api/jobs/{id}/outputs/{path}``: one file of the workspace; paths may not leave it."""
    safe = workspace_path(path, "path", folder=False)
    record = find_job(services, job_id, request.who)
    if record is None:
        return job_not_found(job_id)
    data = queries.output_file(services, record, safe)
    if data is None:
        return problem(404, "Output not found", f"job {job_id!r} has no output {safe!r}")
    return Response(200, data, "application/octet-stream")


@handler
def health(services: Services) -> Response:
    """``GET /api/health``: the store, Service Bus and ARM, each checked with one cheap read."""
    probes = queries.health(services)
    checks = {
        name: Check(status="ok" if p.ok else "error", detail=p.detail, latency_ms=p.latency_ms)
        for name, p in probes.items()
    }
    ok = all(p.ok for p in probes.values())
    return json_response(Health(status="ok" if ok else "degraded", checks=checks), 200 if ok else 503)


RETRY_AFTER_SECONDS = "5"
"""What a 503 tells a client to wait: storage and Key Vault outages are usually seconds long."""


def safely(handler: Callable[[], Response]) -> Response:
    """Run a handler: a bad input is a 400 naming it, a dependency failure a 503, anything else a 500 that names no
    internals or secrets."""
    try:
        return handler()
    except DispatcherError as exc:
        log.warning("request failed: %s: %s", type(exc).__name__, exc)
        unavailable = problem(503, "Dependency unavailable", type(exc).__name__)
        unavailable.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return unavailable
    except Exception:
        log.exception("request failed")
        return problem(500, "Internal error", "the request failed; see the dispatcher's logs")

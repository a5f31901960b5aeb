"""Every HTTP route of the API, who may call it, and the one path a request takes: authenticate, authorize, handle.

Routes are anonymous to the Functions host: the app authenticates each request itself, with an Entra ID bearer
token validated against the tenant's keys (:mod:`dispatcher.adapters.azure.tokens`). For automation without a
token, each route is also served under ``keyed/`` at the host's ``function`` level, so the host checks the function
key as it always does and the app acts as the operator's configured key caller; ``DISPATCHER_FUNCTION_KEYS=false``
leaves those routes out. A key sent to an anonymous route is ignored: nobody checked it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from dispatcher.domain.errors import InvalidToken
from dispatcher.domain.identity import READ, SCHEDULES, SUBMIT, Caller, Denied, caller_from_claims, require
from dispatcher.domain.identity import key_caller as configured_key_caller
from dispatcher.entrypoints import http as api
from dispatcher.entrypoints import http_runs as runs
from dispatcher.entrypoints import http_tasks as tasks
from dispatcher.entrypoints import http_ui as ui
from dispatcher.entrypoints.api_models import Me
from dispatcher.service.services import Services

KEYED_PREFIX = "keyed/"
BEARER = "bearer "


class Unauthenticated(Exception):
    """No credential the API accepts: answered 401 with ``reason``; ``invalid`` when a token was sent and refused."""

    def __init__(self, reason: str, *, invalid: bool = False) -> None:
        self.reason = reason
        self.invalid = invalid
        super().__init__(reason)


Handle = Callable[[Services, api.Request], api.Response]


@dataclass(frozen=True)
class Route:
    """One route: its function name, template and method, the app role it needs (``None``: any caller), and its
    handler."""

    name: str
    template: str
    method: str
    role: str | None
    handle: Handle
    summary: str


def _p(request: api.Request, name: str) -> str:
    return request.route.get(name, "")


def me(services: Services, request: api.Request) -> api.Response:
    """``GET /api/me``: who the API takes the caller for."""
    caller = request.who
    body = Me(id=caller.id, name=caller.name, via=caller.via, roles=sorted(caller.roles), teams=list(caller.teams))
    return api.json_response(body)


ROUTES: tuple[Route, ...] = (
    Route("submit_job", "jobs", "POST", SUBMIT, api.submit, "Validate a job spec now, record and enqueue it."),
    Route("list_jobs", "jobs", "GET", READ, api.list_jobs, "Jobs by status, label and time, a page at a time."),
    Route("get_job", "jobs/{id}", "GET", READ, lambda s, r: api.get_job(s, _p(r, "id"), r), "One job."),
    Route("cancel_job", "jobs/{id}", "DELETE", SUBMIT, lambda s, r: api.cancel(s, _p(r, "id"), r), "Cancel a job."),
    Route("job_logs", "jobs/{id}/logs", "GET", READ, lambda s, r: api.logs(s, _p(r, "id"), r), "A job's logs."),
    Route("job_outputs", "jobs/{id}/outputs", "GET", READ, lambda s, r: api.outputs(s, _p(r, "id"), r), "A folder."),
    Route(
        "job_output_file",
        "jobs/{id}/outputs/{*path}",
        "GET",
        READ,
        lambda s, r: api.output_file(s, _p(r, "id"), _p(r, "path"), r),
        "One file of a job's workspace.",
    ),
    Route("list_tasks", "jobs/{id}/tasks", "GET", READ, lambda s, r: tasks.list_tasks(s, _p(r, "id"), r), "Tasks."),
    Route(
        "get_task",
        "jobs/{id}/tasks/{index}",
        "GET",
        READ,
        lambda s, r: tasks.get_task(s, _p(r, "id"), _p(r, "index"), r),
        "One task of an array job.",
    ),
    Route(
        "task_logs",
        "jobs/{id}/tasks/{index}/logs",
        "GET",
        READ,
        lambda s, r: tasks.task_logs(s, _p(r, "id"), _p(r, "index"), r),
        "The log of one task's latest run, or of run N.",
    ),
    Route(
        "rerun_job",
        "jobs/{id}/rerun",
        "POST",
        SUBMIT,
        lambda s, r: runs.rerun(s, _p(r, "id"), r),
        "A new job from this one's spec, with overrides.",
    ),
    Route("list_schedules", "schedules", "GET", READ, runs.list_schedules, "Schedules with their next due times."),
    Route(
        "put_schedule",
        "schedules/{name}",
        "PUT",
        SCHEDULES,
        lambda s, r: runs.put_schedule(s, _p(r, "name"), r),
        "Create or replace a schedule, validated like a job.",
    ),
    Route(
        "get_schedule",
        "schedules/{name}",
        "GET",
        READ,
        lambda s, r: runs.get_schedule(s, _p(r, "name"), r),
        "A schedule: next due times, active jobs and history.",
    ),
    Route(
        "delete_schedule",
        "schedules/{name}",
        "DELETE",
        SCHEDULES,
        lambda s, r: runs.delete_schedule(s, _p(r, "name"), r),
        "Delete a schedule; its active jobs go on unless ?cancelActive=true.",
    ),
    Route(
        "schedule_action",
        "schedules/{name}/{action}",
        "POST",
        SCHEDULES,
        lambda s, r: runs.schedule_action(s, _p(r, "name"), _p(r, "action"), r),
        "trigger, suspend or resume a schedule.",
    ),
    Route("usage", "usage", "GET", READ, api.usage, "Jobs, vCPU-s, GB-s and cost per team or label value."),
    Route("get_policy", "policy", "GET", READ, lambda s, r: api.get_policy(s), "The operator's policy."),
    Route("health", "health", "GET", None, lambda s, r: api.health(s), "The store, Service Bus and ARM, checked."),
    Route("whoami", "me", "GET", None, me, "The caller: its id, name, roles and teams."),
    Route("pools", "pools", "GET", READ, ui.pools, "Each pool's use against its quota over the last hour."),
)
"""Every authenticated route. ``Jobs.Admin`` holds every job role (:mod:`dispatcher.domain.identity`)."""


def authenticate(services: Services, request: api.Request) -> Caller:
    """The caller of ``request``: the configured key caller on a keyed route (the host checked its key), else the
    holder of a valid bearer token. Raises :class:`Unauthenticated`."""
    settings = services.settings
    if request.keyed:
        if not settings.function_keys:  # the route is not registered then; refuse should it be reached anyway
            raise Unauthenticated("function keys are turned off here; sign in with Entra ID")
        caller = settings.key_caller
        return configured_key_caller(caller.name, caller.team, caller.roles)
    header = request.headers.get("authorization", "")
    if not header.lower().startswith(BEARER) or not header[len(BEARER) :].strip():
        hint = " or send a function key to /api/keyed/..." if settings.function_keys else ""
        raise Unauthenticated(f"sign in: send an Entra ID bearer token in the Authorization header{hint}")
    if services.tokens is None:
        raise Unauthenticated("this dispatcher takes no bearer tokens (sign-in is not configured)")
    try:
        claims = services.tokens.claims(header[len(BEARER) :].strip())
    except InvalidToken as exc:
        raise Unauthenticated(exc.reason, invalid=True) from None
    return caller_from_claims(claims, {name: team.groups for name, team in settings.teams.items()})


def serve(services: Callable[[], Services], route: Route, request: api.Request) -> api.Response:
    """Answer ``request`` on ``route``: 401 without an accepted credential, 403 without the route's role, else the
    handler's answer (a dependency outage a 503, anything unexpected a 500 naming nothing internal)."""

    def run() -> api.Response:
        built = services()
        try:
            caller = authenticate(built, request)
            if route.role is not None:
                require(caller, route.role)
        except Unauthenticated as exc:
            answer = api.problem(401, "Unauthorized", exc.reason)
            # RFC 6750, section 3: an error code only when a token was sent and refused
            answer.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if exc.invalid else "Bearer"
            return answer
        except Denied as exc:
            return api.problem(403, "Forbidden", exc.reason)
        return route.handle(built, replace(request, caller=caller))

    return api.safely(run)

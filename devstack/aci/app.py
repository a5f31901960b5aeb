"""Starlette routes for ARM ``Microsoft.ContainerInstance`` (2023-05-01) and the ``/devstack`` control endpoints.

Every ARM request goes through the same gate, in the order ARM applies them: bearer token (401), then
``api-version`` (400), then the throttling bucket of its kind (429 with ``Retry-After``), then injected
faults, then the operation. Each answer is counted by operation and status.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from devstack.aci.catalog import OPERATIONS, capabilities
from devstack.aci.counters import Counters
from devstack.aci.errors import ArmError
from devstack.aci.faults import FAULT_ERROR_CODES
from devstack.aci.service import PROVIDER, SUPPORTED_API_VERSIONS, AciService, ArmResponse
from dispatcher.adapters.azure.credential import DEVSTACK_TOKEN

SUBSCRIPTION = "/subscriptions/{subscription}"
GROUPS_IN_RG = SUBSCRIPTION + "/resourceGroups/{resource_group}/providers/" + PROVIDER + "/containerGroups"
GROUP = GROUPS_IN_RG + "/{name}"
LOCATION = SUBSCRIPTION + f"/providers/{PROVIDER}/locations/{{location}}"
READ_OPERATIONS = frozenset(
    {
        "get",
        "list",
        "list_by_resource_group",
        "logs",
        "usage",
        "operation_status",
        "cached_images",
        "capabilities",
        "operations",
        "outbound_dependencies",
    }
)
COLLECTIONS = frozenset({"list", "list_by_resource_group", "operations"})

Handler = Callable[[Request, Any], ArmResponse]


class DroppedResponse(Response):
    """Starts a response and closes the connection before its body, like a connection lost mid-answer."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"partial": ', "more_body": True})


def throttle_kind(operation: str) -> str:
    """Which ARM bucket an operation draws from: reads, writes or deletes."""
    if operation in READ_OPERATIONS:
        return "reads"
    return "deletes" if operation == "delete" else "writes"


def _json(response: ArmResponse, extra_headers: dict[str, str]) -> Response:
    headers = {**response.headers, **extra_headers}
    if response.body is None:
        return Response(status_code=response.status, headers=headers)
    return JSONResponse(response.body, status_code=response.status, headers=headers)


def _error(error: ArmError, extra_headers: dict[str, str]) -> Response:
    return JSONResponse(error.body(), status_code=error.status, headers={**error.headers, **extra_headers})


def build_app(service: AciService, counters: Counters) -> Starlette:
    """The ASGI application serving ``service``."""

    def arm(operation: str, handler: Handler, reads_body: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            kind = throttle_kind(operation)
            headers = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": str(uuid.uuid4())}
            try:
                _authenticate(request)
                version = request.query_params.get("api-version")
                if not version:
                    raise ArmError(
                        400,
                        "MissingApiVersionParameter",
                        "The api-version query parameter (?api-version=) is required for all requests.",
                    )
                if version not in SUPPORTED_API_VERSIONS:
                    location = None
                    if reads_body:
                        with contextlib.suppress(ValueError, AttributeError):
                            location = json.loads(await request.body() or b"null").get("location")
                    raise _unsupported_version(service, operation, request, version, location)
                subscription = request.path_params.get("subscription", "")
                allowed, remaining, wait = service.buckets.take(subscription, kind, service.clock.now())
                headers[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(remaining)
                if not allowed:
                    seconds = max(1, math.ceil(service.clock.real_seconds(wait)))
                    raise ArmError(
                        429,
                        "TooManyRequests",
                        f"Number of '{kind}' requests for subscription '{subscription}' exceeded the limit. Please "
                        f"try again after '{seconds}' seconds.",
                        {"Retry-After": str(seconds)},
                    )
                fault = service.faults.take_request_fault(operation)
                if fault is not None and fault.drop:
                    counters.record(operation, 0)
                    return DroppedResponse()
                if fault is not None:
                    code = FAULT_ERROR_CODES.get(fault.status, "InternalServerError")
                    raise ArmError(fault.status, code, f"Injected fault: {operation} answered {fault.status}.")
                body: Any = None
                if reads_body:
                    raw = await request.body()
                    try:
                        body = json.loads(raw or b"null")
                    except json.JSONDecodeError as error:
                        raise ArmError(
                            400, "InvalidRequestContent", f"The request content was invalid JSON: {error}."
                        ) from error
                result = await run_in_threadpool(handler, request, body)
            except ArmError as error:
                counters.record(operation, error.status)
                return _error(error, headers)
            counters.record(operation, result.status)
            return _json(result, headers)

        return endpoint

    def params(request: Request) -> tuple[str, str, str]:
        p = request.path_params
        return p["subscription"], p["resource_group"], p["name"]

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def skip_of(request: Request) -> int:
        token = request.query_params.get("$skipToken", "0")
        return int(token) if token.isdigit() else 0

    def bool_param(request: Request, name: str) -> bool:
        return request.query_params.get(name, "false").lower() == "true"

    def tail_of(request: Request) -> int | None:
        tail = request.query_params.get("tail")
        return int(tail) if tail is not None and tail.lstrip("-").isdigit() else None

    routes = [
        Route(
            SUBSCRIPTION + f"/providers/{PROVIDER}/containerGroups",
            arm(
                "list", lambda r, _: service.list(r.path_params["subscription"], None, skip_of(r), base(r), r.url.path)
            ),
            methods=["GET"],
        ),
        Route(
            GROUPS_IN_RG,
            arm(
                "list_by_resource_group",
                lambda r, _: service.list(
                    r.path_params["subscription"], r.path_params["resource_group"], skip_of(r), base(r), r.url.path
                ),
            ),
            methods=["GET"],
        ),
        Route(GROUP, arm("get", lambda r, _: service.get(*params(r))), methods=["GET"]),
        Route(
            GROUP,
            arm("create", lambda r, body: service.create_or_update(*params(r), body, base(r)), reads_body=True),
            methods=["PUT"],
        ),
        Route(GROUP, arm("delete", lambda r, _: service.delete(*params(r), base(r))), methods=["DELETE"]),
        Route(GROUP + "/stop", arm("stop", lambda r, _: service.stop(*params(r))), methods=["POST"]),
        Route(GROUP + "/start", arm("start", lambda r, _: service.start(*params(r), base(r))), methods=["POST"]),
        Route(GROUP + "/restart", arm("restart", lambda r, _: service.restart(*params(r))), methods=["POST"]),
        Route(
            GROUP + "/containers/{container}/logs",
            arm(
                "logs",
                lambda r, _: service.logs(
                    *params(r), r.path_params["container"], tail=tail_of(r), timestamps=bool_param(r, "timestamps")
                ),
            ),
            methods=["GET"],
        ),
        Route(
            GROUP,
            arm("update", lambda r, body: service.update_tags(*params(r), body), reads_body=True),
            methods=["PATCH"],
        ),
        Route(
            GROUP + "/containers/{container}/exec",
            arm("exec", lambda r, _: _not_emulated("exec: an interactive session over a web socket")),
            methods=["POST"],
        ),
        Route(
            GROUP + "/containers/{container}/attach",
            arm("attach", lambda r, _: _not_emulated("attach: a live output stream over a web socket")),
            methods=["POST"],
        ),
        Route(
            GROUP + "/outboundNetworkDependenciesEndpoints",
            arm("outbound_dependencies", lambda r, _: service.outbound_dependencies(*params(r))),
            methods=["GET"],
        ),
        Route(
            LOCATION + "/usages",
            arm("usage", lambda r, _: service.usage(r.path_params["subscription"], r.path_params["location"])),
            methods=["GET"],
        ),
        Route(
            LOCATION + "/cachedImages",
            arm("cached_images", lambda r, _: ArmResponse(200, {"value": []})),
            methods=["GET"],
        ),
        Route(
            LOCATION + "/capabilities",
            arm("capabilities", lambda r, _: ArmResponse(200, capabilities(r.path_params["location"]))),
            methods=["GET"],
        ),
        Route(
            f"/providers/{PROVIDER}/operations",
            arm("operations", lambda r, _: ArmResponse(200, OPERATIONS)),
            methods=["GET"],
        ),
        Route(
            SUBSCRIPTION + f"/providers/{PROVIDER}/locations/{{location}}/operations/{{operation_id}}",
            arm(
                "operation_status",
                lambda r, _: service.operation_status(
                    r.path_params["subscription"], r.path_params["location"], r.path_params["operation_id"]
                ),
            ),
            methods=["GET"],
        ),
        Route("/devstack/counters", lambda _: JSONResponse(counters.snapshot()), methods=["GET"]),
        Route("/devstack/counters/reset", _reset_counters(counters), methods=["POST"]),
        Route("/devstack/faults", _faults_endpoint(service), methods=["POST"]),
        Route("/devstack/groups/{name}/vanish", _out_of_band(service.vanish, "removed"), methods=["POST"]),
        Route("/devstack/groups/{name}/evict", _out_of_band(service.evict, "evicted"), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: _route_not_found, 405: _method_not_allowed})


def _not_emulated(what: str) -> ArmResponse:
    raise ArmError(501, "NotImplemented", f"The devstack ACI emulator does not implement {what}.")


async def _route_not_found(request: Request, _: Exception) -> Response:
    path = request.url.path
    return JSONResponse(
        {"error": {"code": "InvalidResourceType", "message": f"The resource type of '{path}' could not be found."}},
        status_code=404,
    )


async def _method_not_allowed(request: Request, _: Exception) -> Response:
    message = f"The HTTP method '{request.method}' is not supported at '{request.url.path}'."
    return JSONResponse({"error": {"code": "MethodNotAllowed", "message": message}}, status_code=405)


def _unsupported_version(
    service: AciService, operation: str, request: Request, version: str, location: str | None
) -> ArmError:
    """What ARM's front door answers for an api-version the provider lacks (research notes in devstack/README.md):
    400 NoRegisteredProviderFound where it knows a location, else 404 InvalidResourceType."""
    versions = SUPPORTED_API_VERSIONS
    p = request.path_params
    location = location or p.get("location")
    if location is None and "name" in p:
        location = service.location_of(p["subscription"], p["resource_group"], p["name"])
    kind = "locations" if "location" in p else "containerGroups"
    if location is None or operation in COLLECTIONS:
        return ArmError(
            404,
            "InvalidResourceType",
            f"The resource type '{kind}' could not be found in the namespace '{PROVIDER}' for api version "
            f"'{version}'. The supported api-versions are '{','.join(versions)}'.",
        )
    return ArmError(
        400,
        "NoRegisteredProviderFound",
        f"No registered resource provider found for location '{location}' and API version '{version}' for type "
        f"'{kind}'. The supported api-versions are '{', '.join(versions)}'.",
    )


def _authenticate(request: Request) -> None:
    header = request.headers.get("authorization")
    if not header:
        raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or token != DEVSTACK_TOKEN:
        raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")


def _reset_counters(counters: Counters) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(_: Request) -> Response:
        counters.reset()
        return Response(status_code=204)

    return endpoint


def _faults_endpoint(service: AciService) -> Callable[[Request], Awaitable[Response]]:
    """POST ``{"action": ..., ...}``: fail_next, drop_next, slow_lro, fail_next_create, throttle or clear."""

    async def endpoint(request: Request) -> Response:
        try:
            order = await request.json()
            action = order["action"]
            faults = service.faults
            if action == "fail_next":
                faults.fail_next(order["operation"], int(order.get("count", 1)), int(order.get("status", 500)))
            elif action == "drop_next":
                faults.drop_next(order["operation"], int(order.get("count", 1)))
            elif action == "slow_lro":
                faults.slow_lro(float(order["seconds"]))
            elif action == "fail_next_create":
                faults.fail_next_create(order["group"], order.get("kind", "image_pull"), order.get("message"))
            elif action == "throttle":
                service.buckets.drain(order["subscription"], order.get("kind", "reads"), service.clock.now())
            elif action == "clear":
                faults.clear()
                service.buckets.reset()
            else:
                return JSONResponse({"error": f"unknown action {action!r}"}, status_code=400)
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as error:
            return JSONResponse({"error": f"bad fault order: {error}"}, status_code=400)
        return Response(status_code=204)

    return endpoint


def _out_of_band(act: Callable[[str, str | None], int], key: str) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that does ``act`` to the groups called ``{name}`` behind the client's back; 404 when none."""

    async def endpoint(request: Request) -> Response:
        count = await run_in_threadpool(act, request.path_params["name"], request.query_params.get("resourceGroup"))
        return JSONResponse({key: count}, status_code=200 if count else 404)

    return endpoint

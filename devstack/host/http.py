"""HTTP triggers and the host's admin API, served as one ASGI app like the Functions host's front door.

- ``/{routePrefix}/{route}``: each enabled HTTP-triggered function, with route templates, methods (405 otherwise) and
  ``authLevel`` checked against the keys (``x-functions-key`` header or ``?code=``; 401 otherwise).
- ``POST /admin/functions/{name}`` (master key, body ``{"input": "..."}``): invoke a non-HTTP function, 202.
- ``GET /admin/functions`` (master key): the indexed functions; ``GET /admin/host/status`` (master key);
  ``GET /admin/host/ping``: anonymous liveness.

A function's return value becomes the response: an ``HttpResponse`` as given (status, headers, mimetype and
charset, body bytes), a ``str`` as ``200 text/plain``, ``None`` as ``204``; anything else, or an exception, 500.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from devstack.host.keys import HostKeys
from devstack.host.loader import HTTP_TRIGGER, FunctionMetadata
from devstack.host.routes import RouteTemplate

logger = logging.getLogger("devstack.host")

KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"
HTTP_REASON = "This function was programmatically called via the host APIs."
AdminInvoke = Callable[[str, str], concurrent.futures.Future[Any]]


def auth_level_of(function: FunctionMetadata) -> func.AuthLevel:
    """The function's ``authLevel`` (the metadata spells the enum name or its value, in any case)."""
    raw = str(function.trigger.get("authLevel") or "function").lower()
    return func.AuthLevel(raw)


def methods_of(function: FunctionMetadata) -> frozenset[str]:
    """Upper-case methods the function accepts; empty means every method."""
    return frozenset(str(method).upper() for method in function.trigger.get("methods") or [])


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP-triggered function behind its route template."""

    function: FunctionMetadata
    template: RouteTemplate
    methods: frozenset[str]
    auth_level: func.AuthLevel

    @classmethod
    def of(cls, function: FunctionMetadata) -> HttpRoute:
        route = str(function.trigger.get("route") or function.name)
        return cls(function, RouteTemplate.parse(route), methods_of(function), auth_level_of(function))

    def allows_method(self, method: str) -> bool:
        return not self.methods or method.upper() in self.methods


class FunctionsFrontDoor:
    """The ASGI app: dispatches requests to HTTP functions and answers the admin API."""

    def __init__(
        self,
        *,
        functions: dict[str, FunctionMetadata],
        submit: Callable[[FunctionMetadata, Any, str], concurrent.futures.Future[Any]],
        keys: HostKeys,
        route_prefix: str,
        admin_invoke: AdminInvoke,
        host_state: Callable[[], str],
        disabled: frozenset[str] = frozenset(),
    ) -> None:
        self._functions = functions
        self._routes = sorted(
            (
                HttpRoute.of(function)
                for function in functions.values()
                if function.trigger_type == HTTP_TRIGGER and function.name not in disabled
            ),
            key=lambda route: route.template.precedence,
        )
        self._submit = submit
        self._keys = keys
        self._prefix = route_prefix.strip("/")
        self._admin_invoke = admin_invoke
        self._host_state = host_state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path: str = scope["path"]
        if path == "/admin" or path.startswith("/admin/"):
            response = await self._admin(request, path.removeprefix("/admin").strip("/"))
        else:
            response = await self._function(request, path)
        await response(scope, receive, send)

    def _route_path(self, path: str) -> str | None:
        if not self._prefix:
            return path.strip("/")
        lowered = path.lower()
        prefix = f"/{self._prefix.lower()}"
        if lowered == prefix or lowered == prefix + "/":
            return ""
        if lowered.startswith(prefix + "/"):
            return path[len(prefix) + 1 :]
        return None

    def _presented_key(self, request: Request) -> str | None:
        return request.headers.get(KEY_HEADER) or request.query_params.get(KEY_QUERY)

    async def _function(self, request: Request, path: str) -> Response:
        route_path = self._route_path(path)
        if route_path is None:
            return Response(status_code=404)
        matches = [
            (route, params) for route in self._routes if (params := route.template.match(route_path)) is not None
        ]
        if not matches:
            return Response(status_code=404)
        chosen = next(((route, params) for route, params in matches if route.allows_method(request.method)), None)
        if chosen is None:
            allowed = sorted({method for route, _ in matches for method in route.methods})
            return Response(status_code=405, headers={"Allow": ", ".join(allowed)})
        route, route_params = chosen
        if not self._keys.allows(route.auth_level, self._presented_key(request)):
            return Response(status_code=401)
        body = await request.body()
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers={name: ", ".join(request.headers.getlist(name)) for name in request.headers},
            params={name: ",".join(request.query_params.getlist(name)) for name in request.query_params},
            route_params=route_params,
            body=body,
        )
        try:
            result = await asyncio.wrap_future(self._submit(route.function, http_request, HTTP_REASON))
        except Exception:
            return Response(status_code=500)
        return _to_response(route.function.name, result)

    async def _admin(self, request: Request, rest: str) -> Response:
        if rest == "host/ping":
            return Response(status_code=200)
        if not self._keys.allows(func.AuthLevel.ADMIN, self._presented_key(request)):
            return Response(status_code=401)
        if rest == "host/status" and request.method == "GET":
            return JSONResponse({"state": self._host_state(), "version": "devstack"})
        if rest == "functions" and request.method == "GET":
            return JSONResponse([function.function_json() for function in self._functions.values()])
        if rest.startswith("functions/"):
            name = rest.removeprefix("functions/")
            function = next((f for f in self._functions.values() if f.name.lower() == name.lower()), None)
            if function is None:
                return Response(status_code=404)
            if request.method == "GET":
                return JSONResponse(function.function_json())
            if request.method != "POST":
                return Response(status_code=405, headers={"Allow": "GET, POST"})
            if function.trigger_type == HTTP_TRIGGER:
                return JSONResponse({"error": "HTTP functions are invoked through their route"}, status_code=400)
            return await self._admin_post(function, await request.body())
        return Response(status_code=404)

    async def _admin_post(self, function: FunctionMetadata, body: bytes) -> Response:
        payload_input = ""
        if body.strip():
            try:
                document = json.loads(body)
            except json.JSONDecodeError:
                return JSONResponse({"error": 'body must be JSON like {"input": "..."}'}, status_code=400)
            if not isinstance(document, dict):
                return JSONResponse({"error": 'body must be JSON like {"input": "..."}'}, status_code=400)
            payload_input = str(document.get("input") or "")
        try:
            self._admin_invoke(function.name, payload_input)
        except RuntimeError as error:
            return JSONResponse({"error": str(error)}, status_code=503)
        return Response(status_code=202)


def _to_response(function_name: str, result: Any) -> Response:
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str):
        return Response(content=result.encode("utf-8"), status_code=200, media_type="text/plain; charset=utf-8")
    if not isinstance(result, func.HttpResponse):
        logger.error("function %s returned %s, not an HttpResponse or str", function_name, type(result).__name__)
        return Response(status_code=500)
    response = Response(content=result.get_body(), status_code=result.status_code)
    headers = result.headers
    raw = [(name, value) for name, value in response.raw_headers if name != b"content-type"]
    for name, value in headers.items():
        if name.lower() == "content-length":
            continue
        raw.append((name.lower().encode("latin-1"), str(value).encode("latin-1")))
    if "content-type" not in headers:
        mimetype = result.mimetype
        content_type = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        raw.append((b"content-type", content_type.encode("latin-1")))
    response.raw_headers = raw
    return response

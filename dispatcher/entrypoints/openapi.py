"""The OpenAPI 3.1 document of the HTTP API, generated from the same pydantic models the API serves."""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from dispatcher import __version__
from dispatcher.domain.jobs import Status
from dispatcher.domain.spec import JobSpec
from dispatcher.entrypoints.api_models import Accepted, Health, JobList, JobOut, OutputList, Problem

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _json(description: str, model: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


JOB_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
UNAUTHORIZED = {"description": "No valid function key", "content": {}}


@functools.cache
def document() -> dict[str, Any]:
    """The whole document; function keys go in the ``x-functions-key`` header or the ``code`` query parameter."""
    _, definitions = models_json_schema(
        [(m, "serialization") for m in (JobOut, JobList, Accepted, OutputList, Health, Problem)]
        + [(JobSpec, "validation")],
        by_alias=True,
        ref_template=REF,
    )
    schemas = definitions.get("$defs", {})
    not_found = _problem("No such job")
    spec_body = {
        "required": True,
        "content": {
            "application/json": {"schema": _ref("JobSpec")},
            "application/yaml": {"schema": {"type": "string", "description": "A job spec in YAML."}},
        },
    }
    paths: dict[str, Any] = {
        "/jobs": {
            "post": {
                "operationId": "submitJob",
                "summary": "Submit a job (JSON or YAML); idempotent by id",
                "requestBody": spec_body,
                "responses": {
                    "202": {
                        **_json("Accepted", "Accepted"),
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    "400": _problem("Invalid spec or policy violation, with every field error"),
                    "401": UNAUTHORIZED,
                    "409": _problem("The id is in use with a different spec"),
                    "413": _problem("The spec is too large"),
                    "415": _problem("Unsupported content type"),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "List jobs, filtered by status, label and time, a page at a time",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"enum": [s.value for s in Status]}},
                    {"name": "label", "in": "query", "schema": {"type": "string"}, "description": "k=v[,k=v]"},
                    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {"name": "continuation", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json("A page of jobs", "JobList"),
                    "400": _problem("Invalid query"),
                    "401": UNAUTHORIZED,
                },
            },
        },
        "/jobs/{id}": {
            "parameters": [JOB_ID],
            "get": {
                "operationId": "getJob",
                "summary": "A job: status, attempts, cost, log tails, outputs",
                "responses": {"200": _json("The job", "JobOut"), "401": UNAUTHORIZED, "404": not_found},
            },
            "delete": {
                "operationId": "cancelJob",
                "summary": "Cancel a job; repeats are safe",
                "responses": {
                    "202": _json("Cancelled or being cancelled", "JobOut"),
                    "401": UNAUTHORIZED,
                    "404": not_found,
                },
            },
        },
        "/jobs/{id}/logs": {
            "parameters": [JOB_ID],
            "get": {
                "operationId": "getJobLogs",
                "summary": "Logs: live while the job runs, harvested afterwards",
                "parameters": [
                    {"name": "container", "in": "query", "schema": {"type": "string"}},
                    {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {
                    "200": {"description": "Log text", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "400": _problem("Invalid query"),
                    "401": UNAUTHORIZED,
                    "404": not_found,
                },
            },
        },
        "/jobs/{id}/outputs": {
            "parameters": [JOB_ID],
            "get": {
                "operationId": "listJobOutputs",
                "summary": "The files in the job's workspace",
                "responses": {"200": _json("Files", "OutputList"), "401": UNAUTHORIZED, "404": not_found},
            },
        },
        "/jobs/{id}/outputs/{path}": {
            "parameters": [JOB_ID, {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {
                "operationId": "getJobOutput",
                "summary": "One file of the job's workspace",
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "400": _problem("The path leaves the workspace"),
                    "401": UNAUTHORIZED,
                    "404": _problem("No such job or file"),
                },
            },
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Store, Service Bus and ARM, each checked",
                "responses": {
                    "200": _json("Healthy", "Health"),
                    "401": UNAUTHORIZED,
                    "503": _json("Degraded", "Health"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ACI job dispatcher",
            "version": __version__,
            "description": "Run containers as jobs on Azure Container Instances.",
        },
        "servers": [{"url": "/api"}],
        "security": [{"functionKey": []}, {"functionKeyQuery": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }

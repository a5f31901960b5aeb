"""The OpenAPI 3.1 document of the HTTP API, generated from the same pydantic models the API serves."""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from dispatcher import __version__
from dispatcher.domain.jobs import Status
from dispatcher.domain.logs import MAX_CURSOR_CHARS
from dispatcher.domain.policy import Policy
from dispatcher.domain.rerun import Overrides
from dispatcher.domain.schedules import SCHEDULE_NAME_MAX
from dispatcher.domain.spec import JobSpec
from dispatcher.domain.tasks import TaskStatus
from dispatcher.entrypoints.api_models import (
    Accepted,
    DryRun,
    Health,
    JobList,
    JobOut,
    LogPageOut,
    Me,
    OutputList,
    PoolsOut,
    Problem,
    ScheduleDeleted,
    ScheduleList,
    ScheduleOut,
    TaskList,
    TaskOut,
    UsageReport,
)

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _json(description: str, model: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


JOB_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
SERVED = (
    JobOut,
    JobList,
    Accepted,
    OutputList,
    Health,
    Problem,
    ScheduleOut,
    ScheduleList,
    ScheduleDeleted,
    TaskList,
    TaskOut,
    DryRun,
    LogPageOut,
    Policy,
    Me,
    PoolsOut,
    UsageReport,
)
SCHEDULE_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": SCHEDULE_NAME_MAX},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
TASK_INDEX = {"name": "index", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
UNAUTHORIZED = {"description": "No valid bearer token (or function key, on the keyed routes)", "content": {}}
USAGE_BY = "^(team|label:[A-Za-z0-9._-]{1,63})$"
FORBIDDEN = {"description": "The caller lacks the app role this needs", "content": {}}


@functools.cache
def document() -> dict[str, Any]:
    """The whole document: an Entra ID bearer token on ``/api``, or a function key on ``/api/keyed`` in the
    ``x-functions-key`` header or the ``code`` query parameter."""
    _, definitions = models_json_schema(
        [(m, "serialization") for m in SERVED] + [(JobSpec, "validation"), (Overrides, "validation")],
        by_alias=True,
        ref_template=REF,
    )
    schemas = definitions.get("$defs", {})
    not_found = _problem("No such job")
    no_schedule = _problem("No such schedule")
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
                "summary": "Submit a job (JSON or YAML); idempotent by id. ?dryRun=true validates only",
                "parameters": [{"name": "dryRun", "in": "query", "schema": {"enum": ["true", "false"]}}],
                "requestBody": spec_body,
                "responses": {
                    "200": _json("With dryRun=true: valid, and nothing recorded", "DryRun"),
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
                    {"name": "order", "in": "query", "schema": {"enum": ["newest", "oldest"]}},
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
                "summary": "Logs: live while the job runs, harvested afterwards; with ?after=, a page a follower walks",
                "parameters": [
                    {"name": "container", "in": "query", "schema": {"type": "string"}},
                    {"name": "attempt", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "after",
                        "in": "query",
                        "description": "A cursor (the `next` of an earlier page), or empty to begin. The answer is "
                        "then a LogPageOut: the lines after it, each line once, the live log handing on to the "
                        "harvested one and an ended attempt to the next.",
                        "schema": {"type": "string", "maxLength": MAX_CURSOR_CHARS},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "Log text; with ?after=, a page of lines and the cursor to pass next",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/json": {"schema": _ref("LogPageOut")},
                        },
                    },
                    "400": _problem("Invalid query, or a cursor this API did not give"),
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
        "/jobs/{id}/rerun": {
            "post": {
                "operationId": "rerunJob",
                "summary": "A new job from this one's spec, with overrides; one job per Idempotency-Key",
                "parameters": [JOB_ID, IDEMPOTENCY_KEY],
                "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("Overrides")}}},
                "responses": {
                    "202": {**_json("The new job", "JobOut"), "headers": {"Location": {"schema": {"type": "string"}}}},
                    "400": _problem("Invalid overrides, naming each field"),
                    "401": UNAUTHORIZED,
                    "404": not_found,
                    "409": _problem("The key made a re-run with other overrides"),
                    "413": _problem("The body is too large"),
                    "415": _problem("Unsupported content type"),
                },
            }
        },
        "/schedules": {
            "get": {
                "operationId": "listSchedules",
                "summary": "Every schedule with its next due time",
                "responses": {"200": _json("Schedules", "ScheduleList"), "401": UNAUTHORIZED},
            }
        },
        "/schedules/{name}": {
            "put": {
                "operationId": "putSchedule",
                "summary": "Create or replace a schedule ({schedule, job}), validated like a job",
                "parameters": [SCHEDULE_NAME],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "application/yaml": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "200": _json("Replaced", "ScheduleOut"),
                    "201": _json("Created", "ScheduleOut"),
                    "400": _problem("Invalid schedule, naming each field"),
                    "401": UNAUTHORIZED,
                    "413": _problem("The document is too large"),
                    "415": _problem("Unsupported content type"),
                },
            },
            "get": {
                "operationId": "getSchedule",
                "summary": "A schedule: next due times, active jobs and history",
                "parameters": [SCHEDULE_NAME],
                "responses": {"200": _json("The schedule", "ScheduleOut"), "401": UNAUTHORIZED, "404": no_schedule},
            },
            "delete": {
                "operationId": "deleteSchedule",
                "summary": "Delete a schedule; active jobs go on unless cancelActive=true",
                "parameters": [
                    SCHEDULE_NAME,
                    {"name": "cancelActive", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
                ],
                "responses": {
                    "200": _json("Deleted", "ScheduleDeleted"),
                    "400": _problem("Invalid cancelActive"),
                    "401": UNAUTHORIZED,
                    "404": no_schedule,
                },
            },
        },
        "/schedules/{name}/trigger": {
            "post": {
                "operationId": "triggerSchedule",
                "summary": "Run the schedule's job now; one job per Idempotency-Key",
                "parameters": [SCHEDULE_NAME, IDEMPOTENCY_KEY],
                "responses": {
                    "202": {**_json("Accepted", "Accepted"), "headers": {"Location": {"schema": {"type": "string"}}}},
                    "400": _problem("Invalid Idempotency-Key"),
                    "401": UNAUTHORIZED,
                    "404": no_schedule,
                },
            }
        },
        **{
            f"/schedules/{{name}}/{action}": {
                "post": {
                    "operationId": f"{action}Schedule",
                    "summary": f"{action.capitalize()} the schedule",
                    "parameters": [SCHEDULE_NAME],
                    "responses": {"200": _json("The schedule", "ScheduleOut"), "401": UNAUTHORIZED, "404": no_schedule},
                }
            }
            for action in ("suspend", "resume")
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
        "/jobs/{id}/tasks": {
            "parameters": [JOB_ID],
            "get": {
                "operationId": "listTasks",
                "summary": "An array job's tasks in index order, filtered by status, a page at a time",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"enum": [s.value for s in TaskStatus]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "continuation", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json("A page of tasks", "TaskList"),
                    "400": _problem("Invalid query"),
                    "401": UNAUTHORIZED,
                    "404": _problem("No such job, or not an array job"),
                },
            },
        },
        "/jobs/{id}/tasks/{index}": {
            "parameters": [JOB_ID, TASK_INDEX],
            "get": {
                "operationId": "getTask",
                "summary": "One task of an array job",
                "responses": {
                    "200": _json("The task", "TaskOut"),
                    "401": UNAUTHORIZED,
                    "404": _problem("No such task"),
                },
            },
        },
        "/jobs/{id}/tasks/{index}/logs": {
            "parameters": [JOB_ID, TASK_INDEX],
            "get": {
                "operationId": "getTaskLogs",
                "summary": "The log of a task's latest run, or of run N: live while it runs, harvested afterwards",
                "parameters": [
                    {"name": "run", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {
                    "200": {"description": "Log text", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "400": _problem("Invalid query"),
                    "401": UNAUTHORIZED,
                    "404": _problem("No such task, or no such run yet"),
                },
            },
        },
        "/policy": {
            "get": {
                "operationId": "getPolicy",
                "summary": "The operator's policy, for checking specs before submitting them",
                "responses": {"200": _json("The policy", "Policy"), "401": UNAUTHORIZED},
            }
        },
        "/usage": {
            "get": {
                "operationId": "usage",
                "summary": "Jobs, vCPU-seconds, GB-seconds and estimated cost per team or label value, by UTC days",
                "parameters": [
                    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {
                        "name": "by",
                        "in": "query",
                        "schema": {"type": "string", "pattern": "^(team|label:[A-Za-z0-9._-]{1,63})$"},
                    },
                ],
                "responses": {
                    "200": _json("Usage", "UsageReport"),
                    "400": _problem("An invalid parameter"),
                    "401": UNAUTHORIZED,
                },
            }
        },
        "/pools": {
            "get": {
                "operationId": "pools",
                "summary": "Each pool's groups and cores against its quota, creates and deletes per minute, last hour",
                "responses": {"200": _json("Pools", "PoolsOut"), "401": UNAUTHORIZED},
            }
        },
        "/me": {
            "get": {
                "operationId": "whoami",
                "summary": "The caller as the API authenticated it: id, name, roles and teams",
                "responses": {"200": _json("The caller", "Me"), "401": UNAUTHORIZED},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": [],
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
    }
    for path, item in paths.items():
        for method, operation in item.items():
            if path != "/openapi.json" and method != "parameters":
                operation["responses"].setdefault("403", FORBIDDEN)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ACI job dispatcher",
            "version": __version__,
            "description": "Run containers as jobs on Azure Container Instances.",
        },
        "servers": [
            {"url": "/api", "description": "Entra ID bearer tokens"},
            {"url": "/api/keyed", "description": "Function keys, where the operator allows them"},
        ],
        "security": [{"entraId": []}, {"functionKey": []}, {"functionKeyQuery": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "entraId": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }

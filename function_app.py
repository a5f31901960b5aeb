"""The Functions app: triggers only translate transport objects and delegate to ``dispatcher``.

The host imports this module just to index it, so nothing heavy happens at import time: clients are
built lazily by the composition root (``dispatcher.bootstrap``) on first use.
"""

import json
import logging

import azure.functions as func

from dispatcher.bootstrap import services
from dispatcher.domain.naming import JOB_ID_PROPERTY
from dispatcher.entrypoints import http as api
from dispatcher.entrypoints import http_runs as runs
from dispatcher.entrypoints import http_tasks as tasks
from dispatcher.entrypoints.openapi import document
from dispatcher.service.submit import accept_message
from dispatcher.service.telemetry import TRACEPARENT
from dispatcher.service.tick import run_tick

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("dispatcher")


def _request(req: func.HttpRequest) -> api.Request:
    return api.Request(
        body=req.get_body(), query=dict(req.params), headers={k.lower(): v for k, v in req.headers.items()}
    )


def _reply(response: api.Response) -> func.HttpResponse:
    headers = {**response.headers, "Content-Type": response.content_type}
    return func.HttpResponse(body=response.body, status_code=response.status, headers=headers)


@app.route(route="jobs", methods=["POST"])
def submit_job(req: func.HttpRequest) -> func.HttpResponse:
    """Validate a job spec now, record and enqueue it; 202 with its Location."""
    return _reply(api.safely(lambda: api.submit(services(), _request(req))))


@app.route(route="jobs", methods=["GET"])
def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    """Jobs by status, label and time, a page at a time."""
    return _reply(api.safely(lambda: api.list_jobs(services(), _request(req))))


@app.route(route="jobs/{id}", methods=["GET"])
def get_job(req: func.HttpRequest) -> func.HttpResponse:
    """One job: status, attempts, cost, log tails, outputs and links."""
    return _reply(api.safely(lambda: api.get_job(services(), req.route_params["id"])))


@app.route(route="jobs/{id}", methods=["DELETE"])
def cancel_job(req: func.HttpRequest) -> func.HttpResponse:
    """Cancel a job; repeats are safe."""
    return _reply(api.safely(lambda: api.cancel(services(), req.route_params["id"])))


@app.route(route="jobs/{id}/logs", methods=["GET"])
def job_logs(req: func.HttpRequest) -> func.HttpResponse:
    """Logs, live while the job runs and harvested afterwards."""
    return _reply(api.safely(lambda: api.logs(services(), req.route_params["id"], _request(req))))


@app.route(route="jobs/{id}/outputs", methods=["GET"])
def job_outputs(req: func.HttpRequest) -> func.HttpResponse:
    """One folder of a job's workspace, a page at a time."""
    return _reply(api.safely(lambda: api.outputs(services(), req.route_params["id"], _request(req))))


@app.route(route="jobs/{id}/outputs/{*path}", methods=["GET"])
def job_output_file(req: func.HttpRequest) -> func.HttpResponse:
    """One file of a job's workspace."""
    params = req.route_params
    return _reply(api.safely(lambda: api.output_file(services(), params["id"], params.get("path", ""))))


@app.route(route="jobs/{id}/tasks", methods=["GET"])
def list_tasks(req: func.HttpRequest) -> func.HttpResponse:
    """An array job's tasks, filtered by status, a page at a time."""
    return _reply(api.safely(lambda: tasks.list_tasks(services(), req.route_params["id"], _request(req))))


@app.route(route="jobs/{id}/tasks/{index}", methods=["GET"])
def get_task(req: func.HttpRequest) -> func.HttpResponse:
    """One task of an array job."""
    params = req.route_params
    return _reply(api.safely(lambda: tasks.get_task(services(), params["id"], params["index"])))


@app.route(route="jobs/{id}/tasks/{index}/logs", methods=["GET"])
def task_logs(req: func.HttpRequest) -> func.HttpResponse:
    """The log of one task's latest run, or of run N."""
    params = req.route_params
    return _reply(api.safely(lambda: tasks.task_logs(services(), params["id"], params["index"], _request(req))))


@app.route(route="jobs/{id}/rerun", methods=["POST"])
def rerun_job(req: func.HttpRequest) -> func.HttpResponse:
    """A new job from this one's spec, with overrides; an Idempotency-Key makes a retry one job."""
    return _reply(api.safely(lambda: runs.rerun(services(), req.route_params["id"], _request(req))))


@app.route(route="schedules", methods=["GET"])
def list_schedules(req: func.HttpRequest) -> func.HttpResponse:
    """Every schedule with its next due time."""
    return _reply(api.safely(lambda: runs.list_schedules(services())))


@app.route(route="schedules/{name}", methods=["PUT"])
def put_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """Create or replace a schedule, validated like a job."""
    return _reply(api.safely(lambda: runs.put_schedule(services(), req.route_params["name"], _request(req))))


@app.route(route="schedules/{name}", methods=["GET"])
def get_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """A schedule: next due times, active jobs and history."""
    return _reply(api.safely(lambda: runs.get_schedule(services(), req.route_params["name"])))


@app.route(route="schedules/{name}", methods=["DELETE"])
def delete_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """Delete a schedule; its active jobs go on unless ?cancelActive=true."""
    return _reply(api.safely(lambda: runs.delete_schedule(services(), req.route_params["name"], _request(req))))


@app.route(route="schedules/{name}/{action}", methods=["POST"])
def schedule_action(req: func.HttpRequest) -> func.HttpResponse:
    """trigger, suspend or resume a schedule."""
    params = req.route_params
    return _reply(api.safely(lambda: runs.schedule_action(services(), params["name"], params["action"], _request(req))))


@app.route(route="policy", methods=["GET"])
def get_policy(req: func.HttpRequest) -> func.HttpResponse:
    """The operator's policy, for clients that check specs before submitting them."""
    return _reply(api.safely(lambda: api.get_policy(services())))


@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    """The store, Service Bus and ARM, each checked."""
    return _reply(api.safely(lambda: api.health(services())))


@app.route(route="openapi.json", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI 3.1 document, generated from the API's models."""
    return func.HttpResponse(json.dumps(document()), mimetype="application/json")


@app.function_name("intake")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%DISPATCHER_JOBS_QUEUE%", connection="ServiceBusConnection")
def intake(msg: func.ServiceBusMessage) -> None:
    """A submitted job: record it durably, then try to launch it. Raises only before the record is durable."""
    properties = msg.application_properties or {}
    job_id = properties.get(JOB_ID_PROPERTY)
    parent = properties.get(TRACEPARENT) or properties.get("Diagnostic-Id")  # the sender's trace
    result = accept_message(
        services(),
        msg.get_body(),
        msg.message_id,
        msg.content_type,
        job_id if isinstance(job_id, str) else None,
        traceparent=parent if isinstance(parent, str) else None,
    )
    launch = result.launch.outcome.value if result.launch else "-"
    log.info("intake %s: %s (%s, launch=%s)", result.job_id, result.status, result.outcome, launch)


@app.function_name("reconcile")
@app.timer_trigger(arg_name="timer", schedule="%DISPATCHER_RECONCILE_SCHEDULE%", run_on_startup=False)
def reconcile(timer: func.TimerRequest) -> None:
    """Detect finished, stuck and timed-out groups, clean up, retry, and launch queued jobs."""
    report = run_tick(services())
    log.info(
        "reconcile: past_due=%s actions=%s launched=%d published=%d reads=%d failures=%d out_of_budget=%s",
        timer.past_due,
        report.actions,
        report.launched,
        report.published,
        report.reads,
        report.failures,
        report.out_of_budget,
    )

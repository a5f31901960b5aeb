"""The Functions app: triggers only translate transport objects and delegate to ``dispatcher``.

The host imports this module just to index it, so nothing heavy happens at import time: clients are
built lazily by the composition root (``dispatcher.bootstrap``) on first use.
"""

import json
import logging

import azure.functions as func

from dispatcher.bootstrap import function_keys_enabled, services, settings
from dispatcher.domain.naming import JOB_ID_PROPERTY
from dispatcher.entrypoints import http as api
from dispatcher.entrypoints import http_ui as ui
from dispatcher.entrypoints import routes
from dispatcher.entrypoints.openapi import document
from dispatcher.service.submit import accept_message
from dispatcher.service.telemetry import TRACEPARENT
from dispatcher.service.tick import run_tick

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
log = logging.getLogger("dispatcher")


def _request(req: func.HttpRequest, keyed: bool) -> api.Request:
    return api.Request(
        body=req.get_body(),
        query=dict(req.params),
        headers={k.lower(): v for k, v in req.headers.items()},
        route=dict(req.route_params),
        keyed=keyed,
    )


def _reply(response: api.Response) -> func.HttpResponse:
    headers = {**response.headers, "Content-Type": response.content_type}
    return func.HttpResponse(body=response.body, status_code=response.status, headers=headers)


def _register(route: routes.Route, keyed: bool) -> None:
    """One HTTP function for ``route``: anonymous to the host (the app authenticates the caller), or under
    ``keyed/`` at the function level (the host checks the function key)."""

    def function(req: func.HttpRequest) -> func.HttpResponse:
        return _reply(routes.serve(services, route, _request(req, keyed)))

    function.__name__ = f"{route.name}_keyed" if keyed else route.name
    function.__doc__ = route.summary
    level = func.AuthLevel.FUNCTION if keyed else func.AuthLevel.ANONYMOUS
    template = routes.KEYED_PREFIX + route.template if keyed else route.template
    app.function_name(function.__name__)(app.route(route=template, methods=[route.method], auth_level=level)(function))


for _route in routes.ROUTES:
    _register(_route, keyed=False)
    if function_keys_enabled():
        _register(_route, keyed=True)


@app.route(route="ui/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    """The dashboard's static files and its sign-in configuration: no data, no secret; its pages call the API with
    the user's credentials."""
    return _reply(ui.asset(req.route_params.get("path", ""), settings()))


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI 3.1 document, generated from the API's models; it holds no data."""
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
    """Detect finished, stuck and timed-out groups, clean up, retry, and launch queued jobs: when idle, on this
    timer; while work is active, on the wake-ups each run schedules (below)."""
    _reconcile(f"timer past_due={timer.past_due}")


@app.function_name("wake")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%DISPATCHER_WAKE_QUEUE%", connection="ServiceBusConnection")
def wake(msg: func.ServiceBusMessage) -> None:
    """A wake-up the reconciler or intake scheduled: the same run as the timer's, sooner."""
    _reconcile(f"wake {msg.message_id}")


def _reconcile(trigger: str) -> None:
    report = run_tick(services())
    log.info(
        "reconcile (%s): actions=%s launched=%d published=%d reads=%d failures=%d out_of_budget=%s",
        trigger,
        report.actions,
        report.launched,
        report.published,
        report.reads,
        report.failures,
        report.out_of_budget,
    )

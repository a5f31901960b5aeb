"""A sample Functions app for the local runner's tests: every function records what it received in RECORDED."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

RECORDED: list[dict[str, Any]] = []
_lock = threading.Lock()
_running_ticks = 0
_running_jobs = 0


def record(kind: str, **fields: Any) -> None:
    """Append one observation; tests read ``module.RECORDED``."""
    with _lock:
        RECORDED.append({"kind": kind, **fields})


def _request_view(req: func.HttpRequest) -> dict[str, Any]:
    return {
        "method": req.method,
        "url": req.url,
        "headers": dict(req.headers),
        "params": dict(req.params),
        "route_params": dict(req.route_params),
        "body": req.get_body().decode("utf-8", errors="replace"),
    }


@app.route(route="echo/{id?}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    view = _request_view(req) | {"function": context.function_name}
    record("http", **view)
    status = int(req.params.get("status", "200"))
    return func.HttpResponse(
        json.dumps(view), status_code=status, mimetype="application/json", headers={"X-Echo": "yes"}
    )


@app.route(route="jobs/{id:int}", methods=["GET"])
def get_job(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"job {req.route_params['id']}")


@app.route(route="jobs/{name}", methods=["GET"])
def get_job_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"named {req.route_params['name']}")


@app.route(route="files/{*path}", auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", ""), headers={"Set-Cookie": "a=1"})


@app.route(route="secret", auth_level=func.AuthLevel.ADMIN)
def secret(req: func.HttpRequest) -> str:
    return "admins only"


@app.route(route="raw", auth_level=func.AuthLevel.ANONYMOUS)
def raw(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(bytes(range(256)), status_code=201, mimetype="application/octet-stream")


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("this function always fails")


@app.route(route="async/{name}", auth_level=func.AuthLevel.ANONYMOUS)
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse(f"hello {req.route_params['name']}", mimetype="text/html", charset="latin-1")


@app.route(route="settings/{name}", auth_level=func.AuthLevel.ANONYMOUS)
def setting(req: func.HttpRequest) -> func.HttpResponse:
    value = os.environ.get(req.route_params["name"])
    if value is None:
        return func.HttpResponse(status_code=404)
    return func.HttpResponse(value)


@app.service_bus_queue_trigger(arg_name="msg", connection="ServiceBusConnection", queue_name="%JOBS_QUEUE%")
def on_job(msg: func.ServiceBusMessage) -> None:
    global _running_jobs  # noqa: PLW0603 - the sample app counts concurrent invocations on purpose
    with _lock:
        _running_jobs += 1
        concurrent = _running_jobs
    try:
        _handle_job(msg, concurrent)
    finally:
        with _lock:
            _running_jobs -= 1


def _handle_job(msg: func.ServiceBusMessage, concurrent: int) -> None:
    body = msg.get_body().decode("utf-8")
    record(
        "servicebus",
        body=body,
        message_id=msg.message_id,
        delivery_count=msg.delivery_count,
        enqueued_time_utc=msg.enqueued_time_utc,
        content_type=msg.content_type,
        correlation_id=msg.correlation_id,
        application_properties=msg.application_properties,
        user_properties=msg.user_properties,
        lock_token=msg.lock_token,
        sequence_number=msg.sequence_number,
        locked_until=msg.locked_until,
        subject=msg.subject,
        label=msg.label,
        reply_to=msg.reply_to,
        to=msg.to,
        time_to_live=msg.time_to_live,
        expires_at_utc=msg.expires_at_utc,
        metadata=msg.metadata,
        concurrent=concurrent,
    )
    if body.startswith("sleep:"):
        time.sleep(float(body.removeprefix("sleep:")))
    if body.startswith("fail"):
        raise ValueError(f"refusing {body}")


@app.service_bus_topic_trigger(
    arg_name="event", connection="ServiceBusConnection", topic_name="%EVENTS_TOPIC%", subscription_name="all"
)
async def on_event(event: func.ServiceBusMessage) -> None:
    record("event", body=event.get_body().decode("utf-8"), subject=event.subject)


@app.service_bus_queue_trigger(
    arg_name="batch", connection="ServiceBusConnection", queue_name="%BATCH_QUEUE%", cardinality="many"
)
def on_batch(batch: list[func.ServiceBusMessage]) -> None:
    record("batch", bodies=[message.get_body().decode("utf-8") for message in batch])


@app.timer_trigger(arg_name="timer", schedule="%HEARTBEAT_SCHEDULE%", run_on_startup=True)
def heartbeat(timer: func.TimerRequest) -> None:
    status = getattr(timer, "schedule_status", {})
    record("heartbeat", past_due=timer.past_due, at=time.time(), schedule_status=status)


@app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *")
async def slow_tick(timer: func.TimerRequest) -> None:
    global _running_ticks  # noqa: PLW0603 - the sample app counts overlapping runs on purpose
    with _lock:
        _running_ticks += 1
        concurrent = _running_ticks
    record("slow_tick", start=time.time(), concurrent=concurrent, past_due=timer.past_due)
    await asyncio.sleep(float(os.environ.get("SLOW_TICK_SECONDS", "1.5")))
    with _lock:
        _running_ticks -= 1

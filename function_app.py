"""The Functions app: triggers only translate transport objects and delegate to ``dispatcher``.

The host imports this module just to index it, so nothing heavy happens at import time: clients are
built lazily by the composition root (``dispatcher.bootstrap``) on first use.
"""

import logging

import azure.functions as func

from dispatcher.bootstrap import services
from dispatcher.intake import accept
from dispatcher.tick import run_tick

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("dispatcher")


@app.function_name("intake")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%DISPATCHER_JOBS_QUEUE%", connection="ServiceBusConnection")
def intake(msg: func.ServiceBusMessage) -> None:
    """A submitted job: record it durably, then try to launch it. Raises only before the record is durable."""
    result = accept(services(), msg.get_body(), msg.message_id)
    launch = result.launch.outcome.value if result.launch else "-"
    log.info("intake %s: %s (duplicate=%s, launch=%s)", result.job_id, result.status, result.duplicate, launch)


@app.function_name("reconcile")
@app.timer_trigger(arg_name="timer", schedule="%DISPATCHER_RECONCILE_SCHEDULE%", run_on_startup=False)
def reconcile(timer: func.TimerRequest) -> None:
    """Detect finished, stuck and timed-out groups, clean up, retry, and launch queued jobs."""
    report = run_tick(services())
    log.info(
        "reconcile: past_due=%s actions=%s launched=%d reads=%d errors=%d out_of_budget=%s",
        timer.past_due,
        report.actions,
        report.launched,
        report.reads,
        len(report.errors),
        report.out_of_budget,
    )

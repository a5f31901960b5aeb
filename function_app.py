"""The Functions app: triggers only translate transport objects and delegate to ``dispatcher``.

The host imports this module just to index it, so nothing heavy happens at import time: clients are
built lazily by the composition root (``dispatcher.bootstrap``) on first use.
"""

import logging

import azure.functions as func

from dispatcher.bootstrap import services
from dispatcher.intake import accept

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("dispatcher")


@app.function_name("intake")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="%DISPATCHER_JOBS_QUEUE%", connection="ServiceBusConnection")
def intake(msg: func.ServiceBusMessage) -> None:
    """A submitted job: record it durably, then try to launch it. Raises only before the record is durable."""
    result = accept(services(), msg.get_body(), msg.message_id)
    launch = result.launch.outcome.value if result.launch else "-"
    log.info("intake %s: %s (duplicate=%s, launch=%s)", result.job_id, result.status, result.duplicate, launch)

"""What the CLI's command groups share: exit codes, failing with a message, and where Service Bus is."""

from __future__ import annotations

import os
from typing import Annotated, NoReturn

import typer
from rich.markup import escape

from dispatcher.entrypoints.cli_views import err

OK, JOB_NOT_SUCCEEDED, USAGE, API_ERROR, NOT_FOUND = 0, 1, 2, 3, 4
SERVICEBUS_ENV = ("DISPATCHER_SERVICEBUS_CONNECTION_STRING", "ServiceBusConnection")
QUEUE_ENV = "DISPATCHER_JOBS_QUEUE"
DEFAULT_QUEUE = "jobs"

ServiceBusConnection = Annotated[
    str | None,
    typer.Option(
        "--servicebus-connection",
        help="The Service Bus connection string. Or $DISPATCHER_SERVICEBUS_CONNECTION_STRING or $ServiceBusConnection.",
        show_default=False,
    ),
]
Queue = Annotated[str | None, typer.Option("--queue", help="The jobs queue (or $DISPATCHER_JOBS_QUEUE).")]


def fail(code: int, message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def servicebus_connection(given: str | None) -> str:
    """The connection string given, or from the environment; exits 2 when there is none."""
    connection = given or next((os.environ[n] for n in SERVICEBUS_ENV if os.environ.get(n)), None)
    if not connection:
        fail(USAGE, "no Service Bus connection: pass --servicebus-connection or set $" + SERVICEBUS_ENV[0])
    return connection


def jobs_queue(given: str | None) -> str:
    return given or os.environ.get(QUEUE_ENV) or DEFAULT_QUEUE

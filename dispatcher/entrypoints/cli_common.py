"""What the CLI's command groups share: exit codes, failing with a message, and where Service Bus is."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
from pydantic import BaseModel
from rich.markup import escape

from dispatcher.domain.jobs import Status
from dispatcher.entrypoints.api_models import JobOut, Problem
from dispatcher.entrypoints.cli_views import err, print_job
from dispatcher.entrypoints.client import ApiError, ClientError, DispatcherClient, NotFound
from dispatcher.entrypoints.client_config import ClientConfig, ConfigurationError, resolve_config

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


# --- talking to the API ---

Url = Annotated[
    str | None,
    typer.Option("--url", help="The API base URL, such as https://APP.azurewebsites.net/api. Or $DISPATCHER_URL."),
]
Key = Annotated[str | None, typer.Option("--key", help="The function key. Or $DISPATCHER_KEY.", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON document instead of a summary.")]
Interval = Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls.")]


def print_problem(problem: Problem) -> None:
    line = f"{problem.status} {problem.title}" + (f": {problem.detail}" if problem.detail else "")
    err.print(f"error: {line}", markup=False)
    for item in problem.errors:
        err.print(f"    {item.loc or '(document)'}: {item.message}", markup=False)


def client_config(url: str | None, key: str | None) -> ClientConfig:
    """Where the API is, or exit 2 saying what is missing."""
    try:
        return resolve_config(url, key)
    except ConfigurationError as exc:
        fail(USAGE, str(exc))


@contextmanager
def api(url: str | None, key: str | None) -> Iterator[DispatcherClient]:
    """A client for the configured API; its failures become the CLI's exit codes."""
    config = client_config(url, key)
    client = DispatcherClient(config.url, config.key)
    try:
        yield client
    except NotFound as exc:
        print_problem(exc.problem)
        raise typer.Exit(NOT_FOUND) from None
    except ApiError as exc:
        print_problem(exc.problem)
        raise typer.Exit(API_ERROR) from None
    except ClientError as exc:
        fail(API_ERROR, str(exc))
    finally:
        client.close()


def print_json(model: BaseModel) -> None:
    print(model.model_dump_json(by_alias=True, indent=2))


def finish(job: JobOut, as_json: bool) -> None:
    """Print an awaited job and exit 0 if it Succeeded, 1 otherwise."""
    if as_json:
        print_json(job)
    else:
        print_job(job)
    if job.status is not Status.SUCCEEDED:
        raise typer.Exit(JOB_NOT_SUCCEEDED)

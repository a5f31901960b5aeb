"""What the CLI's command groups share: exit codes, failing with a message, and where Service Bus is."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
from pydantic import BaseModel
from rich.markup import escape

from dispatcher.cli_bootstrap import ServiceBusAccess
from dispatcher.domain.errors import CloudError, UnsafeConfiguration
from dispatcher.domain.jobs import Status
from dispatcher.entrypoints.api_models import JobOut, Problem
from dispatcher.entrypoints.cli_views import err, print_job
from dispatcher.entrypoints.client import ApiError, ClientError, DispatcherClient, NotFound
from dispatcher.entrypoints.client_auth import SignInFailed, token_source
from dispatcher.entrypoints.client_config import ClientConfig, ConfigurationError, config_setting, resolve_config

OK, JOB_NOT_SUCCEEDED, USAGE, API_ERROR, NOT_FOUND = 0, 1, 2, 3, 4
EXIT_CODES = (
    "Exit codes: 0 ok; 1 the awaited job did not succeed; 2 invalid input (a spec, an option); 3 the server or "
    "the network failed; 4 not found. With --json, errors are JSON on stdout too."
)
SERVICEBUS_ENV = ("DISPATCHER_SERVICEBUS_CONNECTION_STRING", "ServiceBusConnection")
NAMESPACE_ENV = ("DISPATCHER_SERVICEBUS_NAMESPACE", "ServiceBusConnection__fullyQualifiedNamespace")
QUEUE_ENV = "DISPATCHER_JOBS_QUEUE"
DEFAULT_QUEUE = "jobs"

ServiceBusConnection = Annotated[
    str | None,
    typer.Option(
        "--servicebus-connection",
        help="A Service Bus connection string (the local stack's). Or $DISPATCHER_SERVICEBUS_CONNECTION_STRING.",
        show_default=False,
    ),
]
ServiceBusNamespace = Annotated[
    str | None,
    typer.Option(
        "--servicebus-namespace",
        help="A deployed namespace, NAME.servicebus.windows.net, reached as you (azure-identity: az login, "
        "environment, managed identity). Or $DISPATCHER_SERVICEBUS_NAMESPACE.",
        show_default=False,
    ),
]
Queue = Annotated[str | None, typer.Option("--queue", help="The jobs queue (or $DISPATCHER_JOBS_QUEUE).")]


def fail(code: int, message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _from_env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def servicebus_access(connection: str | None, namespace: str | None) -> ServiceBusAccess:
    """Where Service Bus is: the option given, else the environment (a namespace before a connection string),
    else the configuration file's ``servicebus_namespace``; exits 2 when there is none."""
    if namespace or connection:
        return ServiceBusAccess(namespace=namespace) if namespace else ServiceBusAccess(connection_string=connection)
    if found := _from_env(NAMESPACE_ENV):
        return ServiceBusAccess(namespace=found)
    if found := _from_env(SERVICEBUS_ENV):
        return ServiceBusAccess(connection_string=found)
    if found := _from_config("servicebus_namespace"):
        return ServiceBusAccess(namespace=found)
    fail(
        USAGE,
        "no Service Bus: pass --servicebus-namespace (a deployment's) or --servicebus-connection (the local "
        f"stack's), or set ${NAMESPACE_ENV[0]} or ${SERVICEBUS_ENV[0]}",
    )


@contextmanager
def servicebus_failures() -> Iterator[None]:
    """A Service Bus call's failure exits 3 when a later try may succeed, else 2 (a bad connection string, no
    credential, a namespace outside Azure)."""
    try:
        yield
    except CloudError as exc:
        fail(API_ERROR if exc.transient else USAGE, str(exc))
    except UnsafeConfiguration as exc:
        fail(USAGE, str(exc))


def _from_config(name: str) -> str | None:
    try:
        return config_setting(name)
    except ConfigurationError as exc:
        fail(USAGE, str(exc))


def jobs_queue(given: str | None) -> str:
    """The jobs queue: the option, ``$DISPATCHER_JOBS_QUEUE``, the configuration file's ``jobs_queue``, or ``jobs``."""
    return given or os.environ.get(QUEUE_ENV) or _from_config("jobs_queue") or DEFAULT_QUEUE


# --- talking to the API ---

Url = Annotated[
    str | None,
    typer.Option("--url", help="The API base URL, such as https://APP.azurewebsites.net/api. Or $DISPATCHER_URL."),
]
Key = Annotated[str | None, typer.Option("--key", help="The function key. Or $DISPATCHER_KEY.", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON document instead of a summary.", metavar="")]
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


KEY_HINT = (
    'the function key was refused: pass --key, set $DISPATCHER_KEY, or put key = "..." in the config file '
    "(az functionapp keys list -g GROUP -n APP gives the default key)"
)


def _hint(problem: Problem, url: str) -> str | None:
    """Where to look when the answer says the URL or the key is wrong."""
    if problem.status == 401:
        return KEY_HINT
    if problem.status == 404 and not url.rstrip("/").endswith("/api") and problem.title != "Job not found":
        return (
            f"{url} answered 404: the URL is the API's root, ending in /api (such as https://APP.azurewebsites.net/api)"
        )
    return None


def _report(problem: Problem, url: str, as_json: bool) -> None:
    hint = _hint(problem, url)
    if as_json:
        print(problem.model_dump_json(by_alias=True, exclude_none=True))
    else:
        print_problem(problem)
    if hint:
        err.print(f"hint: {hint}", markup=False, highlight=False)


@contextmanager
def api(url: str | None, key: str | None, as_json: bool = False) -> Iterator[DispatcherClient]:
    """A client for the configured API; its failures become the CLI's exit codes (and, with ``as_json``, a JSON
    problem on stdout)."""
    config = client_config(url, key)
    token = token_source(config.sign_in) if config.sign_in is not None else None
    client = DispatcherClient(config.url, config.key, token=token, team=config.team)
    try:
        yield client
    except NotFound as exc:
        _report(exc.problem, config.url, as_json)
        raise typer.Exit(NOT_FOUND) from None
    except ApiError as exc:
        _report(exc.problem, config.url, as_json)
        raise typer.Exit(API_ERROR) from None
    except SignInFailed as exc:
        fail(API_ERROR, str(exc))
    except ClientError as exc:
        if as_json:
            print(json.dumps({"title": "API unreachable", "detail": str(exc)}))
        fail(API_ERROR, str(exc))
    finally:
        client.close()


RELATIVE = re.compile(r"^(\d{1,6})([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def moment(text: str | None, option: str) -> str | None:
    """A ``--since``/``--until`` value as an ISO 8601 UTC time: a relative time (``90m``, ``1h``, ``2d``: that long
    ago) or an ISO 8601 time with its zone; a time without a zone is refused rather than guessed."""
    if text is None:
        return None
    relative = RELATIVE.match(text.strip())
    if relative:
        ago = dt.timedelta(**{UNITS[relative.group(2)]: int(relative.group(1))})
        return (dt.datetime.now(dt.UTC) - ago).isoformat(timespec="seconds")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            "give a relative time (30s, 15m, 1h, 2d) or an ISO 8601 time", param_hint=option
        ) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(
            f"{text!r} has no time zone: add one (Z, +01:00) or give a relative time", param_hint=option
        )
    return parsed.astimezone(dt.UTC).isoformat(timespec="seconds")


def pairs(given: list[str], option: str) -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options as a mapping; exit 2 naming the option for one without ``=``."""
    found = {}
    for pair in given:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        found[name] = value
    return found


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

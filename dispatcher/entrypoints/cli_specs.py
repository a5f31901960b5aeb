"""``dispatcher validate``, ``schema`` and ``render``: specs checked and previewed before they are submitted, against
the configured server's policy (``GET /api/policy``) when there is one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dispatcher.cli_bootstrap import render_group
from dispatcher.domain.document import json_schema, parse_job
from dispatcher.domain.errors import JobError, PolicyViolation
from dispatcher.domain.policy import apply_policy, settings_of
from dispatcher.domain.spec import JobSpec
from dispatcher.entrypoints.cli_common import USAGE, Key, Url, api
from dispatcher.entrypoints.cli_views import err, out
from dispatcher.entrypoints.client_config import ConfigurationError, resolve_config
from dispatcher.settings import DispatcherSettings


def _load(path: Path, settings: DispatcherSettings | None) -> JobSpec:
    """Read and validate one spec file, and apply a server's policy (``settings``) if there is one; raises
    :class:`JobError`."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    spec = parse_job(text)
    return apply_policy(spec, settings) if settings is not None else spec


Offline = Annotated[
    bool, typer.Option("--offline", help="Check the schema and ACI's limits only; ask no server.", metavar="")
]


def _server_policy(url: str | None, key: str | None, offline: bool) -> DispatcherSettings | None:
    """The configured server's policy, as settings to check with; ``None`` (said on stderr) without a server."""
    if not offline:
        try:
            config = resolve_config(url, key)
        except ConfigurationError:
            config = None
        if config is not None:
            with api(config.url, config.key) as client:
                return settings_of(client.policy())
    err.print(
        "[dim]No server asked (--url, DISPATCHER_URL or the config file name one): checked the schema and "
        "ACI's limits, not a dispatcher's policy.[/dim]"
    )
    return None


def validate(
    files: Annotated[list[Path], typer.Argument(help="Job spec files, YAML or JSON.")],
    *,
    offline: Offline = False,
    url: Url = None,
    key: Key = None,
) -> None:
    """Check job specs against the schema, ACI's limits and the configured dispatcher's policy."""
    settings = _server_policy(url, key, offline)
    failed = 0
    for path in files:
        try:
            _load(path, settings)
        except JobError as exc:
            failed += 1
            what = "breaks policy" if isinstance(exc, PolicyViolation) else "is invalid"
            err.print(f"[red]✗[/red] {escape(str(path))} {what}:")
            for problem in exc.errors:
                err.print(f"    {problem.loc or '(document)'}: {problem.message}", markup=False)
        else:
            out.print(f"[green]✓[/green] {escape(str(path))}")
    if failed:
        raise typer.Exit(USAGE)


def schema() -> None:
    """Print the JSON Schema of the job spec."""
    print(json.dumps(json_schema(), indent=2))


def render(
    file: Annotated[Path, typer.Argument(help="A job spec file, YAML or JSON.")],
    *,
    attempt: Annotated[int, typer.Option(min=1, help="The attempt number to render.")] = 1,
    location: Annotated[str, typer.Option(help="The Azure region of the group.")] = "westeurope",
    offline: Offline = False,
    url: Url = None,
    key: Key = None,
) -> None:
    """Print the container group JSON that would be PUT to ARM, with every secret value redacted: checked against
    the configured dispatcher's policy, and mapped with its storage accounts (without one, this machine's
    DISPATCHER_* settings)."""
    server = _server_policy(url, key, offline)
    settings = server or DispatcherSettings()
    try:
        spec = _load(file, server)
        body = render_group(spec, settings, attempt=attempt, location=location)
    except JobError as exc:
        for problem in exc.errors:
            err.print(f"{file}: {problem}", markup=False)
        raise typer.Exit(USAGE) from None
    print(json.dumps(body, indent=2))

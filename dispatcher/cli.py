"""The ``dispatcher`` command line: validate, show the schema, and render job specs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dispatcher.azure.mapping import render as render_group
from dispatcher.errors import JobError, PolicyViolation
from dispatcher.policy import apply_policy
from dispatcher.settings import DispatcherSettings
from dispatcher.spec import JobSpec, json_schema, parse_job

app = typer.Typer(
    help="Run containers as jobs on Azure Container Instances.", no_args_is_help=True, add_completion=False
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _load(path: Path, settings: DispatcherSettings) -> JobSpec:
    """Read, validate and apply policy to one spec file; raises :class:`JobError`."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    return apply_policy(parse_job(text), settings)


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Job spec files, YAML or JSON.")]) -> None:
    """Check job specs against the schema, ACI's limits and this dispatcher's policy."""
    settings = DispatcherSettings()
    failed = 0
    for path in files:
        try:
            _load(path, settings)
        except JobError as exc:
            failed += 1
            what = "breaks policy" if isinstance(exc, PolicyViolation) else "is invalid"
            err.print(f"[red]✗[/red] {path} {what}:")
            for problem in exc.errors:
                err.print(f"    {problem.loc or '(document)'}: {problem.message}", markup=False)
        else:
            out.print(f"[green]✓[/green] {path}")
    if failed:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the job spec."""
    print(json.dumps(json_schema(), indent=2))


@app.command()
def render(
    file: Annotated[Path, typer.Argument(help="A job spec file, YAML or JSON.")],
    attempt: Annotated[int, typer.Option(min=1, help="The attempt number to render.")] = 1,
    location: Annotated[str, typer.Option(help="The Azure region of the group.")] = "westeurope",
) -> None:
    """Print the container group JSON that would be PUT to ARM, with every secret value redacted."""
    settings = DispatcherSettings()
    try:
        spec = _load(file, settings)
    except JobError as exc:
        for problem in exc.errors:
            err.print(f"{file}: {problem}", markup=False)
        raise typer.Exit(1) from None
    body = render_group(spec, settings, attempt=attempt, location=location, now=dt.datetime.now(dt.UTC))
    print(json.dumps(body, indent=2))


def main() -> None:
    """Entry point of the ``dispatcher`` console script."""
    app()

"""``dispatcher dlq``: the submissions Service Bus dead-lettered, listed and re-driven.

A submission is dead-lettered only after every delivery failed (each one retrying transient errors for
``intake_retry_seconds``): after an outage longer than that, or a message the intake cannot read. ``replay`` sends
each one back under a new message id with its job id in the ``dispatcher-job-id`` property, so the job it
records is the one the original would have recorded, and replaying it again records nothing twice.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dispatcher.cli_bootstrap import dead_letters
from dispatcher.entrypoints.cli_common import (
    USAGE,
    Queue,
    ServiceBusConnection,
    ServiceBusNamespace,
    fail,
    jobs_queue,
    servicebus_access,
    servicebus_failures,
)
from dispatcher.entrypoints.cli_views import out
from dispatcher.ports import DeadLetter

app = typer.Typer(help="The jobs queue's dead letters: list them, replay them.", no_args_is_help=True)

Limit = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.", metavar="")]


def _json(letter: DeadLetter) -> str:
    return json.dumps(
        {
            "sequenceNumber": letter.sequence_number,
            "messageId": letter.message_id,
            "jobId": letter.job_id,
            "reason": letter.reason,
            "description": letter.description,
            "enqueuedAt": letter.enqueued_at.isoformat() if letter.enqueued_at else None,
            "deliveryCount": letter.delivery_count,
            "size": letter.size,
        }
    )


def _table(letters: list[DeadLetter]) -> Table:
    table = Table("SEQ", "JOB", "MESSAGE ID", "REASON", "DELIVERIES", "ENQUEUED", box=None, pad_edge=False)
    for letter in letters:
        reason = letter.reason or "-"
        if letter.description:
            reason += f": {letter.description[:80]}"
        table.add_row(
            str(letter.sequence_number),
            escape(letter.job_id),
            escape(letter.message_id),
            escape(reason),
            str(letter.delivery_count),
            letter.enqueued_at.strftime("%Y-%m-%d %H:%M:%S") if letter.enqueued_at else "-",
        )
    return table


@app.command("list")
def list_letters(
    *,
    servicebus: ServiceBusConnection = None,
    namespace: ServiceBusNamespace = None,
    queue: Queue = None,
    limit: Limit = 100,
    as_json: AsJson = False,
) -> None:
    """List dead-lettered submissions without taking them (their bodies are not shown: they may hold values)."""
    access = servicebus_access(servicebus, namespace)
    with servicebus_failures(), dead_letters(access, jobs_queue(queue)) as letters:
        found = letters.peek(limit)
    if as_json:
        for letter in found:
            out.print(_json(letter), markup=False)
        return
    if not found:
        out.print("No dead-lettered submissions.")
        return
    out.print(_table(found))


@app.command()
def replay(
    sequence_numbers: Annotated[
        list[int] | None, typer.Argument(help="The sequence numbers to replay (see `dlq list`).", show_default=False)
    ] = None,
    *,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter.", metavar="")] = False,
    servicebus: ServiceBusConnection = None,
    namespace: ServiceBusNamespace = None,
    queue: Queue = None,
    limit: Limit = 1000,
    as_json: AsJson = False,
) -> None:
    """Send dead-lettered submissions back to the queue under new message ids; each keeps its job id."""
    chosen = set(sequence_numbers or [])
    if not chosen and not replay_all:
        fail(USAGE, "name the sequence numbers to replay, or pass --all")
    if chosen and replay_all:
        fail(USAGE, "pass sequence numbers or --all, not both")
    access = servicebus_access(servicebus, namespace)
    with servicebus_failures(), dead_letters(access, jobs_queue(queue)) as letters:
        replayed = letters.replay(lambda letter: replay_all or letter.sequence_number in chosen, limit)
    missing = chosen - {letter.sequence_number for letter in replayed}
    if as_json:
        for letter in replayed:
            out.print(_json(letter), markup=False)
    else:
        for letter in replayed:
            out.print(f"replayed {letter.sequence_number}: job {escape(letter.job_id)}")
        out.print(f"{len(replayed)} replayed.")
    if missing:
        fail(USAGE, "no dead letter with sequence number " + ", ".join(str(n) for n in sorted(missing)))

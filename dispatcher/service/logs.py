"""A job's logs as the API serves them: whole (live from ACI while an attempt runs, harvested once it ended), or
as pages a follower walks with a cursor (:mod:`dispatcher.domain.logs`), so that no line is lost or shown twice.

Followers of one group share its live log reads for a few seconds (:class:`~dispatcher.service.services.SharedReads`),
so that ten people following a job cost ARM one read per container every few seconds, not ten.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from dispatcher.domain.jobs import Attempt, ContainerResult, JobRecord
from dispatcher.domain.logs import Cursor, Gap, Line, after, parse
from dispatcher.domain.naming import TIMED_LOG, log_path
from dispatcher.service.services import Services


def containers_of(record: JobRecord) -> list[str]:
    """The names of a job's containers, init containers first."""
    spec = record.spec
    return [] if spec is None else [c.name for _, c in spec.all_containers()]


def attempt_of(record: JobRecord, number: int | None) -> Attempt | None:
    """Attempt ``number`` of the job, or its current one."""
    return record.current if number is None else next((a for a in record.attempts if a.number == number), None)


def _live(attempt: Attempt) -> bool:
    return attempt.outcome is None and attempt.launched_at is not None


def _stored(services: Services, record: JobRecord, attempt: Attempt, result: ContainerResult) -> list[Line]:
    """A harvested log's lines: with their times, or (a log harvested before times were kept) without."""
    if (result.log_blob or "").endswith(TIMED_LOG):
        stored = services.logs.get(log_path(record.id, attempt.number, result.name))
        if stored is not None:
            return parse(stored)
    else:
        stored = services.logs.get(log_path(record.id, attempt.number, result.name, timed=False))
    text = stored if stored is not None else result.log_tail
    return [Line(0, piece) for piece in text.split("\n")[: -1 if text.endswith("\n") else None]] if text else []


def job_logs(
    services: Services, record: JobRecord, container: str | None, tail: int | None, number: int | None = None
) -> dict[str, str]:
    """An attempt's log per container (the current one's, or attempt ``number``'s): live from ACI while its group
    runs, harvested once it ended.

    ``container`` (one of :func:`containers_of`) narrows it to one; ``tail`` keeps the last lines.
    """
    attempt = attempt_of(record, number)
    texts: dict[str, str] = {}
    if attempt is None:
        return texts
    names = [container] if container else containers_of(record)
    pool = services.settings.pool(attempt.pool)
    if _live(attempt) and pool is not None:
        for name in names:
            texts[name] = _tail(services.groups.logs(pool, attempt.group, name, tail), tail)
        return texts
    for result in attempt.containers:
        if result.name in names:
            lines = _stored(services, record, attempt, result)
            texts[result.name] = _tail("".join(line.text + "\n" for line in lines), tail)
    return texts


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    return "".join(text.splitlines(keepends=True)[-lines:]) if lines > 0 else ""


@dataclass(frozen=True)
class LogPage:
    """What a follower gets: the new lines of one attempt, by container in the order of their times."""

    attempt: int | None
    """The attempt these lines are of; ``None`` while the job has none."""
    containers: list[str] = field(default_factory=list)
    """The containers followed."""
    lines: list[tuple[str, Line]] = field(default_factory=list)
    gaps: list[tuple[str, Gap]] = field(default_factory=list)
    next: Cursor | None = None
    """Where the follower goes on from; ``None`` while the job has no attempt."""
    complete: bool = False
    """The attempt ended and its harvested log was read to the end."""
    more: bool = True
    """A later call may give more: the job is not over, or a later attempt follows this one."""


def follow(
    services: Services,
    record: JobRecord,
    container: str | None,
    cursor: Cursor | None,
    *,
    number: int | None = None,
    tail: int | None = None,
) -> LogPage:
    """The lines after ``cursor``; without one, attempt ``number``'s (the current one's) from its start, or its last
    ``tail``. Live from ACI (timestamped, shared among followers) while the attempt runs; from the harvested log,
    whose lines carry the same times, once it ended. A finished attempt hands on to the next one.

    :class:`ValueError` when the cursor names an attempt the job does not have.
    """
    names = [container] if container else containers_of(record)
    attempt = attempt_of(record, cursor.attempt if cursor is not None else number)
    if attempt is None:
        if cursor is not None:
            raise ValueError(f"the cursor is for attempt {cursor.attempt}, which job {record.id!r} does not have")
        return LogPage(None, names, more=not record.status.terminal)
    positions = dict(cursor.positions) if cursor is not None else {}
    pool = services.settings.pool(attempt.pool)
    live = _live(attempt) and pool is not None
    results = {result.name: result for result in attempt.containers}
    lines: list[tuple[str, Line]] = []
    gaps: list[tuple[str, Gap]] = []
    for name in names:
        if live and pool is not None:
            content = services.log_reads.read(
                (pool.name, attempt.group, name),
                services.clock.now().timestamp(),
                functools.partial(services.groups.logs, pool, attempt.group, name, timestamps=True),
            )
            found = parse(content)
        else:
            result = results.get(name)
            found = _stored(services, record, attempt, result) if result is not None else []
        taken = after(found, positions.get(name), tail=tail if cursor is None else None)
        if taken.position is not None:
            positions[name] = taken.position
        lines += [(name, line) for line in taken.lines]
        if taken.gap is not None:
            gaps.append((name, taken.gap))
    lines.sort(key=lambda item: item[1].at)  # stable: at one time, in container order
    complete = attempt.outcome is not None
    later = next((a for a in record.attempts if a.number > attempt.number), None)
    if complete and later is not None:
        return LogPage(attempt.number, names, lines, gaps, Cursor(later.number), complete=True, more=True)
    more = not (complete and record.status.terminal)
    cursor = Cursor(attempt.number, positions)
    return LogPage(attempt.number, names, lines, gaps, cursor, complete=complete, more=more)

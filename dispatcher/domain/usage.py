"""Usage by team and label: what each job used, written once as it ends, and folded into daily totals. Pure.

A job's usage is recorded in the same write as its terminal record (a pending entry, once, since a job ends once),
and the reconciler folds pending entries into one total per day and team, deleting them in the same transaction, so
every job counts exactly once. Totals outlive the records' retention, and a report reads days, not jobs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dispatcher.domain.identity import TEAM_LABEL
from dispatcher.domain.jobs import JobRecord

NO_TEAM = "-"
"""How a total of the jobs of no team is keyed."""
MAX_LABEL_PAIRS = 200
"""Label pairs a day's total keeps apart; the usage of jobs with more distinct pairs is counted under OTHER."""
OTHER = "(other)"
FOLD_MAX = 99
"""Entries one fold takes: it deletes them beside its total in one entity group transaction (100 operations)."""


@dataclass(frozen=True)
class Usage:
    """Jobs ended, vCPU-seconds and GB-seconds billed, and their estimated cost."""

    jobs: int = 0
    vcpu_seconds: float = 0.0
    gb_seconds: float = 0.0
    cost: float = 0.0

    def plus(self, other: Usage) -> Usage:
        return Usage(
            self.jobs + other.jobs,
            self.vcpu_seconds + other.vcpu_seconds,
            self.gb_seconds + other.gb_seconds,
            self.cost + other.cost,
        )


def usage_of(record: JobRecord) -> Usage:
    """What ``record``'s attempts were billed for. An array job counts as one job and its groups' records carry
    its containers' usage, so neither is counted twice."""
    seconds = [(a, a.billed_seconds or 0.0) for a in record.attempts]
    return Usage(
        jobs=1 if record.group_of is None and record.spec is not None else 0,  # a rejected submission ran nothing
        vcpu_seconds=sum(a.cores * s for a, s in seconds),
        gb_seconds=sum(a.memory_gb * s for a, s in seconds),
        cost=sum(a.cost or 0.0 for a in record.attempts),
    )


@dataclass(frozen=True)
class UsageEntry:
    """One ended job's usage, pending until folded into its day's total."""

    job_id: str
    day: dt.date
    team: str
    labels: Mapping[str, str]
    usage: Usage


def usage_entry(record: JobRecord) -> UsageEntry | None:
    """The pending entry a record leaves once terminal (keyed by the day it ended, UTC), else ``None``."""
    if not record.status.terminal:
        return None
    team = record.team or NO_TEAM
    labels = {k: v for k, v in record.labels.items() if k != TEAM_LABEL}
    return UsageEntry(record.id, record.updated_at.astimezone(dt.UTC).date(), team, labels, usage_of(record))


@dataclass(frozen=True)
class DayTotal:
    """One team's usage on one day, in total and by label pair (``key=value``)."""

    day: dt.date
    team: str
    usage: Usage = Usage()
    by_label: Mapping[str, Usage] = field(default_factory=dict)
    etag: str | None = field(default=None, compare=False)

    def folded(self, entries: Iterable[UsageEntry]) -> DayTotal:
        """With ``entries`` (of this day and team) added."""
        usage, by_label = self.usage, dict(self.by_label)
        for entry in entries:
            usage = usage.plus(entry.usage)
            for key, value in sorted(entry.labels.items()):
                pair = f"{key}={value}"
                if pair not in by_label and len(by_label) >= MAX_LABEL_PAIRS:
                    pair = f"{key}={OTHER}"
                by_label[pair] = by_label.get(pair, Usage()).plus(entry.usage)
        return DayTotal(self.day, self.team, usage, by_label, self.etag)


def report(
    totals: Iterable[DayTotal], pending: Iterable[UsageEntry], by: str, teams: tuple[str, ...] | None
) -> dict[str, Usage]:
    """Usage summed by team (``by="team"``) or by the values of one label (``by="label:NAME"``), over ``totals``
    and the entries not folded yet, of ``teams`` only (``None``: every team)."""
    days = [t for t in totals if teams is None or t.team in teams]
    days += [
        DayTotal(e.day, e.team).folded([e]) for e in pending if teams is None or e.team in teams
    ]  # each pending entry as a total of its own
    out: dict[str, Usage] = {}
    label = by.removeprefix("label:") if by.startswith("label:") else None
    for total in days:
        if label is None:
            out[total.team] = out.get(total.team, Usage()).plus(total.usage)
            continue
        for pair, usage in total.by_label.items():
            key, _, value = pair.partition("=")
            if key == label:
                out[value] = out.get(value, Usage()).plus(usage)
    return dict(sorted(out.items()))

"""Usage: fold ended jobs' entries into daily totals (the reconciler), and report them (``GET /api/usage``)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from dispatcher.domain.usage import FOLD_MAX, Usage, UsageEntry, report
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services

FOLD_BATCH = 500
"""Pending entries one reconciler run folds; more wait for the next run (and count in reports meanwhile)."""
MAX_DAYS = 366
"""The longest period one report covers."""


def fold_usage(services: Services, run: RunReport) -> int:
    """Fold pending entries into their day's total, one day and team at a time; a lost race leaves the entries to
    the next run. Returns how many were folded."""
    groups: dict[tuple[dt.date, str], list[UsageEntry]] = defaultdict(list)
    for entry in services.usage.pending(FOLD_BATCH):
        groups[(entry.day, entry.team)].append(entry)
    folded = 0
    for (day, team), entries in sorted(groups.items()):
        with run.contained(f"fold the usage of {team} on {day}"):
            for start in range(0, len(entries), FOLD_MAX):
                chunk = entries[start : start + FOLD_MAX]
                if not services.usage.fold(services.usage.day_total(day, team), chunk):
                    break
                folded += len(chunk)
    return folded


def usage_between(
    services: Services, since: dt.date, until: dt.date, by: str, teams: tuple[str, ...] | None
) -> dict[str, Usage]:
    """Usage from ``since`` to ``until`` (UTC days, both included) by team or one label's values, of ``teams``
    (``None``: all), from the daily totals and the entries not folded yet."""
    pending = [e for e in services.usage.pending(FOLD_BATCH) if since <= e.day <= until]
    return report(services.usage.totals(since, until), pending, by, teams)

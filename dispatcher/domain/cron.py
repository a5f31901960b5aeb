"""When a schedule is due: five-field cron in an IANA time zone, mapped to UTC instants. Pure.

croniter walks wall-clock times (naive, in the schedule's zone); this module maps each to the instant it means:

- a wall time in a spring-forward gap (02:30 on the night clocks go from 02:00 to 03:00) does not exist; it is
  due at the first valid time after it (03:00 local);
- a wall time that occurs twice in the autumn is due once, at its first occurrence (``fold=0``).

Wall times map to instants in the same order, so walking croniter forwards or backwards gives instants forwards
or backwards; equal instants (several gap times that move to the end of the gap) are one due time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from croniter import croniter

MAX_WALK = 2_000
"""Due times walked at most in one direction before giving up: a bound on work, never reached by a sane cron."""
GAP_STEP = dt.timedelta(minutes=1)
MAX_GAP = dt.timedelta(hours=3)
"""Longer than any daylight-saving or zone change in the IANA database (the longest are 2 hours)."""


def valid_cron(expression: str) -> str | None:
    """Why ``expression`` is not a five-field crontab expression, or ``None`` if it is one."""
    fields = expression.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields; a schedule takes the five of crontab (minute hour day month weekday)"
    if not croniter.is_valid(expression):
        return "is not a valid crontab expression"
    return None


def _exists(wall: dt.datetime, zone: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) == wall


def instant(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of a naive wall time in ``zone``: a gap time moves to the first valid minute after it, a
    repeated time is its first occurrence."""
    moved = wall
    while not _exists(moved, zone) and moved - wall < MAX_GAP:
        moved += GAP_STEP
    return moved.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)


def _wall(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _walk(expression: str, zone: ZoneInfo, start: dt.datetime, *, forward: bool) -> Iterator[dt.datetime]:
    """Due instants from wall time ``start`` on (exclusive), deduplicated, at most :data:`MAX_WALK`."""
    walker = croniter(expression, start)
    last: dt.datetime | None = None
    for _ in range(MAX_WALK):
        wall = walker.get_next(dt.datetime) if forward else walker.get_prev(dt.datetime)
        moment = instant(wall, zone)
        if moment != last:
            last = moment
            yield moment


def next_due(expression: str, zone: ZoneInfo, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` due instants strictly after ``after``."""
    found: list[dt.datetime] = []
    for moment in _walk(expression, zone, _wall(after, zone) - MAX_GAP, forward=True):
        if moment > after:
            found.append(moment)
            if len(found) >= count:
                break
    return found


@dataclass(frozen=True)
class Due:
    """What is due between a schedule's last handled time and now: the latest due instant, and how many earlier
    ones were missed (counted up to :data:`MAX_WALK`)."""

    latest: dt.datetime
    missed: int


def due_since(expression: str, zone: ZoneInfo, handled: dt.datetime, now: dt.datetime) -> Due | None:
    """The latest due instant in ``(handled, now]``, or ``None`` when nothing is due."""
    latest: dt.datetime | None = None
    missed = 0
    for moment in _walk(expression, zone, _wall(now, zone) + MAX_GAP, forward=False):
        if moment > now:
            continue
        if moment <= handled:
            break
        if latest is None:
            latest = moment
        else:
            missed += 1
    return Due(latest, missed) if latest is not None else None

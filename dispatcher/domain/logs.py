"""Container log lines with the times ACI gives them, and the cursor a follower walks. Pure: no I/O.

ACI answers a log read with at most the last 4 MB of a container's output, and with ``timestamps=true`` prefixes
every line with its RFC 3339 time (nanoseconds; trailing zeros may be trimmed). A follower's position is the time
of the last line it was given and how many lines at that very time it was given, so identical lines, bursts and
trickles are each served once, whatever the window shows. The window may start after that position: ACI dropped
lines past its 4 MB (or the container restarted with a new log); the page says so with the times on both sides,
since ACI's answer has no line numbers to count what is gone.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}) ")
"""The time ACI puts before each line with ``timestamps=true``, and the one space after it."""
MAX_CURSOR_CHARS = 8192


@dataclass(frozen=True)
class Line:
    """One line of a container's log: nanoseconds since the epoch (``at``, 0 when the line had no time) and its
    text without the newline."""

    at: int
    text: str


def _nanos(stamp: re.Match[str]) -> int | None:
    whole, fraction, zone = stamp.groups()
    try:
        moment = dt.datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    except ValueError:  # looks like a time but is none (a line of the container's own, say): not ACI's
        return None
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


def parse(content: str) -> list[Line]:
    """The lines of a log read with timestamps. A line without a time (a log kept before times were) takes the
    time of the line before it."""
    lines: list[Line] = []
    at = 0
    pieces = content.split("\n")
    if pieces[-1] == "":
        pieces.pop()  # the newline that ends the last line
    for raw in pieces:
        stamp = STAMP.match(raw)
        nanos = _nanos(stamp) if stamp is not None else None
        if stamp is None or nanos is None:
            lines.append(Line(at, raw))
            continue
        at = nanos
        lines.append(Line(at, raw[stamp.end() :]))
    return lines


def plain(content: str) -> str:
    """A timestamped log as the container wrote it (lines end at ``\\n`` only, as ACI splits them)."""
    text = "\n".join(line.text for line in parse(content))
    return text + "\n" if content.endswith("\n") else text


def time_text(at: int) -> str | None:
    """RFC 3339 UTC with nanoseconds, or ``None`` for a line without a time."""
    if at <= 0:
        return None
    seconds, nanos = divmod(at, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


@dataclass(frozen=True)
class Position:
    """The last line a follower was given of one container: its time, and how many lines at that time it was
    given (lines can share a time)."""

    at: int
    same: int


@dataclass(frozen=True)
class Gap:
    """ACI's window begins after the last line served: lines between ``after`` and ``before`` may be gone."""

    after: int
    before: int


@dataclass(frozen=True)
class Taken:
    """The lines of one container after a position, where the follower is then, and a gap if the window moved."""

    lines: list[Line]
    position: Position | None
    gap: Gap | None = None


def after(lines: Sequence[Line], position: Position | None, *, tail: int | None = None) -> Taken:
    """The lines after ``position`` (all of them with no position, or the last ``tail``)."""
    keyed: list[tuple[Position, Line]] = []
    previous, same = None, 0
    for line in lines:
        same = same + 1 if line.at == previous else 1
        previous = line.at
        keyed.append((Position(line.at, same), line))
    if position is None:
        fresh = keyed if tail is None else keyed[max(len(keyed) - tail, 0) :] if tail > 0 else []
        gap = None
    else:
        fresh = [(key, line) for key, line in keyed if (key.at, key.same) > (position.at, position.same)]
        gap = Gap(position.at, keyed[0][0].at) if keyed and keyed[0][0].at > position.at else None
    last = fresh[-1][0] if fresh else position
    if last is None and keyed and tail == 0:
        last = keyed[-1][0]
    return Taken([line for _, line in fresh], last, gap)


@dataclass(frozen=True)
class Cursor:
    """Where a follower is: the attempt it reads, and per container the last line it was given."""

    attempt: int
    positions: Mapping[str, Position] = field(default_factory=dict)

    def encode(self) -> str:
        body = {"a": self.attempt, "p": {name: [p.at, p.same] for name, p in self.positions.items()}}
        return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """A cursor this API gave; :class:`ValueError` for anything else."""
        try:
            if len(text) > MAX_CURSOR_CHARS:
                raise ValueError
            body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            attempt, positions = body["a"], body["p"]
            if type(attempt) is not int or attempt < 1 or not isinstance(positions, dict):
                raise ValueError
            found: dict[str, Position] = {}
            for name, (at, same) in positions.items():
                if type(at) is not int or type(same) is not int or at < 0 or same < 1:
                    raise ValueError
                found[str(name)] = Position(at, same)
        except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
            raise ValueError("not a cursor this API gave (take the `next` of an earlier answer)") from None
        return cls(attempt, found)

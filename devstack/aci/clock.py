"""Emulated time: wall-clock time that runs ``time_scale`` times faster than real time."""

from __future__ import annotations

import datetime as dt
import time


class ScaledClock:
    """Seconds since the epoch, advancing ``scale`` emulated seconds per real second from creation."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("time_scale must be positive")
        self.scale = scale
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        """The current emulated time, as epoch seconds."""
        return self._wall0 + (time.monotonic() - self._mono0) * self.scale

    def real_seconds(self, emulated_seconds: float) -> float:
        """How many real seconds ``emulated_seconds`` take."""
        return emulated_seconds / self.scale


def iso(timestamp: float) -> str:
    """RFC 3339 UTC text, as ARM writes timestamps."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_nanos(timestamp: float) -> str:
    """RFC 3339 with nanoseconds, as ACI prefixes log lines when ``timestamps=true``."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"

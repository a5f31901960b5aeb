"""Emulated time that both the ACI emulator and the dispatcher read, advanced by the benchmark in steps.

The emulator's own :class:`~devstack.aci.clock.ScaledClock` runs on the wall clock. On a shared 2-core
machine the dispatcher's work would then leak into the timeline: a reconciler run that takes 2 s of CPU
at a time scale of 100 looks like a 200 s run, and latencies would measure the benchmark host, not the
design. The stepped clock stops time while the dispatcher works and moves it only between events, as a
discrete-event simulation does; the work's real cost is measured separately (CPU and wall time).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from devstack.aci.clock import ScaledClock


class SteppedClock(ScaledClock):
    """Epoch seconds that change only when :meth:`advance_to` is called; a drop-in for the emulator's clock."""

    def __init__(self, start: float | None = None) -> None:
        super().__init__(1.0)
        self._lock = threading.Lock()
        self._now = time.time() if start is None else start
        self.start = self._now

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance_to(self, moment: float) -> None:
        """Move time forward to ``moment``; a moment in the past leaves the time as it is."""
        with self._lock:
            self._now = max(self._now, moment)

    def elapsed(self) -> float:
        """Emulated seconds since the clock was made."""
        return self.now() - self.start


class DispatcherClock:
    """The dispatcher's ``Clock`` port on the same emulated time, as UTC datetimes."""

    def __init__(self, source: SteppedClock) -> None:
        self._source = source

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._source.now(), dt.UTC)

    def sleep(self, seconds: float) -> None:
        """Waiting moves emulated time on, as it would move real time."""
        self._source.advance_to(self._source.now() + seconds)

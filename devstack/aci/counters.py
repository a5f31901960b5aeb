"""Request counters by operation and HTTP status, for tests and benchmarks."""

from __future__ import annotations

import threading
from collections import defaultdict


class Counters:
    """Counts answered requests as ``{operation: {status: count}}``. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def record(self, operation: str, status: int) -> None:
        """Count one request of ``operation`` answered with ``status``."""
        with self._lock:
            self._counts[operation][str(status)] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A copy of the counts."""
        with self._lock:
            return {operation: dict(statuses) for operation, statuses in self._counts.items()}

    def reset(self) -> None:
        """Set every count back to zero."""
        with self._lock:
            self._counts.clear()

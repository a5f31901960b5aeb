"""What one reconciler run did, its time budget, and the containment of each of its steps."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dispatcher.domain.errors import DispatcherError

log = logging.getLogger(__name__)

MAX_ERRORS = 100


@dataclass
class RunReport:
    """What one run did, for logs and benchmarks; ``deadline`` is the monotonic time its budget ends."""

    deadline: float = float("inf")
    actions: dict[str, int] = field(default_factory=dict)
    launched: int = 0
    reads: int = 0
    published: int = 0
    errors: list[str] = field(default_factory=list)
    failures: int = 0
    out_of_budget: bool = False
    held: Counter[str] = field(default_factory=Counter)
    """The pools' groups by the status of their job: Launching, or Running once started."""
    upkeep: bool = True
    """Whether the run also does the upkeep (:func:`~dispatcher.service.tick.run_tick`)."""

    @classmethod
    def within(cls, seconds: float) -> RunReport:
        return cls(deadline=time.monotonic() + seconds)

    def count(self, name: str) -> None:
        self.actions[name] = self.actions.get(name, 0) + 1

    def out_of_time(self) -> bool:
        """Whether the run's budget is spent; the rest of the work waits for the next run."""
        if time.monotonic() >= self.deadline:
            self.out_of_budget = True
        return self.out_of_budget

    @contextmanager
    def contained(self, what: str, *, on_error: Callable[[str], None] | None = None) -> Iterator[None]:
        """Run one step; whatever it raises is logged, counted and handed to ``on_error``, and the run goes on.

        One bad entity, one failed call or one defect stops only its own step, never the others'.
        """
        try:
            yield
        except Exception as exc:
            message = f"{what}: {type(exc).__name__}: {exc}"[:1000]
            self.failures += 1
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(message)
            log.warning("reconciler step failed: %s", message, exc_info=not _expected(exc))
            if on_error is not None:
                try:
                    on_error(message)
                except Exception as again:
                    log.warning("could not record that %s failed: %s", what, again)


def _expected(exc: Exception) -> bool:
    """Whether ``exc`` is one of the dispatcher's own errors (no traceback needed in the log)."""
    return isinstance(exc, DispatcherError)

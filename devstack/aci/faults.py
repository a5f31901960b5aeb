"""Faults injected at runtime by tests: failing or dropped requests, slow LROs, failed provisioning."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from devstack.aci.state import ProvisioningFailure

FAULT_ERROR_CODES = {
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
    409: "Conflict",
    429: "TooManyRequests",
}


@dataclass(frozen=True)
class RequestFault:
    """What happens to one request: an error ``status`` or, when ``drop``, a connection closed mid-response."""

    status: int = 500
    drop: bool = False


class FaultInjector:
    """Pending faults, consumed in order by the requests and creates they target. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, deque[RequestFault]] = {}
        self._provisioning: dict[str, ProvisioningFailure] = {}
        self._slow_lro_seconds = 0.0

    def fail_next(self, operation: str, count: int = 1, status: int = 500) -> None:
        """The next ``count`` requests of ``operation`` (e.g. "create", "get", or "*") answer ``status``."""
        self._queue(operation, RequestFault(status=status), count)

    def drop_next(self, operation: str, count: int = 1) -> None:
        """The next ``count`` requests of ``operation`` get their connection closed before a full response."""
        self._queue(operation, RequestFault(drop=True), count)

    def _queue(self, operation: str, fault: RequestFault, count: int) -> None:
        with self._lock:
            self._requests.setdefault(operation, deque()).extend([fault] * count)

    def take_request_fault(self, operation: str) -> RequestFault | None:
        """Consume the next fault for ``operation`` (specific ones first, then "*")."""
        with self._lock:
            for key in (operation, "*"):
                pending = self._requests.get(key)
                if pending:
                    return pending.popleft()
        return None

    def slow_lro(self, seconds: float) -> None:
        """Long-running operations started from now on stay InProgress ``seconds`` (emulated) longer; 0 clears."""
        with self._lock:
            self._slow_lro_seconds = max(0.0, seconds)

    @property
    def lro_delay(self) -> float:
        """The extra emulated seconds new long-running operations take."""
        with self._lock:
            return self._slow_lro_seconds

    def fail_next_create(self, group: str, kind: str = "image_pull", message: str | None = None) -> None:
        """The next create of ``group`` fails provisioning: ``kind`` is "image_pull" or "mount"."""
        if kind not in ("image_pull", "mount"):
            raise ValueError("kind must be 'image_pull' or 'mount'")
        with self._lock:
            self._provisioning[group] = ProvisioningFailure(kind=kind, message=message or "")

    def take_provisioning_failure(self, group: str) -> ProvisioningFailure | None:
        """Consume the provisioning failure planned for ``group``, if any."""
        with self._lock:
            return self._provisioning.pop(group, None)

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._requests.clear()
            self._provisioning.clear()
            self._slow_lro_seconds = 0.0

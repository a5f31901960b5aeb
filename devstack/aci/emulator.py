"""The devstack ACI emulator: an HTTPS server speaking ARM for container groups, with a Python control API."""

from __future__ import annotations

from types import TracebackType

from devstack.aci.app import build_app
from devstack.aci.config import AciConfig
from devstack.aci.counters import Counters
from devstack.aci.faults import FaultInjector
from devstack.aci.service import AciService
from devstack.server import ServerThread


class AciEmulator:
    """Serves ``Microsoft.ContainerInstance`` over HTTPS on loopback; point the SDK's ``base_url`` at :attr:`url`.

    ``faults`` injects failures; :meth:`counters` reports requests by operation and status; :meth:`vanish`
    deletes a group out of band; :meth:`throttle` empties an ARM token bucket so the next request gets 429.
    """

    def __init__(self, config: AciConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.service = AciService(config)
        self._counters = Counters()
        self._server = ServerThread(
            build_app(self.service, self._counters), port=config.port, tls=config.tls, name="aci"
        )

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``; valid after :meth:`start`."""
        return self._server.url

    @property
    def faults(self) -> FaultInjector:
        """Pending faults: ``fail_next``, ``drop_next``, ``slow_lro``, ``fail_next_create``, ``clear``."""
        return self.service.faults

    def start(self) -> AciEmulator:
        """Start serving; returns self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving, kill every container process and join every thread."""
        self._server.stop()
        self.service.shutdown()

    def counters(self) -> dict[str, dict[str, int]]:
        """Requests answered so far, as ``{operation: {status: count}}`` (status 0 is a dropped connection)."""
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        """Set every counter back to zero."""
        self._counters.reset()

    def vanish(self, name: str, resource_group: str | None = None) -> int:
        """Delete groups called ``name`` out of band (as if someone used the portal); returns how many."""
        return self.service.vanish(name, resource_group)

    def evict(self, name: str, resource_group: str | None = None) -> int:
        """Evict the Spot groups called ``name`` (ACI restarts them in place); returns how many."""
        return self.service.evict(name, resource_group)

    def throttle(self, subscription: str, kind: str = "reads") -> None:
        """Empty the ``kind`` bucket ("reads", "writes", "deletes") of ``subscription``: its next request gets 429."""
        self.service.buckets.drain(subscription, kind, self.service.clock.now())

    def __enter__(self) -> AciEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

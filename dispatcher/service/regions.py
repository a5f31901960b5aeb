"""The quota a pool shares with everything else in its region: pools in one subscription and region share one ACI
quota, with each other and with any other workload there. Once a minute per region the reconciler reads ACI's
usage (one ARM read), and admission then counts what the region holds outside each pool
(:class:`~dispatcher.domain.placement.Elsewhere`) against the region's quota, so that other workloads never
make a create fail on the quota."""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.domain.placement import Elsewhere, PoolState
from dispatcher.service.report import RunReport
from dispatcher.service.services import Services
from dispatcher.settings import Pool


def region_of(pool: Pool) -> tuple[str, str]:
    return pool.subscription_id.lower(), pool.location.lower().replace(" ", "")


def refresh_regions(services: Services, report: RunReport, states: Mapping[str, PoolState]) -> None:
    """Read ACI's usage of each region whose last read is older than a minute, with the pools' states this run
    read; a region whose read fails keeps its previous figures until they are too old to use."""
    now = services.clock.now().timestamp()
    regions: dict[tuple[str, str], list[Pool]] = {}
    for pool in services.settings.pools:
        if pool.name in states:
            regions.setdefault(region_of(pool), []).append(pool)
    for region, pools in regions.items():
        if not services.regions.due(region, now):
            continue
        with report.contained(f"read ACI's usage in {pools[0].location}"):
            report.reads += 1
            usage = services.groups.usage(pools[0])
            shares = {p.name: Elsewhere.of(usage, states[p.name]) for p in pools} if usage is not None else {}
            services.regions.record(region, now, shares)

"""ACI container groups through ``azure-mgmt-containerinstance``: the ContainerGroups port."""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import Container, ContainerGroup, Event, InitContainerDefinition

from dispatcher.adapters.azure.errors import translated
from dispatcher.adapters.azure.mapping import build_container_group
from dispatcher.domain.observed import AciEvent, ContainerView, GroupSummary, GroupView
from dispatcher.domain.placement import RegionUsage
from dispatcher.ports import CreateResult, GroupRequest
from dispatcher.settings import DispatcherSettings, Pool


def _events(events: list[Event] | None) -> tuple[AciEvent, ...]:
    return tuple(
        AciEvent(
            name=e.name or "",
            message=e.message or "",
            type=e.type or "Normal",
            count=e.count or 1,
            last_timestamp=e.last_timestamp,
        )
        for e in events or []
    )


def _container(container: Container | InitContainerDefinition) -> ContainerView:
    view = container.instance_view
    state = view.current_state if view else None
    return ContainerView(
        name=container.name,
        state=state.state if state else None,
        exit_code=state.exit_code if state else None,
        start_time=state.start_time if state else None,
        finish_time=state.finish_time if state else None,
        detail_status=state.detail_status if state else None,
        restart_count=(view.restart_count or 0) if view else 0,
        events=_events(view.events if view else None),
    )


def group_view(group: ContainerGroup) -> GroupView:
    """Our plain view of an SDK ContainerGroup with its instance view."""
    instance = group.instance_view
    return GroupView(
        name=getattr(group, "name", "") or "",
        provisioning_state=group.provisioning_state,
        state=instance.state if instance else None,
        tags=dict(group.tags or {}),
        containers=tuple(_container(c) for c in group.containers or []),
        init_containers=tuple(_container(c) for c in group.init_containers or []),
        events=_events(instance.events if instance else None),
    )


class AciContainerGroups:
    """Container groups in each pool's subscription and resource group; one management client per subscription."""

    def __init__(
        self,
        credential: TokenCredential,
        settings: DispatcherSettings,
        *,
        arm_endpoint: str,
        client_options: dict[str, Any],
    ) -> None:
        self._credential = credential
        self._settings = settings
        self._endpoint = arm_endpoint
        self._options = client_options
        self._clients: dict[str, ContainerInstanceManagementClient] = {}
        self._lock = threading.Lock()

    def client(self, subscription_id: str) -> ContainerInstanceManagementClient:
        with self._lock:
            if subscription_id not in self._clients:
                self._clients[subscription_id] = ContainerInstanceManagementClient(
                    self._credential, subscription_id, base_url=self._endpoint, **self._options
                )
            return self._clients[subscription_id]

    def create(self, pool: Pool, name: str, request: GroupRequest) -> CreateResult:
        group = build_container_group(request, self._settings)
        client = self.client(pool.subscription_id)
        with translated(f"create {name} in {pool.name}"):
            # No transport retry: a create that may have been applied is resolved by reading the group, never by
            # sending it again (a PUT of an existing group restarts its containers).
            poller = client.container_groups.begin_create_or_update(
                pool.resource_group, name, group, polling=False, retry_total=0
            )
            accepted = poller.result()
        return CreateResult(provisioning_state=accepted.provisioning_state or "Pending")

    def delete(self, pool: Pool, name: str) -> None:
        client = self.client(pool.subscription_id)
        with translated(f"delete {name} in {pool.name}"), contextlib.suppress(ResourceNotFoundError):
            client.container_groups.begin_delete(pool.resource_group, name, polling=False).result()

    def list(self, pool: Pool) -> dict[str, GroupSummary]:
        """Every group in the pool's resource group, from one paged list call (no instance views)."""
        client = self.client(pool.subscription_id)
        found: dict[str, GroupSummary] = {}
        with translated(f"list groups in {pool.name}"):
            for group in client.container_groups.list_by_resource_group(pool.resource_group):
                name: str = getattr(group, "name", "") or ""  # read-only in the SDK model, typed as None
                if name:
                    found[name] = GroupSummary(name, group.provisioning_state, dict(group.tags or {}))
        return found

    def usage(self, pool: Pool) -> RegionUsage | None:
        """ACI's usages for the pool's region: ``ContainerGroups`` (the REST spec's example, ContainerGroupUsage.json)
        and ``StandardCores`` where ACI reports it (without it, cores are not limited here)."""
        client = self.client(pool.subscription_id)
        rows: dict[str, tuple[int, int]] = {}
        with translated(f"read ACI's usage in {pool.location}"):
            for usage in client.location.list_usage(pool.location):
                # read-only in the SDK's models, so typed as None there
                key: Any = getattr(getattr(usage, "name", None), "value", None)
                current, limit = getattr(usage, "current_value", None), getattr(usage, "limit", None)
                if key and current is not None and limit is not None:
                    rows[key] = (int(current), int(limit))
        if "ContainerGroups" not in rows:
            return None
        groups, group_limit = rows["ContainerGroups"]
        cores, core_limit = rows.get("StandardCores", (0, 0))
        return RegionUsage(groups, group_limit, float(cores), float(core_limit) if core_limit else math.inf)

    def get(self, pool: Pool, name: str) -> GroupView | None:
        client = self.client(pool.subscription_id)
        with translated(f"get {name} in {pool.name}"):
            try:
                return group_view(client.container_groups.get(pool.resource_group, name))
            except ResourceNotFoundError:
                return None

    def stop(self, pool: Pool, name: str) -> None:
        client = self.client(pool.subscription_id)
        with translated(f"stop {name} in {pool.name}"), contextlib.suppress(ResourceNotFoundError):
            client.container_groups.stop(pool.resource_group, name)

    def logs(self, pool: Pool, name: str, container: str, tail: int | None = None, *, timestamps: bool = False) -> str:
        client = self.client(pool.subscription_id)
        with translated(f"logs of {name}/{container} in {pool.name}"):
            try:
                logs = client.containers.list_logs(
                    pool.resource_group, name, container, tail=tail, timestamps=timestamps or None
                )
            except ResourceNotFoundError:
                return ""
        return logs.content or ""

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

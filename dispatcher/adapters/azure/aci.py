"""ACI container groups through ``azure-mgmt-containerinstance``: the ContainerGroups port."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    map_error,
)
from azure.core.rest import HttpRequest
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.operations._container_groups_operations import (
    build_get_request,
    build_list_by_resource_group_request,
)
from azure.mgmt.core.exceptions import ARMErrorFormat

from dispatcher.adapters.azure.errors import translated
from dispatcher.adapters.azure.mapping import build_container_group
from dispatcher.domain.observed import AciEvent, ContainerView, GroupSummary, GroupView
from dispatcher.domain.placement import RegionUsage
from dispatcher.ports import CreateResult, GroupRequest
from dispatcher.settings import DispatcherSettings, Pool

Body = Mapping[str, Any]

ERROR_MAP: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
    304: ResourceNotModifiedError,
}
"""The SDK operations' own error map for reads (``ContainerGroupsOperations.get``)."""


def _time(value: Any) -> dt.datetime | None:
    """An ARM timestamp (ISO 8601, up to 7 fractional digits, ``Z``) as an aware datetime."""
    if not value:
        return None
    moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _events(events: Any) -> tuple[AciEvent, ...]:
    return tuple(
        AciEvent(
            name=e.get("name") or "",
            message=e.get("message") or "",
            type=e.get("type") or "Normal",
            count=e.get("count") or 1,
            last_timestamp=_time(e.get("lastTimestamp")),
        )
        for e in events or []
    )


def _container(container: Body) -> ContainerView:
    view = (container.get("properties") or {}).get("instanceView") or {}
    state = view.get("currentState") or {}
    exit_code = state.get("exitCode")
    return ContainerView(
        name=container.get("name") or "",
        state=state.get("state"),
        exit_code=int(exit_code) if exit_code is not None else None,
        start_time=_time(state.get("startTime")),
        finish_time=_time(state.get("finishTime")),
        detail_status=state.get("detailStatus"),
        restart_count=view.get("restartCount") or 0,
        events=_events(view.get("events")),
    )


def group_view(body: Body) -> GroupView:
    """Our plain view of a container group as ARM's ``get`` returns it (JSON, with its instance view).

    The SDK's ``get`` builds the whole ``ContainerGroup`` model first, a third of a ``get``'s client CPU for the
    handful of fields the reconciler reads; the fields and their wire names are the REST spec's
    (``ContainerGroupsGet_Failed.json``), and a contract test holds this view equal to one read from the model.
    """
    properties = body.get("properties") or {}
    instance = properties.get("instanceView") or {}
    return GroupView(
        name=body.get("name") or "",
        provisioning_state=properties.get("provisioningState"),
        state=instance.get("state"),
        tags=dict(body.get("tags") or {}),
        containers=tuple(_container(c) for c in properties.get("containers") or []),
        init_containers=tuple(_container(c) for c in properties.get("initContainers") or []),
        events=_events(instance.get("events")),
    )


def group_summary(body: Body) -> GroupSummary:
    """A group as ARM's paged list returns it: name, provisioning state, tags."""
    return GroupSummary(
        body.get("name") or "", (body.get("properties") or {}).get("provisioningState"), dict(body.get("tags") or {})
    )


def _next_page(next_link: Any, client: ContainerInstanceManagementClient) -> HttpRequest | None:
    """The request for a list's next page, with the client's api-version, as the SDK's pager builds it."""
    if not next_link:
        return None
    parsed = urllib.parse.urlparse(str(next_link))
    params = {
        key: [urllib.parse.quote(v) for v in values] for key, values in urllib.parse.parse_qs(parsed.query).items()
    }
    params["api-version"] = [client._config.api_version]
    return HttpRequest("GET", urllib.parse.urljoin(str(next_link), parsed.path), params=params)


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
            request: HttpRequest | None = build_list_by_resource_group_request(
                pool.resource_group, pool.subscription_id
            )
            while request is not None:
                page = self._read(client, request)
                for summary in map(group_summary, page.get("value") or []):
                    if summary.name:
                        found[summary.name] = summary
                request = _next_page(page.get("nextLink"), client)
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
                return group_view(
                    self._read(client, build_get_request(pool.resource_group, name, pool.subscription_id))
                )
            except ResourceNotFoundError:
                return None

    @staticmethod
    def _read(client: ContainerInstanceManagementClient, request: HttpRequest) -> Body:
        """Send a read through the client's pipeline (its credential, retry and ARM policies) and return the JSON
        body, raising for a status other than 200 exactly as the SDK's operations do."""
        response = client._send_request(request)
        if response.status_code != 200:
            map_error(status_code=response.status_code, response=response, error_map=ERROR_MAP)
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        body: Body = response.json()
        return body

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

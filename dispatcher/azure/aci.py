"""ACI container groups through ``azure-mgmt-containerinstance``: the ContainerGroups port."""

from __future__ import annotations

import threading
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import ContainerGroup

from dispatcher.errors import CloudError
from dispatcher.ports import CreateResult
from dispatcher.settings import Pool


def cloud_error(exc: Exception, action: str) -> CloudError:
    """Our error for an SDK failure that outlasted the SDK's retry budget; it names ARM's code, never a body."""
    if isinstance(exc, HttpResponseError):
        code = exc.error.code if exc.error is not None else None
        status = exc.status_code
        message = exc.error.message if exc.error is not None and exc.error.message else exc.reason or "error"
        transient = status is None or status == 429 or status >= 500 or code == "ContainerGroupQuotaReached"
        return CloudError(f"{action}: {code or status}: {message}", code=code, status=status, transient=transient)
    return CloudError(f"{action}: {type(exc).__name__}: {exc}", transient=True)


class AciContainerGroups:
    """Container groups in each pool's subscription and resource group; one management client per subscription."""

    def __init__(self, credential: TokenCredential, *, arm_endpoint: str, client_options: dict[str, Any]) -> None:
        self._credential = credential
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

    def create(self, pool: Pool, name: str, group: ContainerGroup) -> CreateResult:
        client = self.client(pool.subscription_id)
        try:
            poller = client.container_groups.begin_create_or_update(pool.resource_group, name, group, polling=False)
            accepted = poller.result()
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            raise cloud_error(exc, f"create {name} in {pool.name}") from None
        return CreateResult(provisioning_state=accepted.provisioning_state or "Pending")

    def delete(self, pool: Pool, name: str) -> None:
        client = self.client(pool.subscription_id)
        try:
            client.container_groups.begin_delete(pool.resource_group, name, polling=False).result()
        except ResourceNotFoundError:
            return
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            raise cloud_error(exc, f"delete {name} in {pool.name}") from None

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

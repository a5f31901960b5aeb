"""The CLI's composition root: what the CLI builds from the Azure SDKs itself, apart from the app's
(:mod:`dispatcher.bootstrap`), so that the CLI runs with its own packages only (``pip install .[cli]``): the
Service Bus SDK and azure-identity for ``submit --via servicebus`` and ``dlq``, and the ACI models for ``render``.

Service Bus is reached with a connection string (the local stack's) or with a fully qualified namespace and
``DefaultAzureCredential`` (a deployed namespace, which allows no local auth). The credential is built only for a
namespace of the Azure cloud named by ``DISPATCHER_CLOUD`` (:mod:`dispatcher.endpoints`), so it is never sent
anywhere else.
"""

from __future__ import annotations

import datetime as dt
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    AuthenticationRecord,
    AzureCliCredential,
    DefaultAzureCredential,
    DeviceCodeCredential,
    TokenCachePersistenceOptions,
)
from azure.servicebus import ServiceBusClient

from dispatcher import endpoints
from dispatcher.adapters.azure import mapping
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.adapters.azure.function_keys import default_function_key
from dispatcher.adapters.azure.servicebus import client_from_connection_string, open_dead_letters, send_submission
from dispatcher.core.arrays import group_capacity, group_spec
from dispatcher.domain.errors import CloudError, UnsafeConfiguration
from dispatcher.domain.spec import JobSpec
from dispatcher.domain.tasks import TaskRun
from dispatcher.ports import DeadLetters
from dispatcher.settings import DispatcherSettings, Pool

CLOUD_ENV = "DISPATCHER_CLOUD"
CREDENTIAL_ENV = "DISPATCHER_CREDENTIAL"
ARM_ENV = "DISPATCHER_ARM_ENDPOINT"


def _cloud() -> endpoints.Cloud:
    name = os.environ.get(CLOUD_ENV) or "AzureCloud"
    cloud = endpoints.CLOUDS.get(name)
    if cloud is None:
        raise UnsafeConfiguration(f"${CLOUD_ENV} is {name!r}; it is one of {', '.join(endpoints.CLOUDS)}")
    return cloud


@dataclass(frozen=True)
class ServiceBusAccess:
    """How the CLI reaches the jobs queue: a connection string, or a namespace and the signed-in identity."""

    connection_string: str | None = None
    namespace: str | None = None
    """Fully qualified: ``NAME.servicebus.windows.net``."""


def _client(access: ServiceBusAccess) -> ServiceBusClient:
    if access.namespace:
        namespace = f"sb://{access.namespace}"
        endpoints.check_azure("--servicebus-namespace", namespace, endpoints.namespace_host(_cloud()), scheme="sb")
        return ServiceBusClient(access.namespace, DefaultAzureCredential())
    return client_from_connection_string(access.connection_string or "")


def enqueue_submission(access: ServiceBusAccess, queue: str, body: bytes, message_id: str, content_type: str) -> None:
    """Send one job document straight to the jobs queue (for ``dispatcher submit --via servicebus``)."""
    send_submission(_client(access), queue, body, message_id, content_type)


def dead_letters(access: ServiceBusAccess, queue: str) -> AbstractContextManager[DeadLetters]:
    """The jobs queue's dead letters (for ``dispatcher dlq list`` and ``replay``)."""
    return open_dead_letters(_client(access), queue)


def render_group(spec: JobSpec, settings: DispatcherSettings, *, attempt: int, location: str) -> dict[str, Any]:
    """The container group body a launch of ``spec`` would PUT, every secret redacted (for ``dispatcher render``);
    for an array job, its first group's, packed for the first configured pool (or ACI's default group limits), and
    with that pool's container logs."""
    pool = (
        settings.pools[0]
        if settings.pools
        else Pool(name="p", subscription_id="", resource_group="", location=location)
    )
    if spec.tasks is not None:
        size = min(max(group_capacity(spec, pool), 1), spec.tasks.size)
        runs = [TaskRun(index=spec.tasks.index_at(p)) for p in range(size)]
        spec = group_spec(spec, runs).model_copy(update={"id": spec.id})
    now = dt.datetime.now(dt.UTC)
    return mapping.render(
        spec, settings, attempt=attempt, location=location, now=now, container_logs=pool.container_logs
    )


def function_key(subscription: str, resource_group: str, app: str) -> str:
    """A deployed app's default function key, read from ARM as the signed-in identity (``DefaultAzureCredential``,
    which includes azd's and az's sign-in). ``DISPATCHER_CREDENTIAL=devstack`` sends the development token to an
    ARM endpoint of this machine instead (``DISPATCHER_ARM_ENDPOINT``), as the app's settings do."""
    if os.environ.get(CREDENTIAL_ENV) == "devstack":
        arm = os.environ.get(ARM_ENV) or ""
        endpoints.check_loopback(ARM_ENV, arm)
        return default_function_key(DevstackCredential(), arm, subscription, resource_group, app, secure=False)
    cloud = _cloud()
    arm = os.environ.get(ARM_ENV) or f"https://{cloud.arm}"
    endpoints.check_azure(ARM_ENV, arm, cloud.arm)
    with DefaultAzureCredential() as credential:
        return default_function_key(credential, arm, subscription, resource_group, app)


AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
"""The Azure CLI's public client: the deployment pre-authorizes it for the API's scope."""
CACHE_NAME = "aci-dispatcher"
"""azure-identity's persistent cache of a device-code sign-in."""


def entra_token(
    method: str, scope: str, tenant: str | None, record: Path | None, *, prompt: bool = False
) -> tuple[str, float]:
    """A token for the API's ``scope`` (its value and expiry, epoch seconds) from azure-identity: the Azure CLI's
    account, or a device-code sign-in whose account is kept at ``record`` (azure-identity's AuthenticationRecord,
    no secret) and whose tokens azure-identity caches, encrypted; ``prompt`` lets it ask the user to sign in.
    Raises :class:`CloudError` when no token can be had."""
    credential: AzureCliCredential | DeviceCodeCredential
    try:
        if method == "device-code":
            known = AuthenticationRecord.deserialize(record.read_text()) if record and record.exists() else None
            credential = DeviceCodeCredential(
                client_id=AZURE_CLI_CLIENT_ID,
                tenant_id=tenant,
                cache_persistence_options=TokenCachePersistenceOptions(name=CACHE_NAME),
                authentication_record=AuthenticationRecord.deserialize(record.read_text())
                if known and record
                else None,
                disable_automatic_authentication=not prompt,
            )
            if prompt and record is not None:
                record.parent.mkdir(parents=True, exist_ok=True)
                record.write_text(credential.authenticate(scopes=[scope]).serialize())
        else:
            credential = AzureCliCredential(tenant_id=tenant or "")
        token = credential.get_token(scope)
    except ClientAuthenticationError as exc:
        raise CloudError(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__, transient=False) from None
    return token.token, float(token.expires_on)

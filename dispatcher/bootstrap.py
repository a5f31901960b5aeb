"""The composition root: the real adapters, built from the settings, lazily and once.

Nothing here runs at import time, because the Functions host imports ``function_app.py`` just to index
it. Moving between Azure and devstack changes only settings; the one named difference is the credential:
``DISPATCHER_CREDENTIAL=devstack`` uses the emulators' fixed token, and refuses to leave loopback.
"""

from __future__ import annotations

import functools
import os
import re
import urllib.request
from pathlib import Path
from typing import Any

from azure.core.credentials import TokenCredential
from azure.data.tables import TableClient
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from azure.servicebus import ServiceBusClient
from azure.storage.blob import BlobServiceClient
from azure.storage.fileshare import ShareServiceClient
from pydantic import TypeAdapter

from dispatcher import endpoints
from dispatcher.adapters.azure.aci import AciContainerGroups
from dispatcher.adapters.azure.blobs import BlobLogStore
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.adapters.azure.files import FileShares
from dispatcher.adapters.azure.keyvault import KeyVaultSecrets
from dispatcher.adapters.azure.servicebus import (
    ServiceBusEvents,
    ServiceBusJobQueue,
    ServiceBusWaker,
)
from dispatcher.adapters.azure.tables import (
    TableDependencies,
    TableIntents,
    TableJobRecords,
    TableLedger,
    TableOutbox,
    TableQueueIndex,
    TableRetention,
    TableSchedules,
)
from dispatcher.adapters.azure.tables.usage import TableUsage
from dispatcher.adapters.azure.tokens import EntraTokens
from dispatcher.domain.errors import UnsafeConfiguration
from dispatcher.ports import OffsetClock, SystemClock
from dispatcher.service.services import Services
from dispatcher.settings import DispatcherSettings

ARM_RETRIES = {"retry_total": 4, "retry_backoff_factor": 0.5, "retry_backoff_max": 8}


def check_endpoints(settings: DispatcherSettings) -> None:
    """Refuse settings that would send a real Azure credential anywhere but the exact Azure endpoints they name,
    or the development token anywhere but this machine (:mod:`dispatcher.endpoints`)."""
    urls = {
        "DISPATCHER_ARM_ENDPOINT": settings.arm_endpoint,
        "DISPATCHER_KEYVAULT_URL": settings.keyvault_url,
        "DISPATCHER_JOB_SECRETS_VAULT_URL": settings.job_secrets_vault_url,
        "DISPATCHER_TABLE_ENDPOINT": settings.table_endpoint,
        "DISPATCHER_BLOB_ENDPOINT": settings.blob_endpoint,
        "DISPATCHER_FILE_ENDPOINT": settings.file_endpoint,
    }
    if settings.servicebus_namespace:
        urls["ServiceBusConnection__fullyQualifiedNamespace"] = f"sb://{settings.servicebus_namespace}"
    for source, connection in (
        ("DISPATCHER_STORAGE_CONNECTION_STRING", settings.storage_connection_string),
        ("ServiceBusConnection", settings.servicebus_connection_string),
    ):
        for key, url in endpoints.connection_string_endpoints(connection).items():
            urls[f"{source} {key}"] = url
    for key, url in endpoints.telemetry_endpoints(settings.telemetry_connection_string).items():
        urls[f"APPLICATIONINSIGHTS_CONNECTION_STRING {key}"] = url
    urls = {name: url for name, url in urls.items() if url}
    if settings.credential == "devstack":
        for name, url in urls.items():
            endpoints.check_loopback(name, url)
        return
    if settings.clock_file:
        raise UnsafeConfiguration("DISPATCHER_CLOCK_FILE moves the dispatcher's clock and is for devstack only")
    if settings.storage_connection_string or settings.servicebus_connection_string:
        raise UnsafeConfiguration(
            "connection strings carry shared keys and are for devstack only: in Azure the dispatcher uses its "
            "managed identity (unset DISPATCHER_STORAGE_CONNECTION_STRING and ServiceBusConnection)"
        )
    cloud = endpoints.CLOUDS[settings.cloud]
    data = settings.data_account or settings.storage_account
    expected: dict[str, str | re.Pattern[str]] = {
        "DISPATCHER_ARM_ENDPOINT": cloud.arm,
        "DISPATCHER_KEYVAULT_URL": endpoints.vault_host(cloud),
        "DISPATCHER_JOB_SECRETS_VAULT_URL": endpoints.vault_host(cloud),
        "DISPATCHER_TABLE_ENDPOINT": endpoints.storage_host(data, "table", cloud),
        "DISPATCHER_BLOB_ENDPOINT": endpoints.storage_host(data, "blob", cloud),
        "DISPATCHER_FILE_ENDPOINT": endpoints.storage_host(settings.storage_account, "file", cloud),
        "ServiceBusConnection__fullyQualifiedNamespace": endpoints.namespace_host(cloud),
    }
    for name, url in urls.items():
        scheme = "sb" if name.startswith("ServiceBus") else "https"
        wanted = endpoints.monitor_host(cloud) if name.startswith("APPLICATIONINSIGHTS") else expected[name]
        endpoints.check_azure(name, url, wanted, scheme=scheme)


def credential_for(settings: DispatcherSettings) -> TokenCredential:
    """The credential of the settings' mode, after the endpoint check."""
    check_endpoints(settings)
    if settings.credential == "devstack":
        return DevstackCredential()
    return DefaultAzureCredential(managed_identity_client_id=os.environ.get("AZURE_CLIENT_ID"))


CA_BUNDLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
"""Where requests looks for a CA bundle in the environment, in its order, when none is given."""


def http_options(settings: DispatcherSettings) -> dict[str, Any]:
    """The options of every HTTP client: the CA bundle, and whether requests consults the environment.

    requests, with ``trust_env`` (azure-core's ``use_env_settings``), scans the whole environment for proxies,
    stats ``~/.netrc`` and looks up the CA bundle variables on every request: a large share of each call's CPU
    here. So the environment is read once, now: the CA bundle it names becomes the clients' (as requests would
    use it: only when the settings name none), and only when a proxy or ``NETRC`` is configured is the
    environment still consulted per request, so proxies keep working, ``no_proxy`` included.
    """
    bundle = settings.tls_ca_bundle or next((os.environ[n] for n in CA_BUNDLES if os.environ.get(n)), None)
    per_request = bool(urllib.request.getproxies()) or "NETRC" in os.environ
    return {"connection_verify": bundle or True, "use_env_settings": per_request}


def _vault(url: str, credential: TokenCredential, settings: DispatcherSettings) -> KeyVaultSecrets:
    devstack = settings.credential == "devstack"
    return KeyVaultSecrets(
        SecretClient(url, credential, verify_challenge_resource=not devstack, **http_options(settings))
    )


def build_services(settings: DispatcherSettings) -> Services:
    """Every adapter, configured from ``settings``."""
    credential = credential_for(settings)
    if not settings.job_secrets_vault_url or settings.job_secrets_vault_url == settings.keyvault_url:
        raise UnsafeConfiguration(
            "DISPATCHER_JOB_SECRETS_VAULT_URL must name a vault of its own: the secrets jobs may reference live apart "
            "from the dispatcher's (DISPATCHER_KEYVAULT_URL), which no job may read"
        )
    transport = http_options(settings)

    if settings.storage_connection_string:
        connection = settings.storage_connection_string
        table = TableClient.from_connection_string(connection, settings.jobs_table, **transport)
        file_service = ShareServiceClient.from_connection_string(connection, **transport)
        blob_service = BlobServiceClient.from_connection_string(connection, **transport)
    else:
        table = TableClient(settings.table_endpoint, settings.jobs_table, credential=credential, **transport)
        file_service = ShareServiceClient(
            settings.file_endpoint,
            credential=credential,
            token_intent="backup",  # noqa: S106 - not a password
            **transport,
        )
        blob_service = BlobServiceClient(settings.blob_endpoint, credential=credential, **transport)
    records = TableJobRecords(table)
    records.ensure_table()

    if settings.servicebus_connection_string:
        servicebus = ServiceBusClient.from_connection_string(settings.servicebus_connection_string)
    else:
        servicebus = ServiceBusClient(settings.servicebus_namespace, credential)

    return Services(
        settings=settings,
        records=records,
        queue=TableQueueIndex(table),
        intents=TableIntents(table),
        outbox=TableOutbox(table),
        retention=TableRetention(table),
        ledger=TableLedger(table),
        dependencies=TableDependencies(table),
        schedules=TableSchedules(table),
        groups=AciContainerGroups(
            credential, settings, arm_endpoint=settings.arm_endpoint, client_options={**transport, **ARM_RETRIES}
        ),
        secrets=_vault(settings.keyvault_url, credential, settings),
        job_secrets=_vault(settings.job_secrets_vault_url, credential, settings),
        shares=FileShares(file_service),
        events=ServiceBusEvents(servicebus, settings.events_topic),
        logs=BlobLogStore(blob_service, settings.logs_container),
        jobs_queue=ServiceBusJobQueue(servicebus, settings.jobs_queue),
        clock=OffsetClock(Path(settings.clock_file)) if settings.clock_file else SystemClock(),
        usage=TableUsage(table),
        tokens=EntraTokens(settings) if settings.auth_audience else None,
        waker=ServiceBusWaker(servicebus, settings.wake_queue, settings.reconcile_interval_seconds)
        if settings.wake
        else None,
    )


def function_keys_enabled() -> bool:
    """Whether the keyed routes are served (``DISPATCHER_FUNCTION_KEYS``), read when the app is indexed: only this
    one setting, so that indexing builds nothing else."""
    value = os.environ.get("DISPATCHER_FUNCTION_KEYS", "true")
    return bool(TypeAdapter(bool).validate_python(value))


@functools.cache
def settings() -> DispatcherSettings:
    """The app's settings, read once from the environment's ``DISPATCHER_*`` variables."""
    return DispatcherSettings()


@functools.cache
def services() -> Services:
    """The app's services, built on first use from :func:`settings`."""
    return build_services(settings())

"""The whole local stack: every emulator, the settings that point the dispatcher at them, and the runner.

``python -m devstack`` and ``make dev`` start it and leave it running; tests and ``make demo`` start it
on random ports. The settings it produces are the only difference between this stack and Azure.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from devstack.accounts import DEVSTORE_ACCOUNT_KEY, DEVSTORE_ACCOUNT_NAME
from devstack.aci import AciConfig, AciEmulator
from devstack.azurite import Azurite
from devstack.files import FilesEmulator
from devstack.host import FunctionsRunner
from devstack.identity import API_CLIENT_ID, DEFAULT_USER, TEAMS, TENANT_ID, IdentityIssuer
from devstack.keyvault import KeyVaultEmulator
from devstack.servicebus import ServiceBusEmulator, default_config
from devstack.tls import ensure_dev_certificate
from dispatcher.bootstrap import services
from dispatcher.bootstrap import settings as app_settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SUBSCRIPTION = "00000000-0000-0000-0000-0000000000d1"
RESOURCE_GROUP = "dispatcher-jobs"
LOCATION = "westeurope"
JOBS_QUEUE = "jobs"
WAKE_QUEUE = "wake"
EVENTS_TOPIC = "job-events"
EVENTS_SUBSCRIPTION = "all"

DISPATCHER_SECRETS = {"storage-account-key": DEVSTORE_ACCOUNT_KEY}
"""The dispatcher's own vault: the storage key ACI's azureFile mounts need. No job can reference it."""
JOB_SECRETS = {"api-token": "devstack-api-token-6f1d", "db-password": "devstack-db-password-93ab"}
"""The job-secrets vault: the examples' credentials, and the inline values jobs send."""

DATASETS = {"orders-2026-11-21.csv": "id,amount\n1,10\n2,32\n", "orders-2026-11-22.csv": "id,amount\n3,7\n"}
"""Files seeded into the example ``datasets`` share."""


@dataclass
class StackOptions:
    """How to start the stack."""

    state_dir: Path
    app_dir: Path = ROOT
    http_port: int = 0
    aci_mode: Literal["run", "simulate"] = "run"
    time_scale: float = 1.0
    reconcile_schedule: str = "*/2 * * * * *"
    wake: bool = True
    """Whether runs wake the reconciler while work is active (off where a test runs it by hand)."""
    runner: bool = True
    extra_settings: dict[str, str] = field(default_factory=dict)
    aci_overrides: dict[str, Any] = field(default_factory=dict)
    azurite_in_memory: bool = False
    """Azurite keeps its data in memory only (nothing survives a restart), sparing it the periodic save of
    every entity to disk: for benchmarks."""


class Stack:
    """Every devstack emulator plus the Functions runner hosting ``function_app.py``."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.tls = ensure_dev_certificate(options.state_dir / "tls")
        self.files_root = options.state_dir / "files"
        self.files = FilesEmulator(self.files_root, {DEVSTORE_ACCOUNT_NAME: DEVSTORE_ACCOUNT_KEY})
        self.aci = AciEmulator(
            AciConfig(
                state_dir=options.state_dir / "aci",
                files_root=self.files_root,
                tls=self.tls,
                mode=options.aci_mode,
                time_scale=options.time_scale,
                storage_accounts={DEVSTORE_ACCOUNT_NAME: DEVSTORE_ACCOUNT_KEY},
                lro_retry_after_seconds=0.5,
                **options.aci_overrides,
            )
        )
        self.keyvault = KeyVaultEmulator(_secrets_file(options.state_dir / "keyvault", DISPATCHER_SECRETS), self.tls)
        self.job_vault = KeyVaultEmulator(_secrets_file(options.state_dir / "job-vault", JOB_SECRETS), self.tls)
        self.identity = IdentityIssuer(options.state_dir / "identity", self.tls)
        self.servicebus = ServiceBusEmulator(
            default_config(
                queues={
                    JOBS_QUEUE: {
                        "MaxDeliveryCount": 10,
                        "LockDuration": "PT1M",
                        "RequiresDuplicateDetection": True,
                        "DuplicateDetectionHistoryTimeWindow": "PT10M",
                        "DeadLetteringOnMessageExpiration": True,
                    },
                    WAKE_QUEUE: {
                        "MaxDeliveryCount": 1,
                        "LockDuration": "PT5M",
                        "RequiresDuplicateDetection": True,
                        "DuplicateDetectionHistoryTimeWindow": "PT10M",
                        "DefaultMessageTimeToLive": "PT10M",
                    },
                },
                topics={EVENTS_TOPIC: [EVENTS_SUBSCRIPTION]},
            )
        )
        self.azurite = Azurite(options.state_dir / "azurite", in_memory=options.azurite_in_memory)
        self.runner: FunctionsRunner | None = None
        self._started: list[Any] = []

    @property
    def storage_connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEVSTORE_ACCOUNT_NAME};AccountKey={DEVSTORE_ACCOUNT_KEY};"
            f"BlobEndpoint={self.azurite.blob_url};TableEndpoint={self.azurite.table_url};"
            f"FileEndpoint={self.files.account_url(DEVSTORE_ACCOUNT_NAME)};"
        )

    @property
    def clock_file(self) -> Path:
        """Seconds added to the dispatcher's clock (:class:`~dispatcher.ports.OffsetClock`); none until written."""
        return self.options.state_dir / "dispatcher-clock-offset"

    def advance_clock(self, seconds: float) -> None:
        """Move the dispatcher's clock forward: a test reaches a schedule's due time without waiting for it. Only
        the dispatcher's time moves; the emulators keep theirs."""
        current = float(self.clock_file.read_text()) if self.clock_file.exists() else 0.0
        self.clock_file.write_text(str(current + seconds))

    def token(self, user: str = DEFAULT_USER) -> str:
        """An access token for the API from this stack's Entra ID issuer, for a development user
        (:data:`devstack.identity.DEV_USERS`); send it as ``Authorization: Bearer ...``."""
        return self.identity.token(user)

    def pool(self) -> dict[str, Any]:
        return {"name": "local", "subscriptionId": SUBSCRIPTION, "resourceGroup": RESOURCE_GROUP, "location": LOCATION}

    def settings(self) -> dict[str, str]:
        """The app settings that point the dispatcher and the Functions host at this stack."""
        values = {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": self.azurite.connection_string,
            "ServiceBusConnection": self.servicebus.connection_string,
            "DISPATCHER_CREDENTIAL": "devstack",
            "DISPATCHER_INSTANCE": "devstack",
            "DISPATCHER_ARM_ENDPOINT": self.aci.url,
            "DISPATCHER_KEYVAULT_URL": self.keyvault.url,
            "DISPATCHER_JOB_SECRETS_VAULT_URL": self.job_vault.url,
            "DISPATCHER_TLS_CA_BUNDLE": str(self.tls.ca),
            "DISPATCHER_STORAGE_CONNECTION_STRING": self.storage_connection_string,
            "DISPATCHER_TABLE_ENDPOINT": self.azurite.table_url,
            "DISPATCHER_BLOB_ENDPOINT": self.azurite.blob_url,
            "DISPATCHER_FILE_ENDPOINT": self.files.account_url(DEVSTORE_ACCOUNT_NAME),
            "DISPATCHER_STORAGE_ACCOUNT": DEVSTORE_ACCOUNT_NAME,
            "DISPATCHER_ALLOWED_SHARES": json.dumps(["datasets"]),
            "DISPATCHER_POOLS": json.dumps([self.pool()]),
            "DISPATCHER_JOBS_QUEUE": JOBS_QUEUE,
            "DISPATCHER_WAKE_QUEUE": WAKE_QUEUE,
            "DISPATCHER_WAKE": "true" if self.options.wake else "false",
            "DISPATCHER_EVENTS_TOPIC": EVENTS_TOPIC,
            "DISPATCHER_RECONCILE_SCHEDULE": self.options.reconcile_schedule,
            "DISPATCHER_ORPHAN_GRACE_SECONDS": "30",
            "DISPATCHER_STUCK_GRACE_SECONDS": "20",
            "DISPATCHER_TICK_BUDGET_SECONDS": "20",
            "DISPATCHER_CLOCK_FILE": str(self.clock_file),
            "DISPATCHER_AUTH_TENANT_ID": TENANT_ID,
            "DISPATCHER_AUTH_AUDIENCE": API_CLIENT_ID,
            "DISPATCHER_AUTH_AUTHORITY": self.identity.authority,
            "DISPATCHER_TEAMS": json.dumps(TEAMS),
        }
        values.update(self.options.extra_settings)
        return values

    def start(self) -> Stack:
        """Start every emulator, seed the example share, then the runner (unless disabled)."""
        try:
            components = (
                self.identity,
                self.files,
                self.aci,
                self.keyvault,
                self.job_vault,
                self.servicebus,
                self.azurite,
            )
            for component in components:
                component.start()
                self._started.append(component)
            self._seed()
            self._write_local_settings()
            if self.options.runner:
                self.start_runner()
        except BaseException:
            self.stop()
            raise
        return self

    def problems(self) -> list[str]:
        """What is wrong with the running stack: an emulator that stopped on its own, each with why. Empty when
        healthy."""
        found = [self.servicebus.failure] if self.servicebus.failure else []
        if self._started and self.servicebus in self._started and not self.servicebus.is_running:
            found.append(self.servicebus.failure or "the Service Bus emulator is not running")
        return list(dict.fromkeys(found))

    def start_runner(self) -> FunctionsRunner:
        """Start the Functions runner on the app with this stack's settings."""
        _forget_services()
        self.runner = FunctionsRunner(
            self.options.app_dir,
            self.settings(),
            http_port=self.options.http_port,
            keys_file=self.options.state_dir / "host-keys.json",
            servicebus_connection=self.servicebus.connection_string,
            local_settings_file=self.options.state_dir / "local.settings.json",
        ).start()
        return self.runner

    def _seed(self) -> None:
        share = self.files.share_folder(DEVSTORE_ACCOUNT_NAME, "datasets")
        share.mkdir(parents=True, exist_ok=True)
        for name, text in DATASETS.items():
            (share / name).write_text(text)

    def _write_local_settings(self) -> None:
        path = self.options.state_dir / "local.settings.json"
        path.write_text(json.dumps({"IsEncrypted": False, "Values": self.settings()}, indent=2))
        path.chmod(0o600)

    def stop(self) -> None:
        """Stop the runner first (it finishes in-flight invocations), then the emulators."""
        if self.runner is not None:
            self.runner.stop()
            self.runner = None
        _forget_services()
        while self._started:
            component = self._started.pop()
            try:
                component.stop()
            except Exception:  # keep stopping the rest
                log.exception("stopping %s failed", type(component).__name__)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _secrets_file(folder: Path, secrets: dict[str, str]) -> Path:
    """A vault's seed file, readable by this user only."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secrets.json"
    path.write_text(json.dumps(secrets, indent=2))
    path.chmod(0o600)
    return path


def _forget_services() -> None:
    """The app's services are built once per process, as in a Functions worker; a new stack needs new ones."""
    services.cache_clear()
    app_settings.cache_clear()

"""Every port's contract suite runs against its in-memory fake and its Azure adapter over the devstack emulator.

Each fixture here is parametrized over both (``params=["fake", "azure"]``), as dramatiq's ``tests/conftest.py``
parametrizes its backends: a contract test that passes for one and not the other is a fake that drifted.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.keyvault.secrets import SecretClient
from azure.servicebus import ServiceBusClient
from azure.storage.blob import BlobServiceClient
from azure.storage.fileshare import ShareServiceClient

from devstack.accounts import DEVSTORE_ACCOUNT_NAME
from devstack.azurite import Azurite
from devstack.keyvault import KeyVaultEmulator
from dispatcher.adapters.azure.aci import AciContainerGroups
from dispatcher.adapters.azure.blobs import BlobLogStore
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.adapters.azure.files import FileShares
from dispatcher.adapters.azure.keyvault import KeyVaultSecrets
from dispatcher.adapters.azure.servicebus import ServiceBusEvents, ServiceBusJobQueue
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
from dispatcher.ports import (
    ContainerGroups,
    Dependencies,
    Events,
    Intents,
    JobQueue,
    JobRecords,
    LogStore,
    Outbox,
    PoolLedger,
    QueueIndex,
    Retention,
    Schedules,
    Secrets,
    Shares,
    UsageLedger,
)
from dispatcher.settings import DispatcherSettings, Pool
from tests.fakes import (
    FakeContainerGroups,
    FakeEvents,
    FakeJobData,
    FakeJobQueue,
    FakeLedger,
    FakeLogStore,
    FakeOutbox,
    FakeSchedules,
    FakeSecrets,
    FakeShares,
    FakeUsage,
)
from tests.fixtures.servicebus import Entities

BACKENDS = ["fake", "azure"]


@dataclass(frozen=True)
class JobData:
    """The ports over the job partition, from one backend."""

    records: JobRecords
    queue: QueueIndex
    intents: Intents
    outbox: Outbox
    retention: Retention
    dependencies: Dependencies
    schedules: Schedules
    usage: UsageLedger
    table: TableClient | None = None


def _table(azurite: Azurite) -> TableClient:
    table = TableClient.from_connection_string(azurite.connection_string, f"jobs{uuid.uuid4().hex[:12]}")
    TableJobRecords(table).ensure_table()
    return table


@pytest.fixture(params=BACKENDS)
def job_data(request: pytest.FixtureRequest) -> Iterator[JobData]:
    if request.param == "fake":
        fake = FakeJobData()
        yield JobData(fake, fake, fake, FakeOutbox(fake), fake, fake, FakeSchedules(fake), FakeUsage(fake))
        return
    table = _table(request.getfixturevalue("azurite"))
    yield JobData(
        TableJobRecords(table),
        TableQueueIndex(table),
        TableIntents(table),
        TableOutbox(table),
        TableRetention(table),
        TableDependencies(table),
        TableSchedules(table),
        TableUsage(table),
        table,
    )
    table.delete_table()


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest) -> Iterator[PoolLedger]:
    if request.param == "fake":
        yield FakeLedger()
        return
    table = _table(request.getfixturevalue("azurite"))
    yield TableLedger(table)
    table.delete_table()


# --- the ports over the other emulators -----------------------------------------------------------------------


@dataclass
class Vault:
    """A Secrets port, and how a test seeds a value into the vault behind it."""

    secrets: Secrets
    seed: Callable[[str, str], None]


@pytest.fixture(params=BACKENDS)
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Vault]:
    if request.param == "fake":
        fake = FakeSecrets()
        yield Vault(fake, lambda name, value: fake.versions.setdefault(name, []).append(("v-seed", value)))
        return
    tls = request.getfixturevalue("dev_tls")
    seed_file = tmp_path / "vault.json"
    seed_file.write_text("{}")
    with KeyVaultEmulator(seed_file, tls) as emulator:
        client = SecretClient(
            emulator.url, DevstackCredential(), verify_challenge_resource=False, connection_verify=str(tls.ca)
        )
        yield Vault(KeyVaultSecrets(client), lambda name, value: emulator.vault.set(name, value, {}, None) and None)
        client.close()


@dataclass
class Workspaces:
    """A Shares port, and how a test writes a file into a share behind it."""

    shares: Shares
    put: Callable[[str, str, bytes], None]


@pytest.fixture(params=BACKENDS)
def workspaces(request: pytest.FixtureRequest) -> Iterator[Workspaces]:
    if request.param == "fake":
        fake = FakeShares()
        yield Workspaces(fake, fake.put)
        return
    emulator = request.getfixturevalue("files_emulator")
    service = ShareServiceClient.from_connection_string(emulator.connection_string(DEVSTORE_ACCOUNT_NAME))

    def put(share: str, path: str, data: bytes) -> None:
        client = service.get_share_client(share)
        folder = ""
        for part in path.split("/")[:-1]:
            folder = f"{folder}/{part}" if folder else part
            with contextlib.suppress(ResourceExistsError):
                client.create_directory(folder)
        client.get_file_client(path).upload_file(data)

    yield Workspaces(FileShares(service), put)


@pytest.fixture(params=BACKENDS)
def log_store(request: pytest.FixtureRequest) -> Iterator[LogStore]:
    if request.param == "fake":
        yield FakeLogStore()
        return
    azurite: Azurite = request.getfixturevalue("azurite")
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    name = f"logs-{uuid.uuid4().hex[:12]}"
    yield BlobLogStore(service, name)
    with contextlib.suppress(ResourceNotFoundError):
        service.delete_container(name)


@dataclass
class Messaging:
    """The JobQueue and Events ports, and what a test reads back from the queue and the events subscription."""

    queue: JobQueue
    events: Events
    sent: Callable[[], list[tuple[bytes, str, str]]]
    published: Callable[[], list[str]]


@pytest.fixture(params=BACKENDS)
def messaging(request: pytest.FixtureRequest) -> Iterator[Messaging]:
    if request.param == "fake":
        queue, events = FakeJobQueue(), FakeEvents()
        yield Messaging(queue, events, lambda: list(queue.sent), lambda: [e.id for e in events.published])
        return
    entities: Entities = request.getfixturevalue("servicebus_emulator")
    client = ServiceBusClient.from_connection_string(entities.connection_string)

    def sent() -> list[tuple[bytes, str, str]]:
        with client.get_queue_receiver(entities.name("test-queue"), max_wait_time=2) as receiver:
            got = receiver.receive_messages(max_message_count=50, max_wait_time=2)
            for message in got:
                receiver.complete_message(message)
        return [(b"".join(m.body), str(m.message_id), str(m.content_type)) for m in got]

    def published() -> list[str]:
        with client.get_subscription_receiver(entities.name("job-events"), "all", max_wait_time=2) as receiver:
            got = receiver.receive_messages(max_message_count=50, max_wait_time=2)
            for message in got:
                receiver.complete_message(message)
        return [str(m.message_id) for m in got]

    queue = ServiceBusJobQueue(client, entities.name("test-queue"))
    events = ServiceBusEvents(client, entities.name("job-events"))
    yield Messaging(queue, events, sent, published)
    queue.close()
    events.close()
    client.close()


ACI_POOL = Pool(
    name="local", subscription_id="00000000-0000-0000-0000-00000000c0de", resource_group="jobs", location="westeurope"
)


@pytest.fixture(params=BACKENDS)
def container_groups(request: pytest.FixtureRequest) -> Iterator[ContainerGroups]:
    settings = DispatcherSettings(pools=[ACI_POOL], instance="contract")
    if request.param == "fake":
        yield FakeContainerGroups(settings)
        return
    emulator = request.getfixturevalue("make_aci_emulator")()
    tls = request.getfixturevalue("dev_tls")
    adapter = AciContainerGroups(
        DevstackCredential(), settings, arm_endpoint=emulator.url, client_options={"connection_verify": str(tls.ca)}
    )
    yield adapter
    adapter.close()

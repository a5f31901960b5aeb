"""Every port's contract suite runs against its in-memory fake and its Azure adapter over the devstack emulator.

Each fixture here is parametrized over both (``params=["fake", "azure"]``), as dramatiq's ``tests/conftest.py``
parametrizes its backends: a contract test that passes for one and not the other is a fake that drifted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.data.tables import TableClient

from devstack.azurite import Azurite
from dispatcher.adapters.azure.tables import TableJobRecords, TableLedger, TableOutbox, TableQueueIndex, TableRetention
from dispatcher.ports import JobRecords, Outbox, PoolLedger, QueueIndex, Retention
from tests.fakes import FakeJobData, FakeLedger, FakeOutbox

BACKENDS = ["fake", "azure"]


@dataclass(frozen=True)
class JobData:
    """The four ports over the job partition, from one backend."""

    records: JobRecords
    queue: QueueIndex
    outbox: Outbox
    retention: Retention
    table: TableClient | None = None


def _table(azurite: Azurite) -> TableClient:
    table = TableClient.from_connection_string(azurite.connection_string, f"jobs{uuid.uuid4().hex[:12]}")
    TableJobRecords(table).ensure_table()
    return table


@pytest.fixture(params=BACKENDS)
def job_data(request: pytest.FixtureRequest) -> Iterator[JobData]:
    if request.param == "fake":
        fake = FakeJobData()
        yield JobData(fake, fake, FakeOutbox(fake), fake)
        return
    table = _table(request.getfixturevalue("azurite"))
    yield JobData(TableJobRecords(table), TableQueueIndex(table), TableOutbox(table), TableRetention(table), table)
    table.delete_table()


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest) -> Iterator[PoolLedger]:
    if request.param == "fake":
        yield FakeLedger()
        return
    table = _table(request.getfixturevalue("azurite"))
    yield TableLedger(table)
    table.delete_table()


def backend_of(request: Any) -> str:
    return str(request.node.callspec.params.get("backend", ""))

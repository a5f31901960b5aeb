"""The job store on Azure Table Storage (Azurite locally): records, indexes, outbox, schedules and ledger on one
table."""

from dispatcher.adapters.azure.tables.jobs import (
    TableDependencies,
    TableIntents,
    TableJobRecords,
    TableOutbox,
    TableQueueIndex,
    TableRetention,
)
from dispatcher.adapters.azure.tables.ledger import TableLedger
from dispatcher.adapters.azure.tables.schedules import TableSchedules

__all__ = [
    "TableDependencies",
    "TableIntents",
    "TableJobRecords",
    "TableLedger",
    "TableOutbox",
    "TableQueueIndex",
    "TableRetention",
    "TableSchedules",
]

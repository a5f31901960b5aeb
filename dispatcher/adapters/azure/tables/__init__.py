"""The job store on Azure Table Storage (Azurite locally): records, indexes, outbox and ledger on one table."""

from dispatcher.adapters.azure.tables.jobs import (
    TableIntents,
    TableJobRecords,
    TableOutbox,
    TableQueueIndex,
    TableRetention,
)
from dispatcher.adapters.azure.tables.ledger import TableLedger

__all__ = ["TableIntents", "TableJobRecords", "TableLedger", "TableOutbox", "TableQueueIndex", "TableRetention"]

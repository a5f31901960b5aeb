"""Azurite, started from node_modules, serves the Table and Blob SDKs."""

import uuid
from pathlib import Path

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient

from devstack.azurite import Azurite, AzuriteNotInstalled


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def test_table_entities_are_upserted_and_queried_with_a_filter(azurite: Azurite) -> None:
    # Given a new table with entities in two states
    table = TableServiceClient.from_connection_string(azurite.connection_string).create_table(_unique("jobs"))
    table.upsert_entity({"PartitionKey": "jobs", "RowKey": "j1", "state": "Queued"})
    table.upsert_entity({"PartitionKey": "jobs", "RowKey": "j2", "state": "Running"})

    # When it is queried with a filter
    rows = list(table.query_entities("state eq @state", parameters={"state": "Running"}))

    # Then only the matching entity comes back
    assert [row["RowKey"] for row in rows] == ["j2"]


def test_update_with_a_stale_etag_is_refused(azurite: Azurite) -> None:
    # Given an entity read by two writers
    table = TableServiceClient.from_connection_string(azurite.connection_string).create_table(_unique("jobs"))
    table.upsert_entity({"PartitionKey": "jobs", "RowKey": "j1", "state": "Queued"})
    first = table.get_entity("jobs", "j1")
    second = table.get_entity("jobs", "j1")

    # When the first writer updates on its ETag
    first["state"] = "Launching"
    table.update_entity(
        first, mode=UpdateMode.REPLACE, etag=first.metadata["etag"], match_condition=MatchConditions.IfNotModified
    )

    # Then the second writer's update on the old ETag fails, and the first write stands
    second["state"] = "Cancelled"
    with pytest.raises(ResourceModifiedError):
        table.update_entity(
            second, mode=UpdateMode.REPLACE, etag=second.metadata["etag"], match_condition=MatchConditions.IfNotModified
        )
    assert table.get_entity("jobs", "j1")["state"] == "Launching"


def test_blob_upload_downloads_identically(azurite: Azurite) -> None:
    container = BlobServiceClient.from_connection_string(azurite.connection_string).create_container(_unique("logs"))

    container.upload_blob("job-1/stdout.txt", b"hello from the job\n")

    assert container.download_blob("job-1/stdout.txt").readall() == b"hello from the job\n"


def test_missing_installation_says_to_run_make_setup(tmp_path: Path) -> None:
    with pytest.raises(AzuriteNotInstalled, match="make setup"):
        Azurite(tmp_path / "data", bin_dir=tmp_path / "no-node-modules").start()

"""One contract for the Secrets port, run against the fake and the Key Vault adapter over the vault emulator."""

from __future__ import annotations

import pytest

from dispatcher.domain.errors import CloudError, SecretNotFound
from tests.contract.conftest import Vault


def test_a_secret_reads_by_name_and_by_version(vault: Vault) -> None:
    vault.seed("api-token", "first")
    version = vault.secrets.set("api-token", "second", tags={"dispatcher-job": "job-1"})
    assert vault.secrets.get("api-token") == "second"
    assert vault.secrets.get(f"api-token/{version}") == "second"
    assert version


def test_a_missing_secret_or_version_is_secret_not_found_naming_the_reference(vault: Vault) -> None:
    vault.seed("api-token", "value")
    with pytest.raises(SecretNotFound, match="no-such"):
        vault.secrets.get("no-such")
    with pytest.raises(SecretNotFound):
        vault.secrets.get("api-token/0000000000000000000000000000000f")


def test_a_deleted_secret_is_gone_its_delete_idempotent_and_its_name_never_reused(vault: Vault) -> None:
    vault.secrets.set("job-1-ab12-0", "inline", tags={})
    vault.secrets.delete("job-1-ab12-0")
    vault.secrets.delete("job-1-ab12-0")
    vault.secrets.delete("never-was")
    with pytest.raises(SecretNotFound):
        vault.secrets.get("job-1-ab12-0")
    # Purge protection keeps the deleted name: a new secret needs a new name
    with pytest.raises(CloudError) as refused:
        vault.secrets.set("job-1-ab12-0", "again", tags={})
    assert (refused.value.status, refused.value.transient) == (409, False)

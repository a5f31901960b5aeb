"""The Key Vault secrets emulator, driven through the unmodified azure-keyvault-secrets SDK."""

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import SecretClient

from devstack.keyvault import KeyVaultEmulator, SecretsFileError
from devstack.tls import TLSFiles
from dispatcher.adapters.azure.credential import DEVSTACK_TOKEN, DevstackCredential


class _OtherTokenCredential:
    """A credential that hands out a token the emulator has never issued."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("someone-elses-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        return AccessTokenInfo("someone-elses-token", int(time.time()) + 3600)


def _client(emulator: KeyVaultEmulator, tls: TLSFiles, credential: Any | None = None) -> SecretClient:
    return SecretClient(
        vault_url=emulator.url,
        credential=credential or DevstackCredential(),
        connection_verify=str(tls.ca),
        verify_challenge_resource=False,
    )


def test_latest_version_is_returned_without_a_version(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    with _client(keyvault_emulator, dev_tls) as client:
        secret = client.get_secret("api-key")

    assert secret.value == "new-api-key"
    assert secret.name == "api-key"
    assert secret.properties.version == "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"


def test_plain_secret_has_a_stable_version(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    with _client(keyvault_emulator, dev_tls) as client:
        first = client.get_secret("db-password")
        again = client.get_secret("db-password", first.properties.version)

    assert first.value == again.value == "correct-horse-battery-staple"
    assert first.properties.enabled


def test_a_named_version_is_returned(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    with _client(keyvault_emulator, dev_tls) as client:
        secret = client.get_secret("api-key", "1f0c5e1c6a6b4c7e9a3b2d4e5f6a7b8c")

    assert secret.value == "old-api-key"


def test_missing_secret_raises_resource_not_found(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    with _client(keyvault_emulator, dev_tls) as client, pytest.raises(ResourceNotFoundError) as raised:
        client.get_secret("no-such-secret")
    assert raised.value.error is not None
    assert raised.value.error.code == "SecretNotFound"


def test_missing_version_raises_resource_not_found(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    with _client(keyvault_emulator, dev_tls) as client, pytest.raises(ResourceNotFoundError):
        client.get_secret("api-key", "0000000000000000000000000000000f")


def test_first_request_is_challenged_then_authorized(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    # Given a fresh vault that has challenged nobody
    assert keyvault_emulator.challenges == 0

    # When a client reads a secret twice
    with _client(keyvault_emulator, dev_tls) as client:
        client.get_secret("db-password")
        client.get_secret("db-password")

    # Then only the first request was answered with a bearer challenge
    assert keyvault_emulator.challenges == 1
    assert keyvault_emulator.rejected_tokens == 0


def test_challenge_names_the_key_vault_resource(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    with requests.Session() as session:
        response = session.get(
            f"{keyvault_emulator.url}/secrets/db-password/?api-version=7.6", verify=str(dev_tls.ca), timeout=30
        )

    assert response.status_code == 401
    assert 'resource="https://vault.azure.net"' in response.headers["WWW-Authenticate"]
    assert response.json()["error"]["code"] == "Unauthorized"
    assert "correct-horse" not in response.text


def test_any_other_token_is_rejected(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    with (
        _client(keyvault_emulator, dev_tls, _OtherTokenCredential()) as client,
        pytest.raises(ClientAuthenticationError),
    ):
        client.get_secret("db-password")
    assert keyvault_emulator.rejected_tokens >= 1


def test_request_without_api_version_is_a_bad_request(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    with requests.Session() as session:
        response = session.get(
            f"{keyvault_emulator.url}/secrets/db-password",
            headers={"Authorization": f"Bearer {DEVSTACK_TOKEN}"},
            verify=str(dev_tls.ca),
            timeout=30,
        )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadParameter"


def test_secrets_file_changes_are_picked_up(tmp_path: Path, dev_tls: TLSFiles) -> None:
    # Given a vault serving one value
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"token": "first"}))
    with KeyVaultEmulator(secrets_file, dev_tls) as emulator, _client(emulator, dev_tls) as client:
        assert client.get_secret("token").value == "first"

        # When the file gains a newer version
        secrets_file.write_text(json.dumps({"token": [{"version": "v1", "value": "first"}, {"value": "second"}]}))

        # Then the latest is the new one
        assert client.get_secret("token").value == "second"


def test_malformed_secrets_file_is_refused_at_start(tmp_path: Path, dev_tls: TLSFiles) -> None:
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"bad name!": "x"}))

    with pytest.raises(SecretsFileError, match="bad name"):
        KeyVaultEmulator(secrets_file, dev_tls).start()


def test_a_set_secret_gets_a_new_version_and_both_are_listed(
    keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles
) -> None:
    with _client(keyvault_emulator, dev_tls) as client:
        first = client.set_secret("job-1-ab-0", "one", tags={"dispatcher-job": "job-1"}, content_type="text/plain")
        second = client.set_secret("job-1-ab-0", "two")
        assert client.get_secret("job-1-ab-0").value == "two"
        assert client.get_secret("job-1-ab-0", first.properties.version).value == "one"
        versions = {p.version for p in client.list_properties_of_secret_versions("job-1-ab-0")}
        names = {p.name for p in client.list_properties_of_secrets()}
    assert versions == {first.properties.version, second.properties.version}
    assert first.properties.tags == {"dispatcher-job": "job-1"}
    assert names == {"db-password", "api-key", "job-1-ab-0"}


def test_versions_is_a_route_not_a_version_named_versions(
    keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles
) -> None:
    with _client(keyvault_emulator, dev_tls) as client:
        versions = [p.version for p in client.list_properties_of_secret_versions("api-key")]
    assert versions == ["1f0c5e1c6a6b4c7e9a3b2d4e5f6a7b8c", "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"]


def test_a_deleted_secret_is_soft_deleted_recoverable_and_its_name_not_reusable(
    keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles
) -> None:
    with _client(keyvault_emulator, dev_tls) as client:
        client.set_secret("temp", "value")
        deleted = client.begin_delete_secret("temp", _polling_interval=0.05).result()
        assert deleted.recovery_id is not None
        with pytest.raises(ResourceNotFoundError):
            client.get_secret("temp")
        assert client.get_deleted_secret("temp").name == "temp"
        assert [d.name for d in client.list_deleted_secrets()] == ["temp"]
        with pytest.raises(ResourceExistsError, match="deleted but recoverable"):
            client.set_secret("temp", "again")
        with pytest.raises(HttpResponseError, match="purge protection"):
            client.purge_deleted_secret("temp")
        client.begin_recover_deleted_secret("temp", _polling_interval=0.05).result()
        assert client.get_secret("temp").value == "value"


def test_listing_follows_next_links(keyvault_emulator: KeyVaultEmulator, dev_tls: TLSFiles) -> None:
    with _client(keyvault_emulator, dev_tls) as client:
        for n in range(30):
            client.set_secret(f"many-{n}", "x")
        names = [p.name for p in client.list_properties_of_secrets(max_page_size=7)]
    assert len([n for n in names if n and n.startswith("many-")]) == 30

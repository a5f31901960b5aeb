"""Secrets from Azure Key Vault through ``azure-keyvault-secrets``: the Secrets port."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from dispatcher.domain.errors import SecretNotFound


class KeyVaultSecrets:
    """Reads secrets by ``name`` or ``name/version``; values are returned, never logged or kept."""

    def __init__(self, client: SecretClient) -> None:
        self._client = client

    def get(self, key: str) -> str:
        name, _, version = key.partition("/")
        try:
            secret = self._client.get_secret(name, version or None)
        except ResourceNotFoundError:
            raise SecretNotFound(key) from None
        if secret.value is None:
            raise SecretNotFound(key)
        return secret.value

"""Secrets in Azure Key Vault through ``azure-keyvault-secrets``: the Secrets port, one instance per vault."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from azure.core.exceptions import ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from dispatcher.adapters.azure.errors import translated
from dispatcher.domain.errors import SecretNotFound


class KeyVaultSecrets:
    """One vault's secrets by ``name`` or ``name/version``; values are returned, never logged or kept."""

    def __init__(self, client: SecretClient) -> None:
        self._client = client

    def get(self, key: str) -> str:
        name, _, version = key.partition("/")
        with translated(f"read secret {name!r}"):
            try:
                secret = self._client.get_secret(name, version or None)
            except ResourceNotFoundError:
                raise SecretNotFound(key) from None
        if secret.value is None:
            raise SecretNotFound(key)
        return secret.value

    def set(self, name: str, value: str, *, tags: Mapping[str, str]) -> str:
        with translated(f"write secret {name!r}"):
            secret = self._client.set_secret(name, value, tags=dict(tags), content_type="text/plain")
        return str(secret.properties.version or "")

    def delete(self, name: str) -> None:
        """Delete ``name``: the vault keeps it soft-deleted for its retention period (purge protection)."""
        with translated(f"delete secret {name!r}"), contextlib.suppress(ResourceNotFoundError):
            self._client.begin_delete_secret(name)

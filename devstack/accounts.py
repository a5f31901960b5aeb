"""The storage accounts devstack serves: Azurite's well-known development account and its key."""

from __future__ import annotations

DEVSTORE_ACCOUNT_NAME = "devstoreaccount1"
"""The account name Azurite and the Azure SDKs use for local development storage."""

DEVSTORE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The published, well-known key of :data:`DEVSTORE_ACCOUNT_NAME`. It protects nothing and is not a secret."""

DEFAULT_ACCOUNTS: dict[str, str] = {DEVSTORE_ACCOUNT_NAME: DEVSTORE_ACCOUNT_KEY}
"""Account name to base64 key, as the storage emulators take them when no accounts are configured."""

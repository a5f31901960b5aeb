"""The credential used in ``devstack`` mode: a fixed development token that only emulators accept."""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

DEVSTACK_TOKEN = "devstack-development-token"  # noqa: S105 - a fixed token only emulators accept
"""The bearer token every devstack emulator accepts, and no Azure endpoint does."""


class DevstackCredential:
    """A ``TokenCredential`` that returns :data:`DEVSTACK_TOKEN` for any scope."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(DEVSTACK_TOKEN, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        return AccessTokenInfo(DEVSTACK_TOKEN, int(time.time()) + 3600)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> DevstackCredential:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

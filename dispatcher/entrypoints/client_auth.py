"""How the CLI signs in to the API: Entra ID tokens from azure-identity, or devstack's development users.

The CLI keeps no token of its own. In Azure it asks azure-identity for a token for the API's scope each time one is
needed: ``AzureCliCredential`` (the account ``az login`` signed in) by default, or ``DeviceCodeCredential`` whose
sign-in azure-identity keeps in its own encrypted cache (``dispatcher login --device-code``). Against devstack it
asks the stack's issuer for a token of the development user chosen with ``--as`` or ``$DISPATCHER_DEV_USER``; that
issuer is on this machine, and the CLI refuses any other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import requests

from dispatcher.cli_bootstrap import AZURE_CLI_CLIENT_ID, entra_token
from dispatcher.domain.errors import CloudError, UnsafeConfiguration
from dispatcher.endpoints import check_loopback
from dispatcher.entrypoints.client import ClientError

RENEW_BEFORE_SECONDS = 300

Method = Literal["azure-cli", "device-code", "devstack"]


class SignInFailed(ClientError):
    """No token could be had for the API's scope."""


@dataclass(frozen=True)
class SignIn:
    """How to get the API's tokens: the method, the scope (``api://{client id}/.default``), the tenant, and for
    devstack the issuer (its authority) and development user."""

    method: Method
    scope: str
    tenant: str | None = None
    authority: str | None = None
    user: str | None = None
    ca_bundle: str | None = None
    record: Path | None = None
    """Where a device-code sign-in's account (azure-identity's AuthenticationRecord, no secret) is kept."""


class _Renewing:
    """A token from ``fetch`` (value, expiry as epoch seconds), fetched again a few minutes before it expires."""

    def __init__(self, fetch: Callable[[], tuple[str, float]]) -> None:
        self._fetch = fetch
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._token[1] - RENEW_BEFORE_SECONDS < time.time():
                self._token = self._fetch()
            return self._token[0]


def _devstack_token(sign_in: SignIn) -> tuple[str, float]:
    authority = (sign_in.authority or "").rstrip("/")
    if not authority.endswith("/v2.0"):
        raise SignInFailed("the devstack issuer's authority ends in /v2.0 ($DISPATCHER_AUTHORITY)")
    try:
        check_loopback("the devstack issuer", authority)
    except UnsafeConfiguration as exc:
        raise SignInFailed(str(exc)) from None
    endpoint = authority.removesuffix("/v2.0") + "/oauth2/v2.0/token"
    form = {
        "grant_type": "password",
        "client_id": AZURE_CLI_CLIENT_ID,
        "username": sign_in.user or "",
        "password": "devstack",
        "scope": sign_in.scope,
    }
    try:
        response = requests.post(endpoint, data=form, timeout=10, verify=sign_in.ca_bundle or True)
    except requests.RequestException as exc:
        raise SignInFailed(f"the devstack issuer did not answer: {type(exc).__name__}") from None
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200 or "access_token" not in body:
        reason = str(body.get("error_description") or response.reason).splitlines()[0]
        raise SignInFailed(f"devstack refused to sign in {sign_in.user!r}: {reason}")
    return str(body["access_token"]), time.time() + float(body.get("expires_in", 3600))


def _azure_token(sign_in: SignIn, prompt: bool) -> tuple[str, float]:
    try:
        return entra_token(sign_in.method, sign_in.scope, sign_in.tenant, sign_in.record, prompt=prompt)
    except CloudError as exc:
        hint = "run az login" if sign_in.method == "azure-cli" else "run dispatcher login --device-code"
        raise SignInFailed(f"no token for {sign_in.scope}: {hint} ({exc})") from None


def token_source(sign_in: SignIn, *, prompt: bool = False) -> Callable[[], str]:
    """A function returning a current token for the API; ``prompt`` lets a device-code sign-in ask the user."""
    if sign_in.method == "devstack":
        return _Renewing(lambda: _devstack_token(sign_in))
    return _Renewing(lambda: _azure_token(sign_in, prompt))

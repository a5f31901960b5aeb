"""A deployed Functions app's default function key, read through ARM with azure-core: what the CLI presents as
``x-functions-key``, fetched by ``dispatcher configure`` as the signed-in identity.

``POST {arm}/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Web/sites/{app}/host/default/listKeys``
answers ``{"masterKey": ..., "functionKeys": {"default": ...}, "systemKeys": {...}}`` (App Service REST API,
*Web Apps - List Host Keys*); only ``functionKeys.default`` is taken, never the master key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
from azure.core.rest import HttpRequest, HttpResponse

from dispatcher.adapters.azure.errors import translated
from dispatcher.domain.errors import CloudError

API_VERSION = "2023-12-01"


def default_function_key(
    credential: TokenCredential,
    arm_endpoint: str,
    subscription: str,
    resource_group: str,
    app: str,
    *,
    secure: bool = True,
) -> str:
    """The app's ``default`` function key. ``secure=False`` lets the development token go over plain http to the
    local stack's emulators (the caller has checked the endpoint is this machine)."""
    base = arm_endpoint.rstrip("/")
    policies: list[Any] = [
        RetryPolicy(retry_total=3, retry_backoff_factor=0.5),
        BearerTokenCredentialPolicy(credential, f"{base}/.default"),
    ]
    path = (
        f"/subscriptions/{quote(subscription, safe='')}/resourceGroups/{quote(resource_group, safe='')}"
        f"/providers/Microsoft.Web/sites/{quote(app, safe='')}/host/default/listKeys"
    )
    action = f"read the function key of {app}"
    client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(base, policies=policies)
    with client, translated(action):
        try:
            request = HttpRequest("POST", f"{base}{path}", params={"api-version": API_VERSION})
            response = client.send_request(request, enforce_https=secure)
            response.raise_for_status()
        except ClientAuthenticationError as exc:
            if exc.status_code is None:  # no credential could give a token
                hint = "sign in (az login or azd auth login)"
                raise CloudError(f"{action}: no Azure token: {exc.message}; {hint}", transient=False) from None
            raise
        except HttpResponseError as exc:
            if exc.status_code == 404:
                raise CloudError(f"{action}: no Functions app {app!r} in {resource_group}", transient=False) from None
            raise
        body = response.json()
    key = body.get("functionKeys", {}).get("default") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        raise CloudError(f"{action}: the app has no default function key", transient=False)
    return key

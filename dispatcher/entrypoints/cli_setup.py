"""``dispatcher configure``: the CLI's configuration file for a deployment, from ``azd``'s outputs.

Run by the ``postprovision`` hook of ``azure.yaml`` (azd gives a hook its environment's values as environment
variables), or by hand with the options. The key is the app's default function key, read from ARM as the signed-in
identity; it goes into the file (readable by its owner only) and is never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dispatcher.cli_bootstrap import function_key
from dispatcher.domain.errors import CloudError, UnsafeConfiguration
from dispatcher.endpoints import api_url_problem
from dispatcher.entrypoints.api_models import Me
from dispatcher.entrypoints.cli_common import (
    API_ERROR,
    USAGE,
    AsJson,
    Key,
    Url,
    api,
    client_config,
    fail,
    print_json,
)
from dispatcher.entrypoints.cli_views import out
from dispatcher.entrypoints.client_auth import SignInFailed, token_source
from dispatcher.entrypoints.client_config import ConfigurationError, config_path, config_settings, write_config

AZD = {
    "url": "AZURE_FUNCTION_APP_URL",
    "app": "AZURE_FUNCTION_APP_NAME",
    "resource_group": "AZURE_RESOURCE_GROUP",
    "subscription": "AZURE_SUBSCRIPTION_ID",
    "namespace": "SERVICEBUS_NAMESPACE",
    "queue": "SERVICEBUS_JOBS_QUEUE",
    "scope": "API_SCOPE",
    "tenant": "AUTH_TENANT_ID",
}
"""Where each option's default comes from: the outputs of ``infra/main.bicep`` and azd's own values."""


def _or_env(value: str | None, name: str) -> str | None:
    return value or os.environ.get(AZD[name]) or None


def configure(
    *,
    url: Annotated[str | None, typer.Option("--url", help="The app's URL. Default: $AZURE_FUNCTION_APP_URL.")] = None,
    app: Annotated[
        str | None, typer.Option("--app", help="The Functions app. Default: $AZURE_FUNCTION_APP_NAME.")
    ] = None,
    resource_group: Annotated[
        str | None, typer.Option("--resource-group", help="Its resource group. Default: $AZURE_RESOURCE_GROUP.")
    ] = None,
    subscription: Annotated[
        str | None, typer.Option("--subscription", help="Its subscription. Default: $AZURE_SUBSCRIPTION_ID.")
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--servicebus-namespace", help="For --via servicebus. Default: $SERVICEBUS_NAMESPACE."),
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", help="The jobs queue. Default: $SERVICEBUS_JOBS_QUEUE.")
    ] = None,
    no_key: Annotated[
        bool, typer.Option("--no-key", help="Write no key (give it with --key or $DISPATCHER_KEY).", metavar="")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="The file to write. Default: $DISPATCHER_CONFIG or ~/.config/aci-dispatcher/config.toml."
        ),
    ] = None,
) -> None:
    """Write the CLI's configuration for a deployment: its API URL, its function key (read from ARM as you), its
    Service Bus namespace and queue. After `azd up` the hook has done it; then `dispatcher health`."""
    base = _or_env(url, "url")
    if base is None:
        fail(USAGE, f"no app URL: pass --url or set ${AZD['url']} (azd sets it after provisioning)")
    api = base.rstrip("/") if base.rstrip("/").endswith("/api") else base.rstrip("/") + "/api"
    problem = api_url_problem(api, key=not no_key)
    if problem is not None:
        fail(USAGE, problem)
    settings = {"url": api}
    if not no_key:
        where = {"app": _or_env(app, "app"), "resource_group": _or_env(resource_group, "resource_group")}
        where["subscription"] = _or_env(subscription, "subscription")
        missing = [name for name, value in where.items() if not value]
        if missing:
            flags = ", ".join(f"--{name.replace('_', '-')} (${AZD[name]})" for name in missing)
            fail(USAGE, f"to read the function key, name {flags}; or pass --no-key")
        try:
            settings["key"] = function_key(str(where["subscription"]), str(where["resource_group"]), str(where["app"]))
        except CloudError as exc:
            fail(API_ERROR if exc.transient else USAGE, str(exc))
        except UnsafeConfiguration as exc:
            fail(USAGE, str(exc))
    if found := _or_env(namespace, "namespace"):
        settings["servicebus_namespace"] = found
    if found := _or_env(queue, "queue"):
        settings["jobs_queue"] = found
    for name in ("scope", "tenant"):  # sign-in with Entra ID: dispatcher login
        if found := _or_env(None, name):
            settings[name] = found
    path = (config or config_path()).expanduser()
    kept = write_config(path, settings)
    out.print(f"Wrote {escape(str(path))} (readable by you only):", highlight=False)
    for name, value in settings.items():
        shown = "the app's default function key (not shown)" if name == "key" else value
        out.print(f"  {name} = {escape(shown)}", highlight=False)
    if kept is not None:
        out.print(f"The file that was there is kept as {escape(str(kept))}.", highlight=False)
    if config is not None and config != config_path():
        out.print(f"Point the CLI at it: export DISPATCHER_CONFIG={escape(str(path))}", highlight=False)
    out.print("Next: dispatcher health")


def login(
    *,
    as_user: Annotated[
        str | None, typer.Option("--as", help="devstack: the development user to sign in as (alice, bob, admin...).")
    ] = None,
    device_code: Annotated[
        bool, typer.Option("--device-code", help="Sign in with a code in a browser anywhere, not the Azure CLI's.")
    ] = False,
    url: Url = None,
) -> None:
    """Sign in to the API with Entra ID, and show who it takes you for. By default the Azure CLI's account (az
    login) is used; --device-code signs in through azure-identity, which keeps the sign-in in its own encrypted
    cache; against devstack, --as picks a development user. The choice is kept in the configuration file."""
    path = config_path().expanduser()
    try:
        document = config_settings(path)
    except ConfigurationError as exc:
        fail(USAGE, str(exc))
    if as_user is not None:
        document.update(sign_in="devstack", dev_user=as_user)
    elif device_code:
        document["sign_in"] = "device-code"
    if as_user is not None or device_code:
        write_config(path, document)
    config = client_config(url, None)
    if config.sign_in is None:
        fail(USAGE, "no API scope to sign in to: run dispatcher configure after azd up, or set $DISPATCHER_SCOPE")
    try:
        token = token_source(config.sign_in, prompt=True)
        token()
    except SignInFailed as exc:
        fail(API_ERROR, str(exc))
    with api(url, None) as client:
        me = client.me()
    out.print(f"Signed in as {escape(me.name)} ({escape(me.id)})", highlight=False)
    _describe(me)


def whoami(*, url: Url = None, key: Key = None, as_json: AsJson = False) -> None:
    """Who the API takes you for: your id, name, app roles and teams."""
    with api(url, key, as_json) as client:
        me = client.me()
    if as_json:
        print_json(me)
        return
    out.print(f"{escape(me.name)} ({escape(me.id)}, by {me.via})", highlight=False)
    _describe(me)


def _describe(me: Me) -> None:
    out.print(f"  roles: {escape(', '.join(me.roles) or 'none')}", highlight=False)
    out.print(f"  teams: {escape(', '.join(me.teams) or 'none')}", highlight=False)

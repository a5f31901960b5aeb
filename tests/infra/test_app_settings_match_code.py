"""The function app's settings in infra/ match what the code reads, both ways.

What the code reads is derived from the code: ``DispatcherSettings`` fields (``DISPATCHER_`` + name, or their
validation aliases), and the Functions bindings of ``function_app.app`` (``%X%`` expressions and ``connection``
names). Only two small lists are written here: settings that exist for devstack only, and settings the platform
(Functions host, Application Insights, azure-identity) reads rather than our code.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import azure.functions as func
import pytest
from pydantic import AliasChoices, AliasPath
from pydantic.fields import FieldInfo

from dispatcher.settings import DispatcherSettings, KeyCaller, Team
from tests.infra.templates import REPO, TENANT_ID, Opaque, app_setting_expressions, deployed_app_settings

# Fields for devstack only (their descriptions say so): never set in Azure.
DEVSTACK_ONLY = {"storage_connection_string", "tls_ca_bundle", "servicebus_connection_string", "clock_file"}

# Read by the platform, not by our code: Application Insights' agent, the Python worker's OpenTelemetry set-up and
# the distro it configures, and azure-identity's DefaultAzureCredential, which picks the user-assigned identity by
# AZURE_CLIENT_ID.
PLATFORM_PREFIXES = ("APPLICATIONINSIGHTS_", "PYTHON_APPLICATIONINSIGHTS_", "OTEL_")
PLATFORM_NAMES = {"AZURE_CLIENT_ID"}

# The Functions host's own storage connection; identity-based like every connection.
HOST_CONNECTIONS = {"AzureWebJobsStorage"}

# Flex Consumption takes the runtime from functionAppConfig and rejects these.
FLEX_REJECTED = {
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "AzureWebJobsStorage",
}

# A deployment with nothing but azd's two required parameters.
DEFAULT_DEPLOYMENT = {"environmentName": "dev", "location": "westeurope"}

_BINDING_EXPRESSION = re.compile(r"%([^%]+)%")


def setting_names(name: str, info: FieldInfo) -> list[str]:
    """The environment names pydantic-settings reads one field from, in order."""
    alias = info.validation_alias or info.alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasPath):
        return [str(alias.path[0])]
    prefix = DispatcherSettings.model_config.get("env_prefix", "")
    return [f"{prefix}{name}".upper()]


def code_settings() -> dict[str, list[str]]:
    """Every ``DispatcherSettings`` field, with the names it may be set under."""
    return {name: setting_names(name, info) for name, info in DispatcherSettings.model_fields.items()}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def binding_references(app: func.FunctionApp) -> tuple[set[str], set[str]]:
    """``(%X% names, connection names)`` that the functions of ``app`` read from app settings."""
    expressions: set[str] = set()
    connections: set[str] = set()
    for function in app.get_functions():
        for raw in function.get_raw_bindings():
            binding = json.loads(raw)
            for text in _strings(binding):
                expressions.update(_BINDING_EXPRESSION.findall(text))
            if isinstance(binding.get("connection"), str):
                connections.add(binding["connection"])
    return expressions, connections


@cache
def app_bindings() -> tuple[frozenset[str], frozenset[str]]:
    """The binding references of the real app in function_app.py.

    Indexing a ``FunctionApp`` twice is an error, so this loads a private copy of the module rather than index the
    ``app`` object other tests (and the local runner) share.
    """
    spec = importlib.util.spec_from_file_location("_function_app_for_infra_tests", REPO / "function_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expressions, connections = binding_references(module.app)
    return frozenset(expressions), frozenset(connections)


def connection_names() -> set[str]:
    """Connections the app uses: the host's, the bindings', and those the settings read as ``C__...`` aliases."""
    names = set(HOST_CONNECTIONS) | app_bindings()[1]
    for field_names in code_settings().values():
        names.update(name.split("__", 1)[0] for name in field_names if "__" in name)
    return names


def test_binding_references_are_read_from_any_binding_generically() -> None:
    # Given an app with a Service Bus trigger and a timer that use binding expressions and a connection,
    app = func.FunctionApp()

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="%JOBS_Q%", connection="SomeBus")
    def launch(msg: func.ServiceBusMessage) -> None:
        del msg

    @app.timer_trigger(arg_name="timer", schedule="%TICK%")
    def tick(timer: func.TimerRequest) -> None:
        del timer

    # When reading its bindings, Then every %X% and every connection name is found.
    assert binding_references(app) == ({"JOBS_Q", "TICK"}, {"SomeBus"})


def test_the_devstack_only_list_names_real_fields_that_say_devstack() -> None:
    # Given the devstack-only list, When compared with the fields, Then each is a field that mentions devstack.
    fields = DispatcherSettings.model_fields
    for name in DEVSTACK_ONLY:
        assert name in fields, f"{name} is no longer a DispatcherSettings field"
        assert "devstack" in (fields[name].description or "").lower()


def test_every_setting_the_dispatcher_reads_is_set_in_azure() -> None:
    # Given the app settings in infra/, When checking each non-devstack field, Then one of its names is set.
    configured = set(app_setting_expressions())
    missing = {
        field: names
        for field, names in code_settings().items()
        if field not in DEVSTACK_ONLY and not configured.intersection(names)
    }
    assert not missing, f"set these in infra/app/function-app.bicep: {missing}"


def test_no_devstack_only_setting_is_set_in_azure() -> None:
    configured = set(app_setting_expressions())
    for field in DEVSTACK_ONLY:
        assert not configured.intersection(code_settings()[field]), f"{field} is for devstack only"


def test_every_app_setting_is_read_by_the_code_the_bindings_or_the_platform() -> None:
    # Given every name the code, the bindings and the platform read,
    known = {name for names in code_settings().values() for name in names}
    expressions, _ = app_bindings()
    connections = connection_names()
    # When checking each app setting in infra/, Then none is unknown (a typo would be silently ignored).
    unknown = [
        name
        for name in app_setting_expressions()
        if name not in known
        and name not in expressions
        and name not in PLATFORM_NAMES
        and not name.startswith(PLATFORM_PREFIXES)
        and name.split("__", 1)[0] not in connections
    ]
    assert not unknown, f"app settings nothing reads: {unknown}"


def test_every_binding_expression_is_an_app_setting() -> None:
    expressions, _ = app_bindings()
    configured = set(app_setting_expressions())
    assert expressions <= configured, f"bindings read unset settings: {expressions - configured}"


@pytest.mark.parametrize("connection", sorted(connection_names()))
def test_every_connection_is_identity_based(connection: str) -> None:
    # Given a connection the app uses, When reading its settings as deployed,
    settings = deployed_app_settings(DEFAULT_DEPLOYMENT)
    # Then it names its service, uses the managed identity by client id, and has no connection string.
    assert connection not in settings, f"{connection} must not be a connection string"
    service = {"fullyQualifiedNamespace", "accountName", "serviceUri", "blobServiceUri"}
    assert any(f"{connection}__{key}" in settings for key in service)
    assert settings[f"{connection}__credential"] == "managedidentity"
    assert f"{connection}__clientId" in settings


def test_no_setting_flex_consumption_rejects_is_set() -> None:
    assert not FLEX_REJECTED.intersection(app_setting_expressions())


def test_every_app_setting_deploys_as_a_string() -> None:
    # Given a default deployment, When evaluating the app settings, Then each is a string (or known only in Azure).
    for name, value in deployed_app_settings(DEFAULT_DEPLOYMENT).items():
        assert isinstance(value, str | Opaque), f"{name} would deploy as {type(value).__name__}: wrap it in string()"


def load_deployed_settings(monkeypatch: pytest.MonkeyPatch, parameters: dict[str, Any]) -> DispatcherSettings:
    """The settings the dispatcher loads from the environment a deployment with ``parameters`` gives it (values known
    only in Azure as placeholders)."""
    deployed = deployed_app_settings({**DEFAULT_DEPLOYMENT, **parameters})
    for names in code_settings().values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    for name, value in deployed.items():
        monkeypatch.setenv(name, f"https://{name.lower()}.invalid/" if isinstance(value, Opaque) else value)
    return DispatcherSettings()


def test_the_deployed_settings_load_into_dispatcher_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the environment a default deployment gives the app, When the dispatcher loads its settings,
    settings = load_deployed_settings(monkeypatch, {})

    # Then they validate, with the Azure credential, one pool in the deployment region, and the created names.
    assert settings.credential == "azure"
    assert [(pool.name, pool.location, pool.resource_group) for pool in settings.pools] == [
        ("default", "westeurope", "rg-dev-jobs-default")
    ]
    assert settings.jobs_queue == "jobs"
    assert settings.storage_account_key_secret == "storage-account-key"
    assert settings.servicebus_namespace.endswith(".servicebus.windows.net")
    assert settings.job_identity in (None, "")
    assert settings.prices.vcpu_second > 0
    # And sign-in takes the tenant's tokens, keyed routes are served as the code's default caller, no team is set.
    assert settings.auth_tenant_id == TENANT_ID
    assert settings.auth_audience
    assert (settings.function_keys, settings.key_caller, settings.teams, settings.queue_teams) == (
        True,
        KeyCaller(),
        {},
        {},
    )


def test_the_deployed_authority_is_the_issuer_the_app_trusts(monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatcher.endpoints import authority_of

    # Given the settings a default deployment gives the app, When the app works out the issuer it trusts,
    settings = load_deployed_settings(monkeypatch, {})
    # Then it is the deployed authority: the cloud's sign-in host, the tenant, v2.0.
    assert authority_of(settings) == settings.auth_authority == f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"


def test_teams_queue_teams_and_the_key_caller_given_as_parameters_become_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dispatcher.bootstrap import function_keys_enabled

    # Given teams, a queue's team, a key caller and function keys off as deployment parameters,
    identity = "/subscriptions/s/resourceGroups/rg-ml/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-ml"
    parameters = {
        "teams": {
            "ml": {
                "groups": ["g-ml"],
                "maxCores": 40,
                "maxGroups": 10,
                "weight": 2,
                "identities": {"reader": identity},
            },
            "web": {"groups": ["g-web"]},
        },
        "queueTeams": {"jobs": "web"},
        "keyCaller": {"name": "nightly", "team": "ml", "roles": ["Jobs.Submit"]},
        "functionKeys": False,
    }
    # When the dispatcher loads its settings,
    settings = load_deployed_settings(monkeypatch, parameters)
    # Then they are the dispatcher's own,
    assert settings.teams == {
        "ml": Team(groups=["g-ml"], max_cores=40, max_groups=10, weight=2, identities={"reader": identity}),
        "web": Team(groups=["g-web"]),
    }
    assert settings.queue_teams == {"jobs": "web"}
    assert settings.key_caller == KeyCaller(name="nightly", team="ml", roles=["Jobs.Submit"])
    # and the keyed routes are not registered when the app is indexed.
    assert settings.function_keys is False
    assert function_keys_enabled() is False


def test_pools_given_as_a_parameter_become_dispatcher_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two pools as a deployment parameter, one of them with its own limits,
    pools = [
        {"name": "weu", "location": "westeurope"},
        {"name": "neu", "location": "northeurope", "maxGroups": 20, "spot": False},
    ]
    deployed = deployed_app_settings({**DEFAULT_DEPLOYMENT, "pools": pools})
    monkeypatch.setenv("DISPATCHER_POOLS", deployed["DISPATCHER_POOLS"])

    # When the dispatcher loads its settings, Then both pools are there with their own and the default limits.
    loaded = DispatcherSettings().pools
    assert [(p.name, p.resource_group, p.max_groups, p.spot) for p in loaded] == [
        ("weu", "rg-dev-jobs-weu", 100, True),
        ("neu", "rg-dev-jobs-neu", 20, False),
    ]


def test_container_logs_reach_the_pools_that_keep_them_with_the_vault_secret_the_deployment_writes() -> None:
    from tests.infra.templates import MAIN, evaluate, main_frame, symbols

    def pool_settings(parameters: dict[str, object]) -> list[dict[str, object]]:
        variables = symbols(MAIN, "variables")
        return evaluate(variables["poolSettings"]["value"], main_frame({**DEFAULT_DEPLOYMENT, **parameters}))  # type: ignore[no-any-return]

    # Given container logs on, and one pool that opts out, When the pools' settings are evaluated,
    pools = [
        {"name": "weu", "location": "westeurope"},
        {"name": "neu", "location": "northeurope", "containerLogs": False},
    ]
    first, second = pool_settings({"pools": pools, "containerLogs": True})
    # Then the first names the vault secret the deployment writes the workspace key to, the other sends nothing
    assert isinstance(first["containerLogs"], dict)
    assert first["containerLogs"]["keySecret"] == "log-analytics-key"
    assert second["containerLogs"] is None
    written = symbols(MAIN, "modules")["logAnalyticsKeySecret"]
    assert "logAnalyticsKeySecretName" in json.dumps(written)
    # And without the parameter no pool does
    assert [p["containerLogs"] for p in pool_settings({})] == [None]

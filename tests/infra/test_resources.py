"""The resources have the settings the design depends on: Flex Consumption, identity-only access, queue semantics."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import yaml

from tests.infra.templates import (
    FUNCTION_APP,
    INFRA,
    MAIN,
    REPO,
    evaluate,
    frame_of,
    main_frame,
    module_frame,
    resources_of_type,
    symbols,
    unwrap,
)

DEFAULT_DEPLOYMENT = {"environmentName": "dev", "location": "westeurope"}
_ISO_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$")


def iso_duration(text: str) -> timedelta:
    """An ISO 8601 duration as Service Bus writes them (P14D, PT2M, PT1M30S)."""
    match = _ISO_DURATION.match(text)
    assert match, f"not an ISO 8601 duration: {text}"
    parts = {key: int(value or 0) for key, value in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def host_duration(text: str) -> timedelta:
    """A host.json duration (hh:mm:ss)."""
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def only(resource_type: str) -> dict[str, Any]:
    """The body of the one resource of ``resource_type`` in infra/."""
    (found,) = list(resources_of_type(resource_type))
    body: dict[str, Any] = unwrap(found[2]["config"])
    return body


def queue_named(parameter: str) -> dict[str, Any]:
    """The body of the Service Bus queue whose name is the template's ``parameter``."""
    (found,) = [
        body
        for _, _, resource in resources_of_type("Microsoft.ServiceBus/namespaces/queues")
        if parameter in str((body := unwrap(resource["config"])).get("name"))
    ]
    return found


def test_the_wake_queue_folds_requests_for_one_moment_and_keeps_nothing() -> None:
    """The reconciler's wake-ups are named after their moment: duplicate detection makes one run of them; a
    wake-up that failed or expired is not worth keeping (the timer runs anyway)."""
    servicebus = frame_of(INFRA / "core" / "messaging" / "servicebus.bicep", DEFAULT_DEPLOYMENT)
    queue = evaluate(queue_named("wakeQueueName")["properties"], servicebus)
    assert queue["requiresDuplicateDetection"] is True
    assert iso_duration(queue["duplicateDetectionHistoryTimeWindow"]) >= timedelta(minutes=1)
    assert queue["deadLetteringOnMessageExpiration"] is False
    assert queue["maxDeliveryCount"] == 1


def test_durations_parse_as_written() -> None:
    assert iso_duration("PT1M30S") == timedelta(minutes=1, seconds=30)
    assert iso_duration("P14D") == timedelta(days=14)
    assert host_duration("00:05:00") == timedelta(minutes=5)


def test_the_jobs_queue_lock_fits_the_hosts_renewal_and_service_bus_limits() -> None:
    # Given host.json's lock renewal and function timeout, When reading the jobs queue,
    host = json.loads((REPO / "host.json").read_text())
    renewal = host_duration(host["extensions"]["serviceBus"]["maxAutoLockRenewalDuration"])
    servicebus = frame_of(INFRA / "core" / "messaging" / "servicebus.bicep", DEFAULT_DEPLOYMENT)
    queue = evaluate(queue_named("jobsQueueName")["properties"], servicebus)
    lock = iso_duration(queue["lockDuration"])
    # Then the lock is renewed within its window, and within Service Bus's 5-minute maximum.
    assert timedelta(seconds=30) <= lock <= renewal
    assert lock <= timedelta(minutes=5)
    assert renewal <= host_duration(host["functionTimeout"])
    # And redelivery ends in the dead-letter queue, duplicates are detected, expired messages are kept.
    assert 1 < queue["maxDeliveryCount"] <= 10
    assert queue["requiresDuplicateDetection"] is True
    assert queue["deadLetteringOnMessageExpiration"] is True


def test_the_service_bus_namespace_takes_entra_id_only_over_tls_1_2() -> None:
    namespace = only("Microsoft.ServiceBus/namespaces")
    assert namespace["sku"]["name"] == "Standard"
    assert namespace["properties"]["disableLocalAuth"] is True
    assert namespace["properties"]["minimumTlsVersion"] == "1.2"


def test_the_events_topic_has_an_example_subscription() -> None:
    only("Microsoft.ServiceBus/namespaces/topics")
    subscription = only("Microsoft.ServiceBus/namespaces/topics/subscriptions")
    assert subscription["properties"]["deadLetteringOnMessageExpiration"] is True


def test_every_storage_account_is_tls_1_2_without_public_blobs() -> None:
    properties = only("Microsoft.Storage/storageAccounts")["properties"]
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["allowBlobPublicAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["allowSharedKeyAccess"] == "allowSharedKeyAccess"  # each account's own switch


def storage_module(name: str) -> dict[str, Any]:
    return module_frame(main_frame(DEFAULT_DEPLOYMENT), name).arguments


def test_three_accounts_and_only_the_shares_account_takes_shared_keys() -> None:
    # Given a default deployment, When evaluating each storage module's arguments,
    host, data, shares = (storage_module(n) for n in ("storage", "dataStorage", "sharesStorage"))
    # Then host storage holds only the deployment package, data the records and logs, shares the shares,
    assert [c.startswith("app-package-") for c in host["containerNames"]] == [True]
    assert "tableNames" not in host
    assert "shareNames" not in host
    assert (data["containerNames"], data["tableNames"]) == (["job-logs"], ["jobs"])
    assert shares["shareNames"] == ["datasets"]
    # And only the account ACI mounts shares from accepts the account key.
    assert (host["allowSharedKeyAccess"], data["allowSharedKeyAccess"], shares["allowSharedKeyAccess"]) == (
        False,
        False,
        True,
    )
    assert (
        "ACI mounts Azure Files only with the key" in (INFRA / "core" / "storage" / "storage-account.bicep").read_text()
    )


def test_diagnostic_settings_send_vault_storage_service_bus_and_app_logs_to_log_analytics() -> None:
    diagnostics = storage_module("diagnostics")
    assert len(diagnostics["keyVaultNames"]) == 2
    assert len(diagnostics["storageAccountNames"]) == 3
    text = (INFRA / "core" / "monitor" / "diagnostics.bicep").read_text()
    for category in (
        "AuditEvent",
        "StorageRead",
        "StorageWrite",
        "StorageDelete",
        "OperationalLogs",
        "FunctionAppLogs",
    ):
        assert f"'{category}'" in text


def test_key_vaults_use_rbac_with_purge_protection_and_the_dispatchers_holds_the_storage_key() -> None:
    vault = only("Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enablePurgeProtection"] is True
    secret = frame_of(INFRA / "core" / "security" / "storage-key-secret.bicep", DEFAULT_DEPLOYMENT)
    assert secret.arguments["storageKeySecretName"] == "storage-account-key"


def test_jobs_secrets_live_in_a_vault_of_their_own() -> None:
    # Given main.bicep, Then it deploys the vault module twice: the dispatcher's vault and the job-secrets vault
    vaults = [m for m in symbols(MAIN, "modules").values() if m["detail"]["path"].endswith("keyvault.bicep")]
    assert len(vaults) == 2
    settings = symbols(FUNCTION_APP, "resources")["functionApp__appSettings"]["config"]["properties"]
    assert {"DISPATCHER_KEYVAULT_URL", "DISPATCHER_JOB_SECRETS_VAULT_URL"} <= set(settings)


def test_application_insights_accepts_entra_id_telemetry_only() -> None:
    component = only("Microsoft.Insights/components")
    assert component["properties"]["DisableLocalAuth"] is True
    settings = symbols(FUNCTION_APP, "resources")["functionApp__appSettings"]["config"]["properties"]
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith(";Authorization=AAD")


def test_the_function_app_is_python_3_11_on_flex_consumption_with_its_identity() -> None:
    app = unwrap(symbols(FUNCTION_APP, "resources")["functionApp"]["config"])
    assert app["kind"] == "functionapp,linux"
    assert app["identity"]["type"] == "UserAssigned"
    config = app["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert app["properties"]["httpsOnly"] is True
    plan = only("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}


def test_the_function_app_is_tagged_with_the_azure_yaml_service_name() -> None:
    # Given azure.yaml's one function service, When evaluating the app's tags as main.bicep deploys it,
    services = yaml.safe_load((REPO / "azure.yaml").read_text())["services"]
    ((name, service),) = services.items()
    assert service["host"] == "function"
    assert service["language"] == "python"
    frame = frame_of(FUNCTION_APP, DEFAULT_DEPLOYMENT)
    tags = evaluate(unwrap(symbols(FUNCTION_APP, "resources")["functionApp"]["config"])["tags"], frame)
    # Then azd-service-name names that service.
    assert tags["azd-service-name"] == name


def test_main_creates_resource_groups_at_subscription_scope() -> None:
    from tests.infra.templates import parse

    assert parse(MAIN)["globals"]["scope"]["value"] == "subscription"
    resource_groups = [name for _, name, _ in resources_of_type("Microsoft.Resources/resourceGroups")]
    assert set(resource_groups) == {"rg", "poolGroups"}


def test_main_outputs_are_upper_case_and_name_what_azd_needs() -> None:
    outputs = symbols(MAIN, "outputs")
    assert all(name == name.upper() for name in outputs)
    required = {
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "SERVICE_API_NAME",
        "AZURE_FUNCTION_APP_NAME",
        "SERVICEBUS_NAMESPACE",
    }
    assert required <= set(outputs)


def test_the_parameters_file_feeds_azd_environment_values() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = symbols(MAIN, "parameters")
    assert set(parameters) <= set(declared)
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"


def test_resource_names_come_from_the_abbreviations_file() -> None:
    # Given a default deployment, When evaluating the names main.bicep gives, Then each starts with its abbreviation.
    abbreviations = json.loads((INFRA / "abbreviations.json").read_text())
    frame = frame_of(MAIN, DEFAULT_DEPLOYMENT)
    modules = symbols(MAIN, "modules")
    expected = {
        "storage": "storageStorageAccounts",
        "serviceBus": "serviceBusNamespaces",
        "keyVault": "keyVaultVaults",
        "plan": "webServerFarms",
        "appIdentity": "managedIdentityUserAssignedIdentities",
        "app": "webSitesFunctions",
    }
    for module, abbreviation in expected.items():
        name = evaluate(unwrap(modules[module]["config"])["params"]["name"], frame)
        assert name.startswith(abbreviations[abbreviation]), (module, name)
        assert len(name) <= 24 or module not in {"storage", "keyVault"}, (module, name)


def test_the_alerts_query_the_metrics_the_dispatcher_emits() -> None:
    from dispatcher.service import telemetry

    # Given the alert rules as a default deployment evaluates them,
    alerts = module_frame(main_frame(DEFAULT_DEPLOYMENT | {"poolSaturationMinutes": 40}), "alerts")
    rules = {
        rule["name"]: rule
        for rule in evaluate(symbols(INFRA / "core/monitor/alerts.bicep", "variables")["rules"]["value"], alerts)
    }
    # Then one fires on dead letters, one on reconciler failures, one on a pool saturated for the set time,
    assert set(rules) == {"dead-letters", "reconciler-errors", "pool-saturated"}
    assert f'Name == "{telemetry.DEAD_LETTERS}"' in rules["dead-letters"]["query"]
    assert f'Name == "{telemetry.RECONCILE_FAILURES}"' in rules["reconciler-errors"]["query"]
    assert f'Name == "{telemetry.POOL_UTILIZATION}"' in rules["pool-saturated"]["query"]
    assert rules["pool-saturated"]["window"] == "PT40M"
    assert "bins >= 40 * 3 / 4" in rules["pool-saturated"]["query"]  # at least 3/4 of the minutes reported
    # And they query the workspace the component writes to, on the table its metrics land in.
    ((_, _, rule),) = resources_of_type("Microsoft.Insights/scheduledQueryRules")
    assert all(r["query"].startswith("AppMetrics | ") for r in rules.values())
    ((scope,),) = [unwrap(rule["config"])["properties"]["scopes"]]
    assert scope["operator"]["operands"] == {"operand_1": "workspace", "operand_2": "id"}
    workspace = symbols(INFRA / "core/monitor/alerts.bicep", "resources")["workspace"]
    assert workspace["type"].startswith("Microsoft.OperationalInsights/workspaces")

"""The dispatcher's identity gets narrow roles: a custom ACI role per pool, data roles per resource, nothing broad."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.templates import (
    INFRA,
    MAIN,
    bicep_files,
    evaluate,
    main_frame,
    resources_of_type,
    symbols,
    unwrap,
)

# Built-in roles far broader than the dispatcher needs: Owner, Contributor, User Access Administrator, Storage Account
# Contributor (it includes listKeys), Key Vault Administrator, Service Bus Data Owner.
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "090c5cfd-751d-490a-894a-3ce6f1109419",
}

ACI_ACTIONS = {
    "Microsoft.ContainerInstance/containerGroups/read",
    "Microsoft.ContainerInstance/containerGroups/write",
    "Microsoft.ContainerInstance/containerGroups/delete",
    "Microsoft.ContainerInstance/containerGroups/stop/action",
    "Microsoft.ContainerInstance/containerGroups/containers/logs/read",
    "Microsoft.ContainerInstance/locations/usages/read",
    "Microsoft.ContainerInstance/locations/operationResults/read",
    "Microsoft.ContainerInstance/locations/operations/read",
}


def _role_definition(file_name: str) -> dict[str, Any]:
    path = INFRA / "core" / "security" / file_name
    (resource,) = symbols(path, "resources").values()
    assert resource["type"] == "Microsoft.Authorization/roleDefinitions"
    body: dict[str, Any] = unwrap(resource["config"])
    return body


def _mentions(expr: Any, name: Any) -> bool:
    return json.dumps(name) in json.dumps(expr) or (isinstance(name, str) and name in json.dumps(expr))


def test_the_aci_role_allows_the_calls_the_dispatcher_makes_and_never_exec_or_attach() -> None:
    role = _role_definition("aci-job-runner-role.bicep")["properties"]
    (permissions,) = role["permissions"]
    assert set(permissions["actions"]) == ACI_ACTIONS
    assert not any("*" in action or "exec" in action or "attach" in action for action in permissions["actions"])
    assert not permissions["dataActions"]
    assert role["type"] == "CustomRole"


def test_the_share_role_manages_shares_without_reading_keys() -> None:
    (permissions,) = _role_definition("workspace-share-role.bicep")["properties"]["permissions"]
    assert all(
        action.startswith("Microsoft.Storage/storageAccounts/fileServices/") for action in permissions["actions"]
    )
    assert "Microsoft.Storage/storageAccounts/fileServices/shares/write" in permissions["actions"]
    assert not any("listkeys" in action.lower() for action in permissions["actions"])


def test_no_broad_built_in_role_is_assigned_anywhere() -> None:
    for path in bicep_files():
        text = path.read_text().lower()
        for role in BROAD_ROLES:
            assert role not in text, f"{path.name} mentions broad role {role}"


def test_every_role_assignment_is_named_after_scope_principal_and_role() -> None:
    # Given every role assignment, When reading its name, Then it is guid(scope, principal, role) of its own fields.
    assignments = list(resources_of_type("Microsoft.Authorization/roleAssignments"))
    assert len(assignments) >= 6
    for path, name, resource in assignments:
        body = unwrap(resource["config"])
        call = body["name"]["function"]
        assert call["type"] == "guid", f"{path.name}: {name}"
        scope, principal, role = call["parameters"].values()
        assert principal == body["properties"]["principalId"], f"{path.name}: {name} principal"
        assert _mentions(body["properties"]["roleDefinitionId"], role), f"{path.name}: {name} role"
        expected_scope = body.get("scope")
        if expected_scope is not None:
            assert _mentions(scope, expected_scope), f"{path.name}: {name} scope"
        else:
            assert _mentions(scope, "resource_group"), f"{path.name}: {name} scope"


def test_each_pool_resource_group_gets_the_aci_role_for_the_app_identity() -> None:
    # Given a deployment with two pools, When evaluating main.bicep, Then there is one job resource group per pool,
    pools = [{"name": "a", "location": "x"}, {"name": "b", "location": "y"}]
    frame = main_frame({"environmentName": "dev", "location": "westeurope", "pools": pools})
    groups = evaluate(symbols(MAIN, "resources")["poolGroups"]["config"], frame)
    assert [(group["name"], group["location"]) for group in groups] == [("rg-dev-jobs-a", "x"), ("rg-dev-jobs-b", "y")]
    # and the app's pool module is deployed to each of them with the job runner role.
    app_pools = symbols(MAIN, "modules")["appPools"]["config"]
    assert app_pools["loop_type"]["detail"]["array_name"] == "jobPools"
    assert _mentions(app_pools["config"]["params"]["jobRunnerRoleId"], "jobRunnerRole")


def test_managed_identity_operator_is_granted_only_with_job_identities() -> None:
    # Given the access module, When reading the Managed Identity Operator assignment, Then it is conditional,
    access = symbols(INFRA / "app" / "access.bicep", "resources")["jobIdentityOperator"]["config"]
    assert access["condition"] is not None
    # and main.bicep passes a job identity only when enableJobIdentity is set (default false).
    assert symbols(MAIN, "parameters")["enableJobIdentity"]["default"] is False
    off = main_frame({"environmentName": "dev", "location": "westeurope"})
    on = main_frame({"environmentName": "dev", "location": "westeurope", "enableJobIdentity": True})
    argument = symbols(MAIN, "modules")["appAccess"]["config"]["params"]["jobIdentityName"]
    assert evaluate(argument, off) == ""
    assert evaluate(argument, on) == "id-job-abcdefghijklm"


def test_the_developer_gets_the_same_access_only_when_a_principal_is_given() -> None:
    for name in ("developerAccess", "developerPools"):
        config = symbols(MAIN, "modules")[name]["config"]
        assert _mentions(config["condition"], "principalId"), name
    assert symbols(MAIN, "parameters")["principalId"]["default"] == ""

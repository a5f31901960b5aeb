"""The dispatcher's identity gets narrow roles: a custom ACI role per pool, data roles per resource, nothing broad."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.templates import (
    INFRA,
    MAIN,
    Frame,
    bicep_files,
    evaluate,
    main_frame,
    module_deployments,
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

MANAGED_IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"
IDENTITY_OPERATOR = INFRA / "app" / "identity-operator.bicep"


def identity_id(subscription: str, group: str, name: str) -> str:
    provider = "Microsoft.ManagedIdentity/userAssignedIdentities"
    return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{provider}/{name}"


def identity_grants(teams: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """``(subscription, resource group, identity name, principal)`` of each Managed Identity Operator grant a
    deployment with ``teams`` makes for team identities."""
    grants = []
    root = main_frame({"environmentName": "dev", "location": "westeurope", "teams": teams})
    for team in module_deployments(root, "teamIdentities"):
        for grant in module_deployments(team.frame, "operators"):
            assert grant.frame.path == IDENTITY_OPERATOR
            scope, arguments = grant.scope, grant.frame.arguments
            grants.append(
                (scope["subscriptionId"], scope["resourceGroup"], arguments["identityName"], arguments["principalId"])
            )
    return grants


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


def test_each_identity_a_team_lists_gets_managed_identity_operator_for_the_app_there_and_nowhere_else() -> None:
    # Given teams whose identities live in two subscriptions, one identity listed by two teams under two names, and
    # a team with none,
    shared = identity_id("sub-a", "rg-identities", "id-shared")
    teams = {
        "ml": {
            "groups": ["g1"],
            "identities": {"reader": shared, "trainer": identity_id("sub-a", "rg-ml", "id-train")},
        },
        "web": {"groups": ["g2"], "identities": {"shared": shared}},
        "ops": {"groups": ["g3"], "identities": {"deploy": identity_id("sub-b", "rg-ops", "id-deploy")}},
        "bi": {"groups": ["g4"]},
    }
    # When evaluating the grants the deployment makes,
    grants = identity_grants(teams)
    # Then each lands in the identity's own subscription and resource group, on exactly the listed identities,
    assert {grant[:3] for grant in grants} == {
        ("sub-a", "rg-identities", "id-shared"),
        ("sub-a", "rg-ml", "id-train"),
        ("sub-b", "rg-ops", "id-deploy"),
    }
    # for the app's identity (main.bicep passes appIdentity's principal to every team's module),
    argument = symbols(MAIN, "modules")["teamIdentities"]["config"]["config"]["params"]["principalId"]
    assert _mentions(argument, "appIdentity")
    assert all(principal == grants[0][3] for *_, principal in grants)
    # and one at a time, since two names for one identity make the same role assignment.
    decorators = symbols(INFRA / "app" / "team-identities.bicep", "modules")["operators"]["decorators"]
    assert {"type": "batchSize", "argument": 1} in decorators


def test_without_team_identities_nothing_is_granted() -> None:
    assert identity_grants({}) == []
    assert identity_grants({"ml": {"groups": ["g1"]}, "web": {"groups": ["g2"], "identities": {}}}) == []


def test_the_identity_grant_is_managed_identity_operator_on_the_identity_itself() -> None:
    # Given the module that grants one identity, When reading its resources,
    resources = symbols(IDENTITY_OPERATOR, "resources")
    (assignment,) = [r for r in resources.values() if r["type"] == "Microsoft.Authorization/roleAssignments"]
    body = unwrap(assignment["config"])
    # Then its one role assignment is Managed Identity Operator, scoped to the named existing identity (not its group).
    frame = Frame(IDENTITY_OPERATOR, {"identityName": "id-x", "principalId": "p"})
    assert _mentions(body["properties"]["roleDefinitionId"], "managedIdentityOperator")
    assert symbols(IDENTITY_OPERATOR, "variables")["managedIdentityOperator"]["value"] == MANAGED_IDENTITY_OPERATOR
    assert evaluate(body["properties"]["principalId"], frame) == "p"
    target = resources[body["scope"]]
    assert target["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert target["existing"] is True
    assert evaluate(unwrap(target["config"])["name"], frame) == "id-x"


def test_managed_identity_operator_is_only_ever_granted_on_an_identity() -> None:
    # Given every role assignment in infra/ that grants Managed Identity Operator,
    found = 0
    for path, name, resource in resources_of_type("Microsoft.Authorization/roleAssignments"):
        body = unwrap(resource["config"])
        if not _mentions(body["properties"]["roleDefinitionId"], "managedIdentityOperator") and (
            MANAGED_IDENTITY_OPERATOR not in json.dumps(body)
        ):
            continue
        found += 1
        # Then its scope is a user-assigned identity: never a resource group or a subscription.
        scope = symbols(path, "resources")[body["scope"]]
        assert scope["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities", f"{path.name}: {name}"
    assert found == 2  # the job identity (access.bicep) and each team identity (identity-operator.bicep)

"""The API's Entra ID registration: the app roles the code checks, a delegated scope the Azure CLI may use without
consent, v2 tokens with security groups, a service principal, and the outputs the CLI is configured from."""

from __future__ import annotations

import json
import re
from typing import Any

from dispatcher.settings import ROLES
from tests.infra.templates import (
    INFRA,
    MAIN,
    TENANT_ID,
    Frame,
    Opaque,
    deployed_app_settings,
    evaluate,
    extensions,
    main_frame,
    module_deployments,
    symbols,
    unwrap,
)

REGISTRATION = INFRA / "app" / "api-registration.bicep"
DEFAULT_DEPLOYMENT = {"environmentName": "dev", "location": "westeurope"}
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def registration(parameters: dict[str, Any] | None = None) -> Frame:
    """The registration module's frame as main.bicep deploys it (a default deployment unless told otherwise)."""
    (deployment,) = module_deployments(main_frame({**DEFAULT_DEPLOYMENT, **(parameters or {})}), "apiRegistration")
    return deployment.frame


def application(frame: Frame) -> dict[str, Any]:
    """The app registration as ``frame`` deploys it."""
    resources = symbols(REGISTRATION, "resources")
    body: dict[str, Any] = evaluate(unwrap(resources["application"]["config"]), frame)
    return body


def outputs(parameters: dict[str, Any]) -> dict[str, Any]:
    frame = main_frame({**DEFAULT_DEPLOYMENT, **parameters})
    return {name: evaluate(output["value"], frame) for name, output in symbols(MAIN, "outputs").items()}


def test_the_registration_uses_the_generally_available_graph_extension() -> None:
    # Given bicepconfig.json next to the templates, When reading its extension alias,
    config = json.loads((INFRA / "bicepconfig.json").read_text())
    reference = config["extensions"]["microsoftGraphV1"]
    # Then it is the v1.0 types at a released (not preview) version, and the registration module declares it.
    assert reference.startswith("br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:")
    assert re.fullmatch(r"\d+\.\d+\.\d+", reference.rsplit(":", 1)[1]), reference
    assert extensions(REGISTRATION) == ["microsoftGraphV1"]
    types = {resource["type"] for resource in symbols(REGISTRATION, "resources").values()}
    assert types == {"Microsoft.Graph/applications", "Microsoft.Graph/servicePrincipals"}


def test_the_api_has_the_app_roles_the_code_checks_for_users_and_applications() -> None:
    # Given the registration a default deployment makes, When reading its app roles,
    roles = application(registration())["appRoles"]
    # Then they are the code's roles, each assignable to users (and groups) and to applications, and enabled,
    assert [role["value"] for role in roles] == list(ROLES)
    for role in roles:
        assert sorted(role["allowedMemberTypes"]) == ["Application", "User"], role["value"]
        assert role["isEnabled"] is True
        assert role["displayName"]
        assert role["description"]
    # with distinct GUID ids computed from the registration's unique name and the role: the same on every deployment.
    ids = [role["id"] for role in roles]
    assert all(_GUID.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    raw_id = symbols(REGISTRATION, "resources")["application"]["config"]["appRoles"]["config"]["id"]["function"]
    assert raw_id["type"] == "guid"
    assert next(iter(raw_id["parameters"].values())) == "uniqueName"
    assert [role["id"] for role in application(registration())["appRoles"]] == ids


def test_the_api_has_one_delegated_scope_the_azure_cli_may_use_without_consent() -> None:
    # Given the registration's API settings,
    api = application(registration())["api"]
    # When reading its scopes, Then there is one user scope, access_as_user,
    (scope,) = api["oauth2PermissionScopes"]
    assert scope["value"] == "access_as_user"
    assert scope["type"] == "User"
    assert scope["isEnabled"] is True
    assert _GUID.match(scope["id"])
    # And the Azure CLI's public client is pre-authorized for exactly that scope.
    assert api["preAuthorizedApplications"] == [{"appId": AZURE_CLI, "delegatedPermissionIds": [scope["id"]]}]


def test_the_api_takes_v2_tokens_with_security_groups_from_its_own_tenant() -> None:
    # Given the registration a default deployment makes,
    frame = registration()
    app = application(frame)
    # Then its tokens are v2 (their audience is the client id, which the app checks) and carry security groups,
    assert app["api"]["requestedAccessTokenVersion"] == 2
    assert app["groupMembershipClaims"] == "SecurityGroup"
    assert app["signInAudience"] == "AzureADMyOrg"
    # and its identifier URI is api://{tenant}/{unique name}: no self-reference to the app id it does not know yet.
    unique_name = frame.arguments["uniqueName"]
    assert unique_name == app["uniqueName"] == "aci-dispatcher-abcdefghijklm"
    assert app["identifierUris"] == [f"api://{TENANT_ID}/{unique_name}"]


def test_the_api_has_a_service_principal_for_role_assignments() -> None:
    (principal,) = [r for r in symbols(REGISTRATION, "resources").values() if r["type"].endswith("/servicePrincipals")]
    assert unwrap(principal["config"])["appId"] == {
        "operator": {"type": "property_accessor", "operands": {"operand_1": "application", "operand_2": "appId"}}
    }


def test_the_outputs_name_the_api_the_scope_the_cli_asks_for_and_the_tenant() -> None:
    # Given a default deployment, When evaluating main.bicep's outputs,
    values = outputs({})
    # Then the client id is the registration's, the tenant is the deployment's,
    assert values["API_CLIENT_ID"] == Opaque("application.appId")
    assert values["AUTH_TENANT_ID"] == TENANT_ID
    # and the scope is the identifier URI's /.default: AzureCliCredential drops exactly that suffix to ask az for
    # a token of the resource (azure-identity's _scopes_to_resource), and the pre-authorized scope comes with it.
    assert values["API_SCOPE"] == f"api://{TENANT_ID}/aci-dispatcher-abcdefghijklm/.default"


def test_without_the_registration_there_is_no_client_scope_or_audience() -> None:
    # Given registerApi=false (azd: DISPATCHER_REGISTER_API), When evaluating the deployment,
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["registerApi"]["value"] == "${DISPATCHER_REGISTER_API=true}"
    assert module_deployments(main_frame({**DEFAULT_DEPLOYMENT, "registerApi": False}), "apiRegistration") == []
    values = outputs({"registerApi": False})
    # Then nothing names a client or a scope, and the app gets no audience: it accepts no token, keys only.
    assert (values["API_CLIENT_ID"], values["API_SCOPE"]) == ("", "")
    assert deployed_app_settings({**DEFAULT_DEPLOYMENT, "registerApi": False})["DISPATCHER_AUTH_AUDIENCE"] == ""


def test_the_app_takes_tokens_for_the_registration_it_is_deployed_with() -> None:
    settings = deployed_app_settings(DEFAULT_DEPLOYMENT)
    assert settings["DISPATCHER_AUTH_AUDIENCE"] == Opaque("application.appId")
    assert settings["DISPATCHER_AUTH_TENANT_ID"] == TENANT_ID
    assert settings["DISPATCHER_AUTH_AUTHORITY"] == f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"

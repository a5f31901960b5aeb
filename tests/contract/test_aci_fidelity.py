"""Where the ACI emulator answers as ARM does for what the dispatcher never sends: api-versions, missing routes,
required properties, secret properties, the create's answer, addresses."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import requests
from azure.mgmt.containerinstance import ContainerInstanceManagementClient

from devstack.aci import AciEmulator, SimulationRules
from devstack.tls import TLSFiles
from dispatcher.adapters.azure.credential import DEVSTACK_TOKEN
from tests.fixtures.aci import ACI_SUBSCRIPTION, LOCATION, RESOURCE_GROUP, job_container, job_group

MakeEmulator = Callable[..., AciEmulator]
MakeClient = Callable[[AciEmulator], ContainerInstanceManagementClient]
PROVIDER = f"/subscriptions/{ACI_SUBSCRIPTION}/providers/Microsoft.ContainerInstance"
GROUPS = f"/subscriptions/{ACI_SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerInstance"
GROUPS += "/containerGroups"
AUTH = {"Authorization": f"Bearer {DEVSTACK_TOKEN}"}


def body(**properties: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}},
    }
    return {
        "location": LOCATION,
        "properties": {"osType": "Linux", "restartPolicy": "Never", "containers": [container], **properties},
    }


@pytest.fixture
def arm(make_aci_emulator: MakeEmulator, dev_tls: TLSFiles) -> Callable[..., requests.Response]:
    """Raw ARM requests to a simulating emulator: ``arm(method, path, version="2023-05-01", json=...)``."""
    emulator = make_aci_emulator(mode="simulate", simulation=SimulationRules(provisioning_latency_seconds=(0.01, 0.02)))

    def call(method: str, path: str, version: str | None = "2023-05-01", **kwargs: Any) -> requests.Response:
        query = f"?api-version={version}" if version else ""
        return requests.request(
            method, f"{emulator.url}{path}{query}", headers=AUTH, verify=str(dev_tls.ca), timeout=10, **kwargs
        )

    return call


@pytest.mark.parametrize("version", ["2099-01-01", "not-a-version", "2024-05-01-preview"])
def test_an_api_version_the_provider_lacks_is_refused_as_arm_refuses_it(
    arm: Callable[..., requests.Response], version: str
) -> None:
    put = arm("PUT", f"{GROUPS}/g1", version, json=body())
    listed = arm("GET", GROUPS, version)
    usages = arm("GET", f"{PROVIDER}/locations/{LOCATION}/usages", version)
    assert (put.status_code, put.json()["error"]["code"]) == (400, "NoRegisteredProviderFound")
    assert "The supported api-versions are '2021-10-01, 2023-05-01'" in put.json()["error"]["message"]
    assert (listed.status_code, listed.json()["error"]["code"]) == (404, "InvalidResourceType")
    assert usages.status_code == 400
    assert arm("GET", f"{GROUPS}/g1").status_code == 404  # nothing was created


def test_the_versions_whose_shapes_it_serves_are_accepted(arm: Callable[..., requests.Response]) -> None:
    assert arm("PUT", f"{GROUPS}/g1", "2021-10-01", json=body()).status_code == 201
    assert arm("GET", f"{GROUPS}/g1", "2023-05-01").status_code == 200


def test_a_patch_replaces_the_tags_and_other_routes_answer_in_arms_shape(arm: Callable[..., requests.Response]) -> None:
    arm("PUT", f"{GROUPS}/g1", json={**body(), "tags": {"a": "1"}})
    patched = arm("PATCH", f"{GROUPS}/g1", json={"tags": {"team": "red"}})
    assert (patched.status_code, patched.json()["tags"]) == (200, {"team": "red"})
    assert arm("GET", f"{GROUPS}/g1").json()["tags"] == {"team": "red"}
    exec_ = arm("POST", f"{GROUPS}/g1/containers/main/exec", json={"command": "sh"})
    assert (exec_.status_code, exec_.json()["error"]["code"]) == (501, "NotImplemented")
    assert arm("POST", f"{GROUPS}/g1/containers/main/attach").status_code == 501
    assert arm("GET", f"{PROVIDER}/locations/{LOCATION}/cachedImages").json() == {"value": []}
    capabilities = arm("GET", f"{PROVIDER}/locations/{LOCATION}/capabilities").json()["value"]
    assert {c["osType"] for c in capabilities} == {"Linux"}
    operations = arm("GET", "/providers/Microsoft.ContainerInstance/operations").json()["value"]
    assert "Microsoft.ContainerInstance/containerGroups/read" in {o["name"] for o in operations}
    assert arm("GET", f"{GROUPS}/g1/outboundNetworkDependenciesEndpoints").json() == []
    unknown = arm("GET", f"{PROVIDER}/somethingElse")
    wrong_method = arm("POST", f"{GROUPS}/g1")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "InvalidResourceType")
    assert (wrong_method.status_code, wrong_method.json()["error"]["code"]) == (405, "MethodNotAllowed")


REQUIRED = [
    ({"ipAddress": {"type": "Public"}}, "ports"),
    ({"ipAddress": {"ports": [{"port": 80}]}}, "type"),
    ({"ipAddress": {"type": "Public", "ports": [{"protocol": "TCP"}]}}, "port"),
    ({"imageRegistryCredentials": [{"username": "u", "password": "p"}]}, "server"),
    ({"diagnostics": {"logAnalytics": {"workspaceId": "w"}}}, "workspaceKey"),
    ({"dnsConfig": {"searchDomains": "x"}}, "nameServers"),
    ({"subnetIds": [{"name": "s"}]}, "id"),
]


@pytest.mark.parametrize(("properties", "missing"), REQUIRED, ids=[m for _, m in REQUIRED])
def test_a_property_the_swagger_requires_is_refused_when_missing_naming_it(
    arm: Callable[..., requests.Response], properties: dict[str, Any], missing: str
) -> None:
    response = arm("PUT", f"{GROUPS}/g1", json=body(**properties))
    assert response.status_code == 400
    assert f"Required property '{missing}'" in response.json()["error"]["message"]


def test_a_gpu_without_a_sku_is_refused(arm: Callable[..., requests.Response]) -> None:
    request = body()
    request["properties"]["containers"][0]["properties"]["resources"]["requests"]["gpu"] = {"count": 1}
    response = arm("PUT", f"{GROUPS}/g1", json=request)
    assert (response.status_code, "sku" in response.json()["error"]["message"]) == (400, True)


def test_secret_properties_are_never_echoed(arm: Callable[..., requests.Response]) -> None:
    request = body(
        diagnostics={"logAnalytics": {"workspaceId": "ws", "workspaceKey": "KEY-1", "workspaceResourceId": "RID-2"}},
        extensions=[
            {
                "name": "ext",
                "properties": {"extensionType": "kube-proxy", "version": "1.0", "protectedSettings": {"k": "PROT-3"}},
            }
        ],
    )
    answers = [
        arm("PUT", f"{GROUPS}/g1", json=request).text,
        arm("GET", f"{GROUPS}/g1").text,
        arm("GET", GROUPS).text,
    ]
    for text in answers:
        assert "KEY-1" not in text
        assert "RID-2" not in text
        assert "PROT-3" not in text


def test_addresses_ports_and_defaults_are_filled_as_the_service_fills_them(
    arm: Callable[..., requests.Response],
) -> None:
    request = body(ipAddress={"type": "Public", "ports": [{"port": 80}], "dnsNameLabel": "app"})
    created = arm("PUT", f"{GROUPS}/g1", json=request).json()["properties"]
    got = arm("GET", f"{GROUPS}/g1").json()["properties"]
    for props in (created, got):
        assert props["ipAddress"]["ip"].count(".") == 3
        assert props["ipAddress"]["fqdn"] == f"app.{LOCATION}.azurecontainer.io"
        assert props["containers"][0]["properties"]["ports"] == []
    assert created["provisioningState"] == "Pending"


def test_the_creates_answer_state_follows_the_configured_proportions(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    emulator = make_aci_emulator(mode="simulate", put_answers={"Succeeded": 1.0})
    client = make_aci_client(emulator)
    group = job_group(job_container("job", ["/bin/true"]))
    answered = client.container_groups.begin_create_or_update(RESOURCE_GROUP, "g1", group, polling=False).result()
    assert answered.provisioning_state == "Succeeded"
    mixed = make_aci_emulator(mode="simulate", put_answers={"Pending": 1.0, "Creating": 1.0})
    client = make_aci_client(mixed)
    states = {
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, f"g{n}", copy.deepcopy(group), polling=False)
        .result()
        .provisioning_state
        for n in range(20)
    }
    assert states == {"Pending", "Creating"}


def test_an_identical_put_restarts_the_groups_containers(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # ACI documents that a PUT of an existing group restarts its containers even when the body is the same
    emulator = make_aci_emulator(mode="simulate", simulation=SimulationRules(provisioning_latency_seconds=(0.01, 0.02)))
    client = make_aci_client(emulator)
    group = job_group(job_container("job", ["/bin/true"]))
    client.container_groups.begin_create_or_update(RESOURCE_GROUP, "g1", group).result()
    before = client.container_groups.get(RESOURCE_GROUP, "g1").containers[0].instance_view.restart_count
    client.container_groups.begin_create_or_update(RESOURCE_GROUP, "g1", group).result()
    after = client.container_groups.get(RESOURCE_GROUP, "g1").containers[0].instance_view.restart_count
    assert after == before + 1

"""Mapping a spec to the ACI container group of one attempt, and rendering it with secrets redacted."""

import base64
import dataclasses
import datetime as dt
import json

import pytest

from dispatcher.adapters.azure.mapping import REDACTED, build_container_group, render, to_wire
from dispatcher.domain.document import validate_job
from dispatcher.domain.errors import SecretNotFound
from dispatcher.domain.naming import (
    TAG_ATTEMPT,
    TAG_CREATED,
    TAG_DEADLINE,
    TAG_INSTANCE,
    TAG_JOB,
    TAG_SPEC_HASH,
    group_name,
)
from dispatcher.domain.secrets import dispatcher_secret_keys, job_secret_keys
from dispatcher.ports import GroupRequest
from dispatcher.settings import ContainerLogs, DispatcherSettings, RegistryCredential

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
SETTINGS = DispatcherSettings(
    instance="test",
    storage_account="acct",
    allowed_shares=["datasets"],
    job_identity="/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/job",
    subnet_ids=["/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/jobs"],
    registry_credentials=[
        RegistryCredential(server="myacr.azurecr.io", identity="/subscriptions/s/identities/pull"),
        RegistryCredential(server="registry.example.com", username="bot", password_secret="registry-password"),
    ],
)
SPEC = validate_job(
    {
        "id": "report-7",
        "containers": [
            {
                "name": "main",
                "image": "myacr.azurecr.io/team/report:1",
                "command": ["python3", "run.py"],
                "env": {"MODE": "full"},
                "secretEnv": {"DB_PASSWORD": "db-password"},
                "cpu": 2,
                "memoryGB": 4,
                "mounts": [
                    {"volume": "data", "path": "/data", "readOnly": True},
                    {"volume": "out", "path": "/out"},
                    {"volume": "creds", "path": "/run/secrets"},
                    {"volume": "tmp", "path": "/scratch"},
                ],
            },
            {"name": "side", "image": "registry.example.com/side:2", "cpu": 0.5, "memoryGB": 0.5},
        ],
        "initContainers": [{"name": "prep", "image": "busybox", "command": ["true"]}],
        "volumes": {
            "data": {"kind": "share", "share": "datasets", "readOnly": True},
            "out": {"kind": "workspace"},
            "creds": {"kind": "secret", "items": {"token": "api-token"}},
            "tmp": {"kind": "emptyDir"},
        },
        "timeoutSeconds": 600,
        "restartPolicy": "OnFailure",
        "priority": "Spot",
    }
)
JOB_SECRETS = {"db-password": "pw-value", "api-token": "token-value"}
OWN_SECRETS = {"storage-account-key": "key-value", "registry-password": "registry-value"}
SECRETS = {**JOB_SECRETS, **OWN_SECRETS}


def request(attempt: int = 2, job_secrets: dict[str, str] = JOB_SECRETS) -> GroupRequest:
    return GroupRequest(
        job_id="report-7",
        attempt=attempt,
        spec=SPEC,
        location="westeurope",
        created=NOW,
        timeout_seconds=600,
        job_secrets=job_secrets,
        dispatcher_secrets=OWN_SECRETS,
    )


def wire() -> dict[str, object]:
    return to_wire(build_container_group(request(), SETTINGS))


def test_job_references_resolve_in_the_job_vault_and_keys_and_passwords_in_the_dispatchers() -> None:
    assert set(job_secret_keys(SPEC)) == set(JOB_SECRETS)
    assert set(dispatcher_secret_keys(SPEC, SETTINGS)) == set(OWN_SECRETS)


def test_the_same_request_builds_the_same_body_byte_for_byte() -> None:
    # A relaunch after a crash rebuilds the body from the record: it must not differ (a PUT restarts containers)
    first = json.dumps(wire(), sort_keys=True)
    later = json.dumps(to_wire(build_container_group(request(), SETTINGS)), sort_keys=True)
    assert first == later


def test_group_is_linux_with_the_spec_restart_policy_priority_and_location() -> None:
    body = wire()
    props = body["properties"]
    assert (body["location"], props["osType"], props["restartPolicy"], props["priority"]) == (  # type: ignore[index]
        "westeurope",
        "Linux",
        "OnFailure",
        "Spot",
    )


def test_group_name_is_deterministic_per_job_and_attempt() -> None:
    assert group_name("report-7", 2) == "report-7-a2"


def test_tags_carry_job_attempt_hash_instance_deadline_and_creation() -> None:
    tags = wire()["tags"]
    assert tags == {
        TAG_JOB: "report-7",
        TAG_ATTEMPT: "2",
        TAG_SPEC_HASH: SPEC.spec_hash(),
        TAG_INSTANCE: "test",
        TAG_DEADLINE: "2026-11-22T12:10:00Z",
        TAG_CREATED: "2026-11-22T12:00:00Z",
    }


def test_resources_and_commands_per_container() -> None:
    containers = wire()["properties"]["containers"]  # type: ignore[index]
    main = containers[0]["properties"]
    assert main["resources"]["requests"] == {"cpu": 2.0, "memoryInGB": 4.0}
    assert main["command"] == ["python3", "run.py"]


def test_secrets_become_secure_values_never_values() -> None:
    env = wire()["properties"]["containers"][0]["properties"]["environmentVariables"]  # type: ignore[index]
    assert {"name": "DB_PASSWORD", "secureValue": "pw-value"} in env
    assert {"name": "MODE", "value": "full"} in env
    assert all("value" not in var for var in env if var["name"] == "DB_PASSWORD")


def test_volumes_map_to_azure_file_secret_and_empty_dir() -> None:
    volumes = {v["name"]: v for v in wire()["properties"]["volumes"]}  # type: ignore[index]
    assert volumes["data"]["azureFile"] == {
        "shareName": "datasets",
        "storageAccountName": "acct",
        "storageAccountKey": "key-value",
        "readOnly": True,
    }
    assert volumes["out"]["azureFile"]["shareName"] == "ws-report-7"
    assert base64.b64decode(volumes["creds"]["secret"]["token"]) == b"token-value"
    assert volumes["tmp"]["emptyDir"] == {}


def test_secret_volumes_are_mounted_read_only() -> None:
    mounts = wire()["properties"]["containers"][0]["properties"]["volumeMounts"]  # type: ignore[index]
    assert {"name": "creds", "mountPath": "/run/secrets", "readOnly": True} in mounts


def test_init_containers_identity_subnets_and_registry_credentials() -> None:
    props = wire()["properties"]  # type: ignore[index]
    assert [c["name"] for c in props["initContainers"]] == ["prep"]
    assert props["subnetIds"] == [{"id": SETTINGS.subnet_ids[0]}]
    creds = {c["server"]: c for c in props["imageRegistryCredentials"]}
    assert creds["myacr.azurecr.io"] == {"server": "myacr.azurecr.io", "identity": "/subscriptions/s/identities/pull"}
    assert creds["registry.example.com"]["password"] == "registry-value"
    assert wire()["identity"]["type"] == "UserAssigned"  # type: ignore[index]


def test_a_missing_secret_fails_naming_the_reference() -> None:
    partial = {k: v for k, v in JOB_SECRETS.items() if k != "api-token"}
    with pytest.raises(SecretNotFound, match="api-token"):
        build_container_group(request(1, partial), SETTINGS)


def test_render_redacts_every_secret_value() -> None:
    body = json.dumps(render(SPEC, SETTINGS, location="westeurope", now=NOW))
    assert REDACTED in body
    for value in SECRETS.values():
        assert value not in body


def test_render_works_for_a_spec_without_an_id() -> None:
    body = render(validate_job({"image": "busybox"}), SETTINGS, location="eastus", now=NOW)
    assert body["tags"][TAG_JOB] == "job-id"


LOGS = ContainerLogs(workspace_id="5f0c0c9e-0000-4000-8000-000000000001", key_secret="log-analytics-key")


def test_a_pool_with_container_logs_sends_them_to_its_workspace_with_the_key_from_the_dispatchers_vault() -> None:
    wanted = dataclasses.replace(
        request(), container_logs=LOGS, dispatcher_secrets={**OWN_SECRETS, "log-analytics-key": "wk"}
    )
    analytics = to_wire(build_container_group(wanted, SETTINGS))["properties"]["diagnostics"]["logAnalytics"]  # type: ignore[index]
    assert analytics == {
        "workspaceId": LOGS.workspace_id,
        "workspaceKey": "wk",
        "logType": "ContainerInstanceLogs",
        "metadata": {TAG_JOB: "report-7", TAG_ATTEMPT: "2"},
    }
    with pytest.raises(SecretNotFound, match="log-analytics-key"):
        build_container_group(dataclasses.replace(request(), container_logs=LOGS), SETTINGS)
    assert "diagnostics" not in wire()["properties"]  # type: ignore[operator]


def test_render_shows_the_workspace_and_redacts_its_key() -> None:
    body = render(SPEC, SETTINGS, location="westeurope", now=NOW, container_logs=LOGS)
    analytics = body["properties"]["diagnostics"]["logAnalytics"]
    assert (analytics["workspaceId"], analytics["workspaceKey"]) == (LOGS.workspace_id, REDACTED)

"""``submit --via servicebus`` and ``dlq`` reach a deployed namespace as the signed-in identity (azure-identity),
a local one by connection string; a credential is built only for a namespace of Azure itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential
from azure.servicebus import ServiceBusClient
from azure.servicebus.exceptions import ServiceBusError
from typer.testing import CliRunner

from dispatcher import cli_bootstrap
from dispatcher.adapters.azure.servicebus import translated
from dispatcher.domain.errors import CloudError
from dispatcher.entrypoints.cli import app

runner = CliRunner()
CONNECTION = "Endpoint=sb://localhost:5672/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0;UseDevelopmentEmulator=true"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ServiceBusClient, str, str]]:
    """What the CLI sent, and over which client, without a network."""
    calls: list[tuple[ServiceBusClient, str, str]] = []

    def send(client: ServiceBusClient, queue: str, body: bytes, message_id: str, content_type: str) -> None:
        calls.append((client, queue, message_id))

    monkeypatch.setattr(cli_bootstrap, "send_submission", send)
    for name in ("DISPATCHER_SERVICEBUS_NAMESPACE", "DISPATCHER_SERVICEBUS_CONNECTION_STRING", "DISPATCHER_CLOUD"):
        monkeypatch.delenv(name, raising=False)
    return calls


def submit(tmp_path: Path, *args: str) -> Any:
    spec = tmp_path / "job.yaml"
    spec.write_text("id: bus-1\nimage: busybox\n")
    return runner.invoke(app, ["submit", str(spec), "--via", "servicebus", *args])


def test_a_namespace_is_reached_as_the_signed_in_identity(sent: list[Any], tmp_path: Path) -> None:
    result = submit(tmp_path, "--servicebus-namespace", "jobsbus.servicebus.windows.net", "--queue", "jobs")
    assert result.exit_code == 0, result.output
    ((client, queue, message_id),) = sent
    assert (client.fully_qualified_namespace, queue, message_id) == ("jobsbus.servicebus.windows.net", "jobs", "bus-1")
    assert isinstance(client._credential, DefaultAzureCredential)


def test_the_namespace_may_come_from_the_environment_before_a_connection_string(
    sent: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCHER_SERVICEBUS_CONNECTION_STRING", CONNECTION)
    monkeypatch.setenv("DISPATCHER_SERVICEBUS_NAMESPACE", "jobsbus.servicebus.windows.net")
    assert submit(tmp_path).exit_code == 0
    assert sent[0][0].fully_qualified_namespace == "jobsbus.servicebus.windows.net"
    monkeypatch.delenv("DISPATCHER_SERVICEBUS_NAMESPACE")
    assert submit(tmp_path).exit_code == 0
    assert sent[1][0].fully_qualified_namespace == "localhost:5672"


@pytest.mark.parametrize(
    "namespace",
    [
        "evil.example.com",
        "jobsbus.servicebus.windows.net.example.com",
        "localhost:5672",
        "jobsbus.servicebus.usgovcloudapi.net",
    ],
)
def test_no_credential_is_built_for_a_namespace_outside_the_azure_cloud(
    sent: list[Any], tmp_path: Path, namespace: str
) -> None:
    result = submit(tmp_path, "--servicebus-namespace", namespace)
    assert result.exit_code == 2
    assert "--servicebus-namespace" in result.stderr
    assert sent == []


def test_another_cloud_is_named_by_dispatcher_cloud(
    sent: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCHER_CLOUD", "AzureUSGovernment")
    assert submit(tmp_path, "--servicebus-namespace", "jobsbus.servicebus.usgovcloudapi.net").exit_code == 0
    monkeypatch.setenv("DISPATCHER_CLOUD", "Mars")
    refused = submit(tmp_path, "--servicebus-namespace", "jobsbus.servicebus.usgovcloudapi.net")
    assert (refused.exit_code, len(sent)) == (2, 1)
    assert "DISPATCHER_CLOUD" in refused.stderr


def test_without_a_namespace_or_a_connection_string_it_says_how_to_give_one(sent: list[Any], tmp_path: Path) -> None:
    result = submit(tmp_path)
    assert result.exit_code == 2
    assert "--servicebus-namespace" in result.stderr
    assert "--servicebus-connection" in result.stderr


def test_no_token_for_service_bus_is_a_permanent_failure_saying_how_to_sign_in() -> None:
    refused = ServiceBusError("Handler failed", error=ClientAuthenticationError("DefaultAzureCredential failed"))
    with pytest.raises(CloudError) as caught, translated("enqueue on 'jobs'"):
        raise refused
    assert caught.value.transient is False
    assert "az login" in str(caught.value)
    assert "DefaultAzureCredential failed" in str(caught.value)

"""``dispatcher configure``: the CLI's configuration for a deployment from azd's values, its function key read from
ARM (here a loopback stand-in, with the development token); what it writes is what the other commands read."""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dispatcher import cli_bootstrap
from dispatcher.adapters.azure.credential import DEVSTACK_TOKEN
from dispatcher.entrypoints.cli import app
from tests.fixtures.host_keys import SITE, HostKeys, azd_environment, host_keys_stub

runner = CliRunner()


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HostKeys]:
    with host_keys_stub() as stub:
        for name, value in azd_environment(stub, "https://func-dispatcher.azurewebsites.net").items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DISPATCHER_CONFIG", str(tmp_path / "config.toml"))
        for name in ("DISPATCHER_URL", "DISPATCHER_KEY", "DISPATCHER_SERVICEBUS_NAMESPACE", "DISPATCHER_JOBS_QUEUE"):
            monkeypatch.delenv(name, raising=False)
        yield stub


def configure(*args: str) -> Any:
    return runner.invoke(app, ["configure", *args])


def test_it_writes_the_url_the_default_function_key_and_the_namespace_for_the_owner_only(
    keys: HostKeys, tmp_path: Path
) -> None:
    result = configure()
    assert result.exit_code == 0, result.output
    path = tmp_path / "config.toml"
    assert tomllib.loads(path.read_text()) == {
        "url": "https://func-dispatcher.azurewebsites.net/api",
        "key": "the-default-function-key",
        "servicebus_namespace": "sb-dispatcher.servicebus.windows.net",
        "jobs_queue": "jobs",
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "the-default-function-key" not in result.output
    assert "the-master-key" not in path.read_text()
    ((request,),) = [keys.requests]
    assert (request["path"], request["authorization"]) == (f"{SITE}/host/default/listKeys", f"Bearer {DEVSTACK_TOKEN}")
    assert "api-version=" in request["query"]
    assert "dispatcher health" in result.stdout


def test_what_it_writes_is_what_submit_via_servicebus_reads(
    keys: HostKeys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert configure().exit_code == 0
    sent: list[tuple[Any, str]] = []
    monkeypatch.setattr(cli_bootstrap, "send_submission", lambda client, queue, *_: sent.append((client, queue)))
    monkeypatch.delenv("SERVICEBUS_NAMESPACE")
    spec = tmp_path / "job.yaml"
    spec.write_text("image: busybox\n")
    result = runner.invoke(app, ["submit", str(spec), "--via", "servicebus"])
    assert result.exit_code == 0, result.output
    ((client, queue),) = sent
    assert (client.fully_qualified_namespace, queue) == ("sb-dispatcher.servicebus.windows.net", "jobs")


def test_a_different_file_already_there_is_kept_beside_it(keys: HostKeys, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('url = "https://other.example.com/api"\n')
    result = configure("--url", "https://func-dispatcher.azurewebsites.net/api/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "config.toml.bak").read_text() == 'url = "https://other.example.com/api"\n'
    assert (
        tomllib.loads((tmp_path / "config.toml").read_text())["url"] == "https://func-dispatcher.azurewebsites.net/api"
    )
    assert "config.toml.bak" in result.stdout


def test_without_the_key_when_asked_or_when_the_app_has_none_yet(keys: HostKeys, tmp_path: Path) -> None:
    assert configure("--no-key").exit_code == 0
    assert "key" not in tomllib.loads((tmp_path / "config.toml").read_text())
    assert keys.requests == []
    keys.default = None  # ARM answers 404
    refused = configure()
    assert refused.exit_code == 2
    assert "func-dispatcher" in refused.stderr


def test_a_real_credential_is_never_sent_to_an_arm_endpoint_outside_azure(
    keys: HostKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPATCHER_CREDENTIAL")
    refused = configure()
    assert refused.exit_code == 2
    assert "DISPATCHER_ARM_ENDPOINT" in refused.stderr
    assert keys.requests == []


def test_without_a_url_or_the_apps_name_it_says_what_to_give(keys: HostKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_FUNCTION_APP_URL")
    assert "AZURE_FUNCTION_APP_URL" in configure().stderr
    monkeypatch.delenv("AZURE_RESOURCE_GROUP")
    missing = configure("--url", "https://func-dispatcher.azurewebsites.net")
    assert missing.exit_code == 2
    assert "--resource-group" in missing.stderr
    plain = configure("--url", "http://func-dispatcher.azurewebsites.net")
    assert plain.exit_code == 2  # a key over plain http

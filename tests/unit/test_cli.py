"""The first CLI commands: validate, schema and render."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dispatcher.domain.document import json_schema
from dispatcher.entrypoints.cli import app

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
runner = CliRunner()


@pytest.fixture(autouse=True)
def demo_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_STORAGE_ACCOUNT", "devstoreaccount1")
    monkeypatch.setenv("DISPATCHER_ALLOWED_SHARES", '["datasets"]')


def test_validate_accepts_every_example() -> None:
    result = runner.invoke(app, ["validate", *map(str, EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") == len(EXAMPLES)


def test_validate_prints_every_error_with_its_field_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("containers:\n  - {name: a, image: busybox, cpu: 9}\nrestartPolicy: Always\n")
    good = tmp_path / "good.yaml"
    good.write_text("image: busybox\n")
    result = runner.invoke(app, ["validate", str(good), str(bad)])
    assert result.exit_code == 2  # invalid input, as submit says of the same spec
    assert "containers[0].cpu: 9 is above the 4 vCPU" in result.output
    assert "restartPolicy:" in result.output


def test_validate_checks_the_servers_policy_not_this_machines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatcher.domain.policy import policy_of
    from dispatcher.entrypoints.client import DispatcherClient
    from dispatcher.settings import DispatcherSettings

    server = DispatcherSettings(allowed_registries=["mcr.microsoft.com"], storage_account="acct")
    monkeypatch.setattr(DispatcherClient, "policy", lambda self: policy_of(server))
    monkeypatch.setenv("DISPATCHER_ALLOWED_REGISTRIES", '["*"]')  # this machine's settings are not the policy
    spec = tmp_path / "hub.yaml"
    spec.write_text("image: busybox\n")
    result = runner.invoke(app, ["validate", str(spec), "--url", "http://127.0.0.1:9/api"])
    assert result.exit_code == 2
    assert "breaks policy" in result.output
    assert "containers[0].image" in result.output
    offline = runner.invoke(app, ["validate", str(spec), "--offline"])
    assert offline.exit_code == 0
    assert "not a dispatcher's policy" in offline.stderr


def test_validate_without_a_server_checks_the_schema_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPATCHER_URL", raising=False)
    monkeypatch.setenv("DISPATCHER_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DISPATCHER_ALLOWED_REGISTRIES", '["mcr.microsoft.com"]')
    spec = tmp_path / "hub.yaml"
    spec.write_text("image: busybox\n")
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "checked the schema and ACI's limits" in result.stderr


def test_schema_prints_the_committed_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert json.loads(result.output) == json_schema()


def test_committed_schema_has_not_drifted_from_the_models() -> None:
    committed = json.loads((ROOT / "schemas" / "job.schema.json").read_text())
    assert committed == json_schema(), "run: dispatcher schema > schemas/job.schema.json"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_carry_the_schema_modeline(path: Path) -> None:
    assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/job.schema.json")


def test_render_prints_the_put_body_with_secrets_redacted() -> None:
    result = runner.invoke(app, ["render", str(ROOT / "examples" / "report.yaml"), "--location", "northeurope"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["location"] == "northeurope"
    env = body["properties"]["containers"][0]["properties"]["environmentVariables"]
    assert {"name": "DB_PASSWORD", "secureValue": "<redacted>"} in env
    volumes = {v["name"]: v for v in body["properties"]["volumes"]}
    assert volumes["creds"]["secret"] == {"api-token": "<redacted>"}
    assert volumes["out"]["azureFile"]["storageAccountKey"] == "<redacted>"


def test_render_refuses_an_invalid_spec(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("image: busybox\nrestartPolicy: Always\n")
    result = runner.invoke(app, ["render", str(bad)])
    assert result.exit_code == 2
    assert "restartPolicy" in result.output


def test_render_never_prints_inline_secret_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_ALLOW_INLINE_SECRETS", "true")
    spec = tmp_path / "inline.yaml"
    spec.write_text("containers:\n  - {name: a, image: busybox, secretEnv: {T: {value: inline-s3cret}}}\n")
    result = runner.invoke(app, ["render", str(spec)])
    assert result.exit_code == 0, result.output
    assert "inline-s3cret" not in result.output


def test_render_of_an_array_job_prints_its_first_group_each_task_with_its_index() -> None:
    result = runner.invoke(app, ["render", str(ROOT / "examples" / "array-shards.yaml")])
    assert result.exit_code == 0, result.output
    containers = json.loads(result.stdout)["properties"]["containers"]
    assert [c["name"] for c in containers] == [f"task-{i}" for i in range(16)]
    env = {e["name"]: e.get("value") for e in containers[3]["properties"]["environmentVariables"]}
    assert (env["TASK_INDEX"], env["TASK_COUNT"], env["TASK_OUTPUT_DIR"]) == ("3", "24", "/out/tasks/3")

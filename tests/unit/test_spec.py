"""Job spec v1: structure, shorthand, and every limit ACI imposes, each error naming its field."""

import json
from pathlib import Path

import pytest
import yaml

from dispatcher.domain.document import load_document, parse_job, validate_job
from dispatcher.domain.errors import InvalidJob
from dispatcher.domain.spec import ID_MAX, MAX_SPEC_BYTES, JobSpec

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def errors_of(data: object) -> dict[str, str]:
    with pytest.raises(InvalidJob) as caught:
        validate_job(data)
    return {e.loc: e.message for e in caught.value.errors}


def container(**fields: object) -> dict[str, object]:
    return {"name": "main", "image": "busybox", **fields}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_a_valid_spec(path: Path) -> None:
    spec = parse_job(path.read_text())
    assert spec.containers


def test_image_shorthand_becomes_a_single_container_named_main() -> None:
    spec = parse_job('image: busybox\ncommand: ["echo", "hi"]')
    assert [(c.name, c.image, c.command) for c in spec.containers] == [("main", "busybox", ["echo", "hi"])]


def test_json_is_accepted_as_well_as_yaml() -> None:
    spec = parse_job(b'{"image": "busybox", "timeoutSeconds": 5}')
    assert spec.timeout_seconds == 5


def test_shorthand_and_containers_together_are_refused() -> None:
    assert "" in errors_of({"image": "busybox", "containers": [container()]})


def test_a_job_needs_a_container() -> None:
    assert "containers" in errors_of({"name": "empty"})


def test_unknown_fields_are_refused_by_name() -> None:
    assert "containers[0].gpu" in errors_of({"containers": [container(gpu=1)]})


def test_more_than_60_containers_is_refused() -> None:
    data = {"containers": [container(name=f"c{i}", cpu=0.01, memoryGB=0.1) for i in range(61)]}
    assert "60" in errors_of(data)["containers"]


def test_more_than_20_volumes_is_refused() -> None:
    data = {"image": "busybox", "volumes": {f"v{i}": {"kind": "emptyDir"} for i in range(21)}}
    assert "20" in errors_of(data)["volumes"]


def test_a_container_above_4_vcpu_is_refused_with_the_limit_named() -> None:
    assert errors_of({"containers": [container(cpu=6)]})["containers[0].cpu"] == (
        "6 is above the 4 vCPU a Linux group may request"
    )


def test_a_container_above_16_gb_is_refused() -> None:
    assert "16 GB" in errors_of({"containers": [container(memoryGB=32)]})["containers[0].memoryGB"]


def test_memory_must_be_a_multiple_of_a_tenth_of_a_gb() -> None:
    assert "0.1" in errors_of({"containers": [container(memoryGB=1.25)]})["containers[0].memoryGB"]


def test_the_group_total_is_limited_to_4_vcpu_and_16_gb() -> None:
    data = {"containers": [container(name="a", cpu=3, memoryGB=9), container(name="b", cpu=2, memoryGB=8)]}
    message = errors_of(data)["containers"]
    assert "5 vCPU in total" in message or "17 GB in total" in message


def test_mount_paths_must_be_absolute_and_free_of_colons() -> None:
    data = {
        "containers": [container(mounts=[{"volume": "s", "path": "rel"}, {"volume": "s", "path": "/a:b"}])],
        "volumes": {"s": {"kind": "emptyDir"}},
    }
    found = errors_of(data)
    assert "absolute" in found["containers[0].mounts[0].path"]
    assert "':'" in found["containers[0].mounts[1].path"]


def test_mounts_must_name_declared_volumes() -> None:
    found = errors_of({"containers": [container(mounts=[{"volume": "nope", "path": "/x"}])]})
    assert "not declared" in found["containers[0].mounts[0].volume"]


def test_env_names_must_be_valid() -> None:
    assert "1BAD" in errors_of({"containers": [container(env={"1BAD": "x"})]})["containers[0].env"]


def test_a_variable_may_not_be_both_plain_and_secret() -> None:
    data = {"containers": [container(env={"X": "1"}, secretEnv={"X": "x-secret"})]}
    assert "containers[0].secretEnv.X" in errors_of(data)


def test_container_names_are_unique_across_init_and_main_containers() -> None:
    data = {"containers": [container(name="a")], "initContainers": [{"name": "a", "image": "busybox"}]}
    assert "already the name" in errors_of(data)["containers[0].name"]


def test_container_names_must_be_dns_labels() -> None:
    assert "lowercase" in errors_of({"containers": [container(name="Main_1")]})["containers[0].name"]


def test_restart_policy_always_is_refused_with_a_reason() -> None:
    message = errors_of({"image": "busybox", "restartPolicy": "Always"})["restartPolicy"]
    assert "never finish" in message


def test_restart_policy_on_failure_is_accepted() -> None:
    assert validate_job({"image": "busybox", "restartPolicy": "OnFailure"}).restart_policy == "OnFailure"


@pytest.mark.parametrize("job_id", ["UPPER", "-lead", "trail-", "dou--ble", "x" * (ID_MAX + 1), "sp ace"])
def test_invalid_ids_are_refused(job_id: str) -> None:
    assert "id" in errors_of({"id": job_id, "image": "busybox"})


def test_the_longest_id_is_accepted() -> None:
    assert validate_job({"id": "a" * ID_MAX, "image": "busybox"}).id == "a" * ID_MAX


def test_retries_shorthand_and_backoff() -> None:
    spec = validate_job({"image": "busybox", "retries": {"count": 3, "backoffSeconds": 10, "maxBackoffSeconds": 25}})
    assert [spec.retries.delay(n) for n in (1, 2, 3)] == [10, 20, 25]
    assert validate_job({"image": "busybox", "retries": 2}).retries.count == 2


def test_more_than_ten_retries_is_refused() -> None:
    assert "retries.count" in errors_of({"image": "busybox", "retries": 11})


def test_share_names_follow_azure_files_rules() -> None:
    found = errors_of({"image": "busybox", "volumes": {"d": {"kind": "share", "share": "Bad_Name"}}})
    assert "volumes.d.share" in found


def test_unknown_volume_kinds_are_refused_by_volume_name() -> None:
    assert "volumes.d" in errors_of({"image": "busybox", "volumes": {"d": {"kind": "hostPath"}}})


def test_a_job_has_at_most_one_workspace() -> None:
    data = {"image": "busybox", "volumes": {"a": {"kind": "workspace"}, "b": {"kind": "workspace"}}}
    assert "workspace" in errors_of(data)["volumes"]


def test_secret_reference_shorthand_is_a_secret_store_name() -> None:
    spec = validate_job({"containers": [container(secretEnv={"TOKEN": "api-token"})]})
    ref = spec.containers[0].secret_env["TOKEN"]
    assert (ref.secret, ref.is_inline) == ("api-token", False)


def test_a_secret_reference_needs_exactly_one_source() -> None:
    data = {"containers": [container(secretEnv={"T": {"secret": "a", "value": "b"}})]}
    assert "exactly one" in errors_of(data)["containers[0].secretEnv.T"]


def test_an_inline_secret_value_never_shows_in_dumps_or_hash_input() -> None:
    spec = validate_job({"containers": [container(secretEnv={"T": {"value": "hunter2-inline"}})]})
    assert "hunter2-inline" not in repr(spec)
    assert "hunter2-inline" not in str(spec.canonical())


def test_spec_hash_ignores_the_id_and_tracks_the_content() -> None:
    a = validate_job({"id": "a", "image": "busybox"})
    b = validate_job({"id": "b", "image": "busybox"})
    c = validate_job({"id": "a", "image": "busybox:2"})
    assert a.spec_hash() == b.spec_hash() != c.spec_hash()


def test_yaml_aliases_are_refused_so_a_small_document_cannot_explode() -> None:
    with pytest.raises(InvalidJob, match="aliases"):
        parse_job("a: &x [1, 2]\nb: *x\n")


def test_an_oversized_document_is_refused() -> None:
    with pytest.raises(InvalidJob, match="larger"):
        parse_job("name: " + "x" * MAX_SPEC_BYTES)


@pytest.mark.parametrize("text", ["[1, 2]", "just a string", "", "{{{", b"\xff\xfe"])
def test_documents_that_are_not_a_mapping_are_invalid_jobs(text: str | bytes) -> None:
    with pytest.raises(InvalidJob):
        parse_job(text)


def test_deep_nesting_is_an_invalid_job_not_a_crash() -> None:
    with pytest.raises(InvalidJob):
        parse_job("labels: " + "[" * 5000 + "]" * 5000)


def test_models_are_frozen() -> None:
    spec = validate_job({"image": "busybox"})
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "changed"  # type: ignore[misc]
    assert isinstance(spec, JobSpec)


def test_a_json_document_reads_as_the_yaml_loader_reads_it_and_yaml_flow_style_still_works() -> None:
    body = json.dumps({"id": "j", "image": "busybox", "env": {"A": "yes", "B": "null"}, "cpu": 1.5, "labels": {}})
    assert load_document(body) == yaml.safe_load(body)
    assert load_document("{id: j, image: busybox}") == {"id": "j", "image": "busybox"}  # YAML, not JSON
    assert load_document('{"cpu": NaN}') == {"cpu": "NaN"}  # not standard JSON: YAML reads a string
    with pytest.raises(InvalidJob, match="RecursionError"):
        load_document("[" * 5000 + "]" * 5000)

"""Properties of the spec and its mapping, over generated specs and arbitrary input."""

import base64
import datetime as dt
import json
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.adapters.azure.mapping import build_container_group, to_wire
from dispatcher.domain.document import parse_job, validate_job
from dispatcher.domain.errors import InvalidJob
from dispatcher.domain.naming import group_name
from dispatcher.domain.secrets import dispatcher_secret_keys, job_secret_keys
from dispatcher.domain.spec import ID_MAX, MAX_RETRIES, JobSpec
from dispatcher.ports import GroupRequest
from dispatcher.settings import DispatcherSettings

ARM_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
SETTINGS = DispatcherSettings(storage_account="acct", allowed_shares=["datasets"])

job_ids = st.from_regex(rf"\A[a-z0-9](-?[a-z0-9]){{0,{(ID_MAX - 1) // 2}}}\Z", fullmatch=True).filter(
    lambda s: len(s) <= ID_MAX
)
env_names = st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,12}\Z", fullmatch=True)
secret_names = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,20}\Z", fullmatch=True)
anything = st.text(max_size=40)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    volume_kinds = draw(st.lists(st.sampled_from(["share", "workspace", "secret", "emptyDir"]), max_size=5))
    if volume_kinds.count("workspace") > 1:
        volume_kinds = [k for k in volume_kinds if k != "workspace"] + ["workspace"]
    volumes: dict[str, Any] = {}
    for i, kind in enumerate(volume_kinds):
        if kind == "share":
            volumes[f"v{i}"] = {"kind": "share", "share": "datasets", "readOnly": draw(st.booleans())}
        elif kind == "secret":
            files = draw(
                st.dictionaries(
                    st.from_regex(r"\A[a-z][a-z0-9._-]{0,10}\Z", fullmatch=True), secret_names, min_size=1, max_size=3
                )
            )
            volumes[f"v{i}"] = {"kind": "secret", "items": files}
        else:
            volumes[f"v{i}"] = {"kind": kind}
    count = draw(st.integers(1, 4))
    containers = []
    for i in range(count):
        plain = draw(st.dictionaries(env_names.map(lambda n: "P" + n), anything, max_size=4))
        secret = draw(st.dictionaries(env_names.map(lambda n: "S" + n), secret_names, max_size=3))
        mounted = draw(st.lists(st.sampled_from(sorted(volumes)), unique=True)) if volumes else []
        containers.append(
            {
                "name": f"c{i}",
                "image": draw(st.sampled_from(["busybox", "mcr.microsoft.com/azurelinux/base/core:3.0"])),
                "command": draw(st.none() | st.lists(anything, min_size=1, max_size=4)),
                "env": plain,
                "secretEnv": secret,
                "cpu": draw(st.sampled_from([0.1, 0.25, 0.5, 1.0])),
                "memoryGB": draw(st.integers(1, 40)) / 10,
                "mounts": [{"volume": v, "path": f"/mnt/{v}", "readOnly": draw(st.booleans())} for v in mounted],
            }
        )
    return {
        "id": draw(job_ids),
        "name": draw(st.none() | anything),
        "containers": containers,
        "volumes": volumes,
        "retries": draw(st.integers(0, MAX_RETRIES)),
        "restartPolicy": draw(st.sampled_from(["Never", "OnFailure"])),
        "priority": draw(st.sampled_from(["Regular", "Spot"])),
        "timeoutSeconds": draw(st.integers(1, 86400)),
    }


def strings_outside_secret_fields(node: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Every string in a wire body except where secrets belong: secureValue, secret volumes, account keys."""
    if isinstance(node, dict):
        out = []
        for key, value in node.items():
            if key in ("secureValue", "storageAccountKey", "password") or (key == "secret" and "volumes" in path):
                continue
            out += [key, *strings_outside_secret_fields(value, (*path, key))]
        return out
    if isinstance(node, list):
        return [s for item in node for s in strings_outside_secret_fields(item, path)]
    return [node] if isinstance(node, str) else []


def mapped(spec: JobSpec, attempt: int, sentinel: str) -> tuple[dict[str, Any], list[str]]:
    """The wire body of ``spec`` with every secret resolved to a sentinel value, and those values."""
    job = {key: f"{sentinel}{i}x{key}" for i, key in enumerate(job_secret_keys(spec))}
    own = {key: f"{sentinel}own{i}x{key}" for i, key in enumerate(dispatcher_secret_keys(spec, SETTINGS))}
    assert spec.id is not None
    request = GroupRequest(spec.id, attempt, spec, "westeurope", NOW, 3600, job_secrets=job, dispatcher_secrets=own)
    return to_wire(build_container_group(request, SETTINGS)), [*job.values(), *own.values()]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(specs(), st.integers(1, MAX_RETRIES + 1))
def test_every_accepted_spec_maps_to_a_group_the_sdk_serializer_accepts(data: dict[str, Any], attempt: int) -> None:
    spec = validate_job(data)
    body, _ = mapped(spec, attempt, "SENTINEL-")
    assert body["properties"]["osType"] == "Linux"
    assert len(body["properties"]["containers"]) == len(spec.containers)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_no_secret_value_appears_outside_secure_fields(data: dict[str, Any]) -> None:
    body, values = mapped(validate_job(data), 1, "SENTINEL")
    visible = "\n".join(strings_outside_secret_fields(body))
    for value in values:
        assert value not in visible
        assert base64.b64encode(value.encode()).decode() not in visible


@given(job_ids, st.integers(1, MAX_RETRIES + 1))
def test_group_names_are_always_valid_arm_names(job_id: str, attempt: int) -> None:
    name = group_name(validate_job({"id": job_id, "image": "busybox"}).id or "", attempt)
    assert len(name) <= 63
    assert ARM_NAME.match(name)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
field_names = st.sampled_from(
    [
        "id",
        "image",
        "command",
        "containers",
        "initContainers",
        "volumes",
        "retries",
        "cpu",
        "memoryGB",
        "env",
        "secretEnv",
        "mounts",
        "kind",
        "items",
        "placement",
        "timeoutSeconds",
        "restartPolicy",
        "priority",
        "labels",
    ]
)
spec_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(field_names, children, max_size=6),
    max_leaves=40,
)


def assert_only_validation_errors(text: str | bytes) -> None:
    try:
        parse_job(text)
    except InvalidJob as exc:
        assert exc.errors
        assert all(isinstance(e.loc, str) and e.message for e in exc.errors)


@given(json_values | spec_like)
def test_arbitrary_json_only_ever_fails_as_invalid_job(value: Any) -> None:
    assert_only_validation_errors(json.dumps(value))


@given(spec_like)
def test_arbitrary_yaml_only_ever_fails_as_invalid_job(value: Any) -> None:
    assert_only_validation_errors(yaml.safe_dump(value, allow_unicode=True))


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_arbitrary_text_and_bytes_only_ever_fail_as_invalid_job(text: str | bytes) -> None:
    assert_only_validation_errors(text)


@given(st.integers(min_value=1, max_value=3000))
def test_deeply_nested_input_only_ever_fails_as_invalid_job(depth: int) -> None:
    assert_only_validation_errors("containers: " + "[" * depth + "]" * depth)
    assert_only_validation_errors('{"labels": ' + '{"a": ' * depth + "1" + "}" * depth + "}")

"""Operator policy: well-formed jobs the operator still does not allow, as PolicyViolation."""

import pytest

from dispatcher.domain.document import validate_job
from dispatcher.domain.errors import InvalidJob, PolicyViolation
from dispatcher.domain.policy import apply_policy, image_reference, registry_allowed
from dispatcher.settings import DispatcherSettings


def violations(data: dict[str, object], **settings: object) -> dict[str, str]:
    with pytest.raises(PolicyViolation) as caught:
        apply_policy(validate_job(data), DispatcherSettings(**settings))  # type: ignore[arg-type]
    return {e.loc: e.message for e in caught.value.errors}


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        ("busybox", "docker.io/library/busybox"),
        ("library/busybox:1", "docker.io/library/busybox:1"),
        ("mcr.microsoft.com/azurelinux/base/core:3.0", "mcr.microsoft.com/azurelinux/base/core:3.0"),
        ("localhost:5000/x", "localhost:5000/x"),
    ],
)
def test_short_image_names_resolve_as_docker_does(image: str, reference: str) -> None:
    assert image_reference(image) == reference


@pytest.mark.parametrize(
    ("image", "allowed", "ok"),
    [
        ("busybox", ["*"], True),
        ("mcr.microsoft.com/x:1", ["mcr.microsoft.com"], True),
        ("busybox", ["mcr.microsoft.com"], False),
        ("myacr.azurecr.io/team/app:1", ["myacr.azurecr.io/team/"], True),
        ("myacr.azurecr.io/other/app:1", ["myacr.azurecr.io/team/"], False),
        ("myacr.azurecr.io/teamx/app:1", ["myacr.azurecr.io/team"], False),
    ],
)
def test_registry_allowlist_matches_hosts_and_prefixes(image: str, allowed: list[str], ok: bool) -> None:
    assert registry_allowed(image, allowed) is ok


def test_a_disallowed_registry_is_a_policy_violation_naming_the_image_field() -> None:
    found = violations({"image": "evil.example.com/miner"}, allowed_registries=["mcr.microsoft.com"])
    assert "containers[0].image" in found


def test_policy_violations_are_distinct_from_invalid_specs() -> None:
    assert not issubclass(PolicyViolation, InvalidJob)


def test_cpu_memory_and_timeout_caps_apply() -> None:
    found = violations(
        {"containers": [{"name": "a", "image": "busybox", "cpu": 3, "memoryGB": 8}], "timeoutSeconds": 90000},
        max_cpu=2,
        max_memory_gb=4,
        max_timeout_seconds=3600,
    )
    assert "cap of 2" in found["containers"] or "cap of 4" in found["containers"]
    assert "3600" in found["timeoutSeconds"]


def test_only_allowlisted_shares_may_be_mounted() -> None:
    data = {"image": "busybox", "volumes": {"d": {"kind": "share", "share": "secret-hr"}}}
    found = violations(data, storage_account="acct", allowed_shares=["datasets"])
    assert "volumes.d.share" in found


def test_shares_of_unconfigured_accounts_are_refused() -> None:
    data = {"image": "busybox", "volumes": {"d": {"kind": "share", "share": "datasets", "account": "other"}}}
    found = violations(data, storage_account="acct", allowed_shares=["datasets"])
    assert "volumes.d.account" in found


def test_workspaces_need_a_configured_storage_account() -> None:
    assert "volumes.w" in violations({"image": "busybox", "volumes": {"w": {"kind": "workspace"}}})


def test_inline_secrets_are_refused_by_default_and_name_their_field() -> None:
    data = {"containers": [{"name": "a", "image": "busybox", "secretEnv": {"T": {"value": "s3cret"}}}]}
    found = violations(data)
    assert "containers[0].secretEnv.T" in found
    assert all("s3cret" not in message for message in found.values())


def test_inline_secrets_pass_when_the_operator_allows_them() -> None:
    data = {"containers": [{"name": "a", "image": "busybox", "secretEnv": {"T": {"value": "s3cret"}}}]}
    spec = apply_policy(validate_job(data), DispatcherSettings(allow_inline_secrets=True))
    assert spec.containers[0].secret_env["T"].is_inline


def test_the_default_timeout_is_filled_in() -> None:
    spec = apply_policy(validate_job({"image": "busybox"}), DispatcherSettings(default_timeout_seconds=77))
    assert spec.timeout_seconds == 77


def test_settings_come_from_dispatcher_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_ALLOWED_SHARES", '["a", "b"]')
    monkeypatch.setenv("DISPATCHER_MAX_CPU", "2")
    settings = DispatcherSettings()
    assert (settings.allowed_shares, settings.max_cpu) == (["a", "b"], 2.0)


def with_secret(name: str, **labels: str) -> dict[str, object]:
    return {"labels": labels, "containers": [{"name": "main", "image": "busybox", "secretEnv": {"K": name}}]}


@pytest.mark.parametrize("name", ["storage-account-key", "other-account-key", "registry-password"])
def test_a_reference_to_one_of_the_dispatchers_own_secrets_is_a_policy_violation_naming_the_field(name: str) -> None:
    found = violations(
        with_secret(name),
        share_accounts={"other": "other-account-key"},
        registry_credentials=[{"server": "r.azurecr.io", "username": "u", "password_secret": "registry-password"}],
    )
    assert "dispatcher's own secrets" in found["containers[0].secretEnv.K"]


def test_only_the_allowed_names_may_be_referenced_and_labels_allow_more() -> None:
    policy = {"secret_names": ["shared-*", "api-token"], "secret_names_by_label": {"team": {"ml": ["ml-*"]}}}
    assert "not one this job may reference" in violations(with_secret("web-db"), **policy)["containers[0].secretEnv.K"]
    assert "not one this job may reference" in violations(with_secret("ml-key"), **policy)["containers[0].secretEnv.K"]
    settings = DispatcherSettings(**policy)  # type: ignore[arg-type]
    for allowed, team in (
        (with_secret("shared-x"), None),
        (with_secret("api-token"), None),
        (with_secret("ml-key"), "ml"),
    ):
        apply_policy(validate_job(allowed), settings, team)
    with pytest.raises(PolicyViolation):
        apply_policy(validate_job(with_secret("ml-key")), settings, "web")


def test_a_team_label_the_caller_writes_never_grants_that_teams_secrets() -> None:
    """Before teams came from the caller, a job labelled team=ml could reference ml's secrets whoever sent it."""
    settings = DispatcherSettings(secret_names=[], secret_names_by_label={"team": {"ml": ["ml-*"]}})  # type: ignore[arg-type]
    with pytest.raises(PolicyViolation) as raised:
        apply_policy(validate_job(with_secret("ml-key", team="ml")), settings, "web")
    assert [e.loc for e in raised.value.errors] == ["labels.team"]
    with pytest.raises(PolicyViolation):
        apply_policy(validate_job(with_secret("ml-key", team="ml")), settings, None)
    assert apply_policy(validate_job(with_secret("ml-key", team="ml")), settings, "ml").labels == {"team": "ml"}


def test_another_jobs_inline_value_cannot_be_referenced() -> None:
    assert "inline values" in violations(with_secret("inline-job-1-abcd1234-0"))["containers[0].secretEnv.K"]

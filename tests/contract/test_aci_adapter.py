"""The dispatcher's ACI adapter and mapping against the devstack ACI and Files emulators, through the real SDKs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.fileshare import ShareServiceClient

from devstack.accounts import DEVSTORE_ACCOUNT_KEY, DEVSTORE_ACCOUNT_NAME
from devstack.aci import AciEmulator
from devstack.files import FilesEmulator
from devstack.tls import TLSFiles
from dispatcher.adapters.azure.aci import AciContainerGroups
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.domain.document import parse_job, validate_job
from dispatcher.domain.errors import CloudError
from dispatcher.domain.policy import apply_policy
from dispatcher.domain.secrets import dispatcher_secret_keys, job_secret_keys
from dispatcher.domain.spec import JobSpec
from dispatcher.ports import GroupRequest
from dispatcher.settings import ContainerLogs, DispatcherSettings, Pool
from tests.fixtures.waiting import wait_for

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
POOL = Pool(
    name="local", subscription_id="00000000-0000-0000-0000-000000000001", resource_group="jobs", location="westeurope"
)
SETTINGS = DispatcherSettings(storage_account=DEVSTORE_ACCOUNT_NAME, allowed_shares=["datasets"], pools=[POOL])
SECRETS = {"storage-account-key": DEVSTORE_ACCOUNT_KEY, "api-token": "token-123", "db-password": "pw-456"}
NOW = dt.datetime.now(dt.UTC)


def request(spec: JobSpec, secrets: dict[str, str] = SECRETS) -> GroupRequest:
    """The request of attempt 1 of ``spec``, with the secrets it needs taken from ``secrets``."""
    assert spec.id is not None
    return GroupRequest(
        job_id=spec.id,
        attempt=1,
        spec=spec,
        location=POOL.location,
        created=NOW,
        timeout_seconds=3600,
        job_secrets={k: secrets[k] for k in job_secret_keys(spec) if k in secrets},
        dispatcher_secrets={k: secrets[k] for k in dispatcher_secret_keys(spec, SETTINGS) if k in secrets},
    )


@pytest.fixture
def files(tmp_path: Path) -> FilesEmulator:
    with FilesEmulator(tmp_path / "files", port=0) as emulator:
        yield emulator


@pytest.fixture
def aci(make_aci_emulator: Callable[..., AciEmulator], tmp_path: Path) -> AciEmulator:
    return make_aci_emulator(
        files_root=tmp_path / "files", storage_accounts={DEVSTORE_ACCOUNT_NAME: DEVSTORE_ACCOUNT_KEY}
    )


@pytest.fixture
def groups(aci: AciEmulator, dev_tls: TLSFiles) -> AciContainerGroups:
    adapter = AciContainerGroups(
        DevstackCredential(), SETTINGS, arm_endpoint=aci.url, client_options={"connection_verify": str(dev_tls.ca)}
    )
    yield adapter
    adapter.close()


def shares(files: FilesEmulator) -> ShareServiceClient:
    return ShareServiceClient.from_connection_string(files.connection_string(DEVSTORE_ACCOUNT_NAME))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_maps_to_a_body_the_emulator_accepts(
    path: Path, groups: AciContainerGroups, files: FilesEmulator
) -> None:
    service = shares(files)
    for share in ("datasets", "ws-example"):
        service.create_share(share)
    spec = apply_policy(parse_job(path.read_text()), SETTINGS).model_copy(update={"id": "example"})
    assert groups.create(POOL, "example-a1", request(spec)).provisioning_state in ("Pending", "Creating", "Succeeded")
    view = wait_for(lambda: groups.get(POOL, "example-a1"))
    assert view.tags["dispatcher-job"] == "example"
    groups.delete(POOL, "example-a1")


def test_a_job_writes_to_its_workspace_reads_a_secret_file_and_the_output_is_downloadable(
    groups: AciContainerGroups, files: FilesEmulator
) -> None:
    service = shares(files)
    service.create_share("ws-job-1")
    spec = validate_job(
        {
            "id": "job-1",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", "cat /run/secrets/token > /out/copy.txt; echo done"],
                    "mounts": [{"volume": "out", "path": "/out"}, {"volume": "creds", "path": "/run/secrets"}],
                }
            ],
            "volumes": {"out": {"kind": "workspace"}, "creds": {"kind": "secret", "items": {"token": "api-token"}}},
        }
    )
    groups.create(POOL, "job-1-a1", request(spec))
    view = wait_for(lambda: (v := groups.get(POOL, "job-1-a1")) is not None and v.finished and v)
    assert [c.exit_code for c in view.containers] == [0]
    assert groups.logs(POOL, "job-1-a1", "main").strip() == "done"
    copied = service.get_share_client("ws-job-1").get_file_client("copy.txt").download_file().readall()
    assert copied == b"token-123"
    summary = groups.list(POOL)["job-1-a1"]
    assert summary.tags["dispatcher-attempt"] == "1"


def test_stop_and_delete_are_idempotent_and_absent_groups_read_as_none(groups: AciContainerGroups) -> None:
    groups.stop(POOL, "never-was")
    groups.delete(POOL, "never-was")
    assert groups.get(POOL, "never-was") is None
    assert groups.logs(POOL, "never-was", "main") == ""


def test_a_request_aci_rejects_is_a_permanent_cloud_error(groups: AciContainerGroups) -> None:
    valid = validate_job({"id": "bad", "image": "busybox", "command": ["true"]})
    beyond = valid.containers[0].model_copy(update={"cpu": 9.0})  # beyond what a Linux group may request
    with pytest.raises(CloudError) as caught:
        groups.create(POOL, "bad-a1", request(valid.model_copy(update={"containers": [beyond]})))
    assert (caught.value.status, caught.value.transient) == (400, False)


def test_quota_reached_is_reported_with_its_code(
    make_aci_emulator: Callable[..., AciEmulator], dev_tls: TLSFiles
) -> None:
    from devstack.aci.quota import QuotaLimits

    emulator = make_aci_emulator(default_quota=QuotaLimits(container_groups=1))
    adapter = AciContainerGroups(
        DevstackCredential(), SETTINGS, arm_endpoint=emulator.url, client_options={"connection_verify": str(dev_tls.ca)}
    )
    spec = validate_job({"id": "q", "image": "busybox", "command": ["sleep", "30"]})
    adapter.create(POOL, "q-a1", request(spec))
    with pytest.raises(CloudError) as caught:
        adapter.create(POOL, "q-a2", request(spec))
    assert caught.value.code == "ContainerGroupQuotaReached"
    adapter.delete(POOL, "q-a1")
    adapter.close()


def test_a_pool_sending_container_logs_creates_groups_that_keep_the_workspace_but_not_its_key(
    groups: AciContainerGroups,
) -> None:
    logs = ContainerLogs(workspace_id="5f0c0c9e-0000-4000-8000-000000000001", key_secret="log-analytics-key")
    spec = validate_job({"id": "logged", "image": "busybox", "command": ["echo", "hi"]})
    wanted = dataclasses.replace(request(spec), container_logs=logs, dispatcher_secrets={"log-analytics-key": "wk"})
    groups.create(POOL, "logged-a1", wanted)
    read = groups.client(POOL.subscription_id).container_groups.get(POOL.resource_group, "logged-a1")
    analytics = read.diagnostics.log_analytics if read.diagnostics is not None else None
    assert analytics is not None
    assert analytics.workspace_id == logs.workspace_id
    assert analytics.workspace_key is None  # a secret ARM does not give back
    groups.delete(POOL, "logged-a1")


def test_usage_counts_every_group_in_the_subscriptions_region_against_its_quota(groups: AciContainerGroups) -> None:
    """Another workload's group, in another resource group of the same subscription, counts against the quota the
    pool shares: ACI's usages API sees it, the pool's resource group does not."""
    before = groups.usage(POOL)
    other = POOL.model_copy(update={"name": "someone-else", "resource_group": "another-workload"})
    spec = validate_job({"id": "theirs", "image": "busybox", "command": ["sleep", "30"], "cpu": 2})
    groups.create(other, "theirs-a1", request(spec))

    after = groups.usage(POOL)

    assert before is not None
    assert after is not None
    assert (after.groups - before.groups, after.cores - before.cores) == (1, 2.0)
    assert (after.group_limit, after.core_limit) == (100, 100.0)  # ACI's default quota per region
    assert "theirs-a1" not in groups.list(POOL)
    groups.delete(other, "theirs-a1")

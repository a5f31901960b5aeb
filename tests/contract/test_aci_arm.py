"""ARM behaviour of the ACI emulator: auth, api-version, validation, paging, quotas, throttling and faults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import Volume

from devstack.aci import AciEmulator, QuotaLimits, SimulationRules, ThrottleLimits
from devstack.tls import TLSFiles
from dispatcher.adapters.azure.credential import DEVSTACK_TOKEN
from tests.fixtures.aci import (
    ACI_SUBSCRIPTION,
    LOCATION,
    RESOURCE_GROUP,
    job_container,
    job_group,
    wait_for,
)

MakeEmulator = Callable[..., AciEmulator]
MakeClient = Callable[[AciEmulator], ContainerInstanceManagementClient]
GROUP_PATH = (
    f"/subscriptions/{ACI_SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
    "Microsoft.ContainerInstance/containerGroups"
)


def quick_job() -> Any:
    return job_group(job_container("job", ["/bin/true"], cpu=1))


def simulated(make_aci_emulator: MakeEmulator, **overrides: Any) -> AciEmulator:
    """An emulator in simulate mode whose groups provision within a fraction of a second."""
    quick = SimulationRules(provisioning_latency_seconds=(0.05, 0.1), default_duration_seconds=0.5)
    return make_aci_emulator(mode="simulate", simulation=quick, **overrides)


def test_request_without_bearer_token_is_rejected(aci_emulator: AciEmulator, dev_tls: TLSFiles) -> None:
    # When a request carries no token, then a wrong one
    url = f"{aci_emulator.url}{GROUP_PATH}?api-version=2023-05-01"
    missing = requests.get(url, verify=str(dev_tls.ca), timeout=10)
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, verify=str(dev_tls.ca), timeout=10)

    # Then both get 401 with ARM's error codes
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "AuthenticationFailed")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")


def test_request_without_api_version_is_rejected(aci_emulator: AciEmulator, dev_tls: TLSFiles) -> None:
    # When an authenticated request has no api-version
    response = requests.get(
        f"{aci_emulator.url}{GROUP_PATH}",
        headers={"Authorization": f"Bearer {DEVSTACK_TOKEN}"},
        verify=str(dev_tls.ca),
        timeout=10,
    )

    # Then it gets 400 MissingApiVersionParameter
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [
        (
            lambda g: setattr(g.containers[0].resources.requests, "cpu", 5),
            "InvalidContainerResourceRequests",
            "properties.containers[0].properties.resources.requests.cpu",
        ),
        (
            lambda g: setattr(g.containers[0].resources.requests, "memory_in_gb", 17),
            "InvalidContainerResourceRequests",
            "properties.containers[0].properties.resources.requests.memoryInGB",
        ),
        (
            lambda g: g.containers.extend(job_container(f"c{i}", ["/bin/true"], cpu=0.01) for i in range(60)),
            "ContainerGroupContainerLimitExceeded",
            "properties.containers",
        ),
        (
            lambda g: setattr(g, "volumes", [Volume(name=f"v{i}", empty_dir={}) for i in range(21)]),
            "ContainerGroupVolumeLimitExceeded",
            "properties.volumes",
        ),
        (
            lambda g: setattr(g, "volumes", [Volume(name="s", secret={"k": "not base64!"})]),
            "InvalidSecretVolumeValue",
            "properties.volumes[0].secret.k",
        ),
        (
            lambda g: setattr(g.containers[0], "name", "Bad_Name"),
            "InvalidContainerName",
            "properties.containers[0].name",
        ),
    ],
    ids=["cpu", "memory", "containers", "volumes", "secret-base64", "container-name"],
)
def test_invalid_body_is_rejected_naming_the_field(
    aci_client: ContainerInstanceManagementClient, mutate: Callable[[Any], None], code: str, field: str
) -> None:
    # Given a group that breaks one rule
    group = job_group(job_container("job", ["/bin/true"]))
    mutate(group)

    # When it is created
    with pytest.raises(HttpResponseError) as caught:
        aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "invalid", group)

    # Then the error is 400 with the service's code and a message naming the field
    assert caught.value.status_code == 400
    assert caught.value.error.code == code
    assert field in caught.value.error.message


def test_sum_of_container_cpu_above_four_is_rejected(aci_client: ContainerInstanceManagementClient) -> None:
    # Given three containers of 1.5 vCPU each
    group = job_group(*(job_container(f"c{i}", ["/bin/true"], cpu=1.5) for i in range(3)))

    # When created, then the group total is refused
    with pytest.raises(HttpResponseError) as caught:
        aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "too-big", group)
    assert caught.value.status_code == 400
    assert "requests.cpu" in caught.value.error.message


def test_invalid_group_name_is_rejected(aci_client: ContainerInstanceManagementClient) -> None:
    # When a group name ends with '-', then ARM answers InvalidContainerGroupName
    with pytest.raises(HttpResponseError) as caught:
        aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "bad-", quick_job())
    assert (caught.value.status_code, caught.value.error.code) == (400, "InvalidContainerGroupName")


def test_missing_required_field_is_named(aci_emulator: AciEmulator, dev_tls: TLSFiles) -> None:
    # Given a body whose container lacks an image (the SDK would refuse to send it, so send raw JSON)
    body = {
        "location": LOCATION,
        "properties": {
            "osType": "Linux",
            "containers": [{"name": "c", "properties": {"resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}],
        },
    }

    # When it is PUT
    response = requests.put(
        f"{aci_emulator.url}{GROUP_PATH}/no-image?api-version=2023-05-01",
        json=body,
        headers={"Authorization": f"Bearer {DEVSTACK_TOKEN}"},
        verify=str(dev_tls.ca),
        timeout=10,
    )

    # Then the 400 names the missing field
    assert response.status_code == 400
    assert "properties.containers[0].properties.image" in response.json()["error"]["message"]


def test_create_answers_201_with_azure_async_operation(aci_emulator: AciEmulator, dev_tls: TLSFiles) -> None:
    # When a group is PUT
    body = {
        "location": LOCATION,
        "properties": {
            "osType": "Linux",
            "containers": [
                {
                    "name": "c",
                    "properties": {
                        "image": "busybox",
                        "command": ["/bin/true"],
                        "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
                    },
                }
            ],
        },
    }
    response = requests.put(
        f"{aci_emulator.url}{GROUP_PATH}/lro?api-version=2023-05-01",
        json=body,
        headers={"Authorization": f"Bearer {DEVSTACK_TOKEN}"},
        verify=str(dev_tls.ca),
        timeout=10,
    )

    # Then it is 201 with a pending provisioning state, an operation URL and a short Retry-After
    assert response.status_code == 201
    assert response.json()["properties"]["provisioningState"] in {"Pending", "Creating"}
    assert response.json()["properties"]["instanceView"]["state"] == "Pending"  # as ACI's recorded answers show
    assert "/operations/" in response.headers["Azure-AsyncOperation"]
    assert float(response.headers["Retry-After"]) <= 1


def test_delete_of_absent_group_answers_204(aci_emulator: AciEmulator, dev_tls: TLSFiles) -> None:
    response = requests.delete(
        f"{aci_emulator.url}{GROUP_PATH}/ghost?api-version=2023-05-01",
        headers={"Authorization": f"Bearer {DEVSTACK_TOKEN}"},
        verify=str(dev_tls.ca),
        timeout=10,
    )
    assert response.status_code == 204


def test_list_omits_instance_view_and_pages_with_next_link(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given 7 groups and a page size of 3
    emulator = simulated(make_aci_emulator, page_size=3)
    client = make_aci_client(emulator)
    for index in range(7):
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, f"g{index}", quick_job(), polling=False)

    # When they are listed by resource group and by subscription
    by_group = list(client.container_groups.list_by_resource_group(RESOURCE_GROUP))
    by_subscription = list(client.container_groups.list())

    # Then every group comes back once, over three pages, without instanceView
    assert sorted(g.name for g in by_group) == [f"g{i}" for i in range(7)]
    assert sorted(g.name for g in by_subscription) == [f"g{i}" for i in range(7)]
    assert all(g.instance_view is None for g in by_group)
    assert all(c.instance_view is None for g in by_group for c in g.containers)
    assert all(g.provisioning_state is not None for g in by_group)
    assert emulator.counters()["list_by_resource_group"] == {"200": 3}


def test_get_of_absent_group_is_not_found(aci_client: ContainerInstanceManagementClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        aci_client.container_groups.get(RESOURCE_GROUP, "absent")


def test_group_quota_reached_surfaces_as_container_group_quota_reached(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given a region allowing 2 container groups, both used
    emulator = simulated(make_aci_emulator, quotas={LOCATION: QuotaLimits(container_groups=2)})
    client = make_aci_client(emulator)
    for name in ("one", "two"):
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, name, quick_job(), polling=False)

    # When a third is created
    with pytest.raises(HttpResponseError) as caught:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "three", quick_job())

    # Then the SDK raises with ContainerGroupQuotaReached naming the limit, without retrying
    assert caught.value.status_code == 409
    assert caught.value.error.code == "ContainerGroupQuotaReached"
    assert "'ContainerGroups'" in caught.value.error.message
    assert emulator.counters()["create"] == {"201": 2, "409": 1}


def test_create_rate_quota_counts_creates_in_five_minutes(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given 2 creates allowed per 5 minutes, and 2 groups created then deleted
    emulator = simulated(make_aci_emulator, quotas={LOCATION: QuotaLimits(creates_per_5_minutes=2)})
    client = make_aci_client(emulator)
    for name in ("a", "b"):
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, name, quick_job(), polling=False)
        client.container_groups.begin_delete(RESOURCE_GROUP, name, polling=False)

    # When a third is created, then the rate quota refuses it even though no group exists
    with pytest.raises(HttpResponseError) as caught:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "c", quick_job())
    assert caught.value.error.code == "ContainerGroupQuotaReached"
    assert "PerFiveMinutes" in caught.value.error.message


def test_cores_quota_and_usage(make_aci_emulator: MakeEmulator, make_aci_client: MakeClient) -> None:
    # Given a region with 3 cores and a 2-core group
    emulator = simulated(make_aci_emulator, quotas={LOCATION: QuotaLimits(cores=3)})
    client = make_aci_client(emulator)
    client.container_groups.begin_create_or_update(
        RESOURCE_GROUP, "big", job_group(job_container("job", ["/bin/true"], cpu=2)), polling=False
    )

    # When usage is read and another 2-core group is created
    usage = {u.name.value: (u.current_value, u.limit) for u in client.location.list_usage(LOCATION)}
    with pytest.raises(HttpResponseError) as caught:
        client.container_groups.begin_create_or_update(
            RESOURCE_GROUP, "big2", job_group(job_container("job", ["/bin/true"], cpu=2))
        )

    # Then usage shows 1 group and 2 cores, and the second group exceeds StandardCores
    assert usage["ContainerGroups"] == (1, 100)
    assert usage["StandardCores"] == (2, 3)
    assert "'StandardCores'" in caught.value.error.message


def test_stopped_group_frees_its_cores_until_started_and_deleted_group_frees_both(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given a 2-core group
    emulator = simulated(make_aci_emulator)
    client = make_aci_client(emulator)
    client.container_groups.begin_create_or_update(
        RESOURCE_GROUP, "big", job_group(job_container("job", ["/bin/sleep", "600"], cpu=2))
    ).result()

    def usage() -> tuple[int, int]:
        rows = {u.name.value: u.current_value for u in client.location.list_usage(LOCATION)}
        return rows["ContainerGroups"], rows["StandardCores"]

    # When it is stopped, started again, then deleted
    running = usage()
    client.container_groups.stop(RESOURCE_GROUP, "big")
    stopped = usage()
    client.container_groups.begin_start(RESOURCE_GROUP, "big").result()
    started = usage()
    client.container_groups.begin_delete(RESOURCE_GROUP, "big").result()

    # Then a stopped group still counts as a group but not its cores, and a deleted one counts for nothing
    assert (running, stopped, started, usage()) == ((1, 2), (1, 0), (1, 2), (0, 0))


def test_throttled_read_is_retried_transparently_by_the_sdk(
    aci_emulator: AciEmulator, aci_client: ContainerInstanceManagementClient
) -> None:
    # Given an empty ARM read bucket
    aci_emulator.throttle(ACI_SUBSCRIPTION, "reads")

    # When the SDK lists groups
    groups = list(aci_client.container_groups.list())

    # Then the SDK got a 429, waited Retry-After and succeeded
    assert groups == []
    assert aci_emulator.counters()["list"] == {"429": 1, "200": 1}


def test_throttled_response_carries_retry_after_and_remaining_headers(
    aci_emulator: AciEmulator, dev_tls: TLSFiles
) -> None:
    # Given a fresh bucket, one request shows the remaining count; after draining, a 429 with Retry-After
    headers = {"Authorization": f"Bearer {DEVSTACK_TOKEN}"}
    url = f"{aci_emulator.url}{GROUP_PATH}?api-version=2023-05-01"
    ok = requests.get(url, headers=headers, verify=str(dev_tls.ca), timeout=10)
    aci_emulator.throttle(ACI_SUBSCRIPTION, "reads")
    throttled = requests.get(url, headers=headers, verify=str(dev_tls.ca), timeout=10)

    assert ok.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"


def test_write_bucket_runs_out_after_its_capacity(make_aci_emulator: MakeEmulator, dev_tls: TLSFiles) -> None:
    # Given a write bucket of 2 tokens that refills slowly
    emulator = simulated(make_aci_emulator, throttle=ThrottleLimits(writes=(2, 0.01)))
    headers = {"Authorization": f"Bearer {DEVSTACK_TOKEN}"}

    # When three stop requests are sent (each is a write, even on an absent group)
    statuses = [
        requests.post(
            f"{emulator.url}{GROUP_PATH}/x/stop?api-version=2023-05-01",
            headers=headers,
            verify=str(dev_tls.ca),
            timeout=10,
        ).status_code
        for _ in range(3)
    ]

    # Then the third is throttled
    assert statuses == [404, 404, 429]


def test_injected_server_errors_are_retried_by_the_sdk(
    aci_emulator: AciEmulator, aci_client: ContainerInstanceManagementClient
) -> None:
    # Given the next two list requests fail with 503
    aci_emulator.faults.fail_next("list", count=2, status=503)

    # When the SDK lists, then it retries through them
    assert list(aci_client.container_groups.list()) == []
    assert aci_emulator.counters()["list"] == {"503": 2, "200": 1}


def test_dropped_connection_is_retried_by_the_sdk(
    aci_emulator: AciEmulator, aci_client: ContainerInstanceManagementClient
) -> None:
    # Given the next get loses its connection mid-response
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "kept", quick_job()).result()
    aci_emulator.reset_counters()
    aci_emulator.faults.drop_next("get")

    # When the SDK gets the group, then it retries and succeeds
    assert aci_client.container_groups.get(RESOURCE_GROUP, "kept").name == "kept"
    assert aci_emulator.counters()["get"] == {"0": 1, "200": 1}


def test_injected_image_pull_failure_fails_provisioning(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    # Given the next create of "pull" fails to pull its image
    emulator = simulated(make_aci_emulator)
    client = make_aci_client(emulator)
    emulator.faults.fail_next_create("pull", kind="image_pull")

    # When it is created, then the long-running operation fails
    with pytest.raises(HttpResponseError) as caught:
        client.container_groups.begin_create_or_update(RESOURCE_GROUP, "pull", quick_job()).result()
    assert "Failed to pull image" in str(caught.value)

    # And GET shows provisioning Failed, with a Failed event on the container
    got = client.container_groups.get(RESOURCE_GROUP, "pull")
    assert got.provisioning_state == "Failed"
    events = [e.name for e in got.containers[0].instance_view.events]
    assert events == ["Pulling", "Failed"]


def test_injected_mount_failure_shows_failed_mount(
    make_aci_emulator: MakeEmulator, make_aci_client: MakeClient
) -> None:
    emulator = simulated(make_aci_emulator)
    client = make_aci_client(emulator)
    emulator.faults.fail_next_create("mount", kind="mount")

    poller = client.container_groups.begin_create_or_update(RESOURCE_GROUP, "mount", quick_job())
    wait_for(poller.done)

    got = client.container_groups.get(RESOURCE_GROUP, "mount")
    assert (got.provisioning_state, got.instance_view.state) == ("Failed", "Pending")
    assert [e.name for e in got.instance_view.events] == ["FailedMount"]


def test_slow_lro_keeps_the_operation_in_progress(make_aci_emulator: MakeEmulator, make_aci_client: MakeClient) -> None:
    # Given long-running operations take 1 extra second
    emulator = simulated(make_aci_emulator)
    client = make_aci_client(emulator)
    emulator.faults.slow_lro(1.0)

    # When a group is created and polled to the end
    client.container_groups.begin_create_or_update(RESOURCE_GROUP, "slow", quick_job()).result()

    # Then the SDK had to poll more than once
    assert emulator.counters()["operation_status"]["200"] >= 2


def test_vanished_group_is_gone(aci_emulator: AciEmulator, aci_client: ContainerInstanceManagementClient) -> None:
    # Given a group
    aci_client.container_groups.begin_create_or_update(RESOURCE_GROUP, "lost", quick_job()).result()

    # When it vanishes out of band
    assert aci_emulator.vanish("lost") == 1

    # Then GET is 404
    with pytest.raises(ResourceNotFoundError):
        aci_client.container_groups.get(RESOURCE_GROUP, "lost")


def test_counters_and_faults_are_reachable_over_http(aci_emulator: AciEmulator, dev_tls: TLSFiles) -> None:
    # Given a fault ordered over HTTP
    verify = str(dev_tls.ca)
    order = {"action": "fail_next", "operation": "usage", "status": 500}
    assert requests.post(f"{aci_emulator.url}/devstack/faults", json=order, verify=verify, timeout=10).ok

    # When a usage request is sent
    usage_url = (
        f"{aci_emulator.url}/subscriptions/{ACI_SUBSCRIPTION}/providers/Microsoft.ContainerInstance/"
        f"locations/{LOCATION}/usages?api-version=2023-05-01"
    )
    headers = {"Authorization": f"Bearer {DEVSTACK_TOKEN}"}
    first = requests.get(usage_url, headers=headers, verify=verify, timeout=10)
    second = requests.get(usage_url, headers=headers, verify=verify, timeout=10)

    # Then the counters endpoint reports both answers, and resetting clears them
    assert (first.status_code, second.status_code) == (500, 200)
    counters = requests.get(f"{aci_emulator.url}/devstack/counters", verify=verify, timeout=10).json()
    assert counters == {"usage": {"500": 1, "200": 1}}
    requests.post(f"{aci_emulator.url}/devstack/counters/reset", verify=verify, timeout=10)
    assert aci_emulator.counters() == {}

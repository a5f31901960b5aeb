"""The adapter reads ARM's JSON for a group's view (``get``) and summary (list) without the SDK's models: the same
view, field by field, as one read from the SDK's own model of the same body.

Bodies: Microsoft's REST examples of ``get`` and list, and groups the ACI emulator ran to an end (exit codes,
finish times, a failed container, a group still running, an init container).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from azure.mgmt.containerinstance.models import Container, ContainerGroup, Event, InitContainerDefinition

from devstack.aci import AciEmulator
from devstack.aci.config import ThrottleLimits
from devstack.tls import TLSFiles
from dispatcher.adapters.azure.aci import AciContainerGroups, group_summary, group_view
from dispatcher.adapters.azure.credential import DEVSTACK_TOKEN, DevstackCredential
from dispatcher.domain.errors import CloudError
from dispatcher.domain.observed import AciEvent, ContainerView, GroupSummary, GroupView
from dispatcher.settings import DispatcherSettings, Pool
from tests.contract.test_aci_examples import EXAMPLES, example
from tests.fixtures.waiting import wait_for

POOL = Pool(
    name="p", subscription_id="00000000-0000-0000-0000-000000000009", resource_group="views", location="westeurope"
)
GETS = [p.name for p in EXAMPLES if "Get" in p.name and "ContainerGroup" in p.name]


def _model_events(events: list[Event] | None) -> tuple[AciEvent, ...]:
    return tuple(
        AciEvent(e.name or "", e.message or "", e.type or "Normal", e.count or 1, e.last_timestamp)
        for e in events or []
    )


def _model_container(container: Container | InitContainerDefinition) -> ContainerView:
    view = container.instance_view
    state = view.current_state if view else None
    return ContainerView(
        name=container.name,
        state=state.state if state else None,
        exit_code=state.exit_code if state else None,
        start_time=state.start_time if state else None,
        finish_time=state.finish_time if state else None,
        detail_status=state.detail_status if state else None,
        restart_count=(view.restart_count or 0) if view else 0,
        events=_model_events(view.events if view else None),
    )


def model_view(body: dict[str, Any]) -> GroupView:
    """The reference: the view read from the SDK's ``ContainerGroup`` model of ``body``."""
    group = ContainerGroup.deserialize(body)
    instance = group.instance_view
    return GroupView(
        name=group.name or "",
        provisioning_state=group.provisioning_state,
        state=instance.state if instance else None,
        tags=dict(group.tags or {}),
        containers=tuple(_model_container(c) for c in group.containers or []),
        init_containers=tuple(_model_container(c) for c in group.init_containers or []),
        events=_model_events(instance.events if instance else None),
    )


def test_there_are_get_examples() -> None:
    assert GETS, "no REST example of a container group's get"


@pytest.mark.parametrize("name", GETS)
def test_the_view_of_each_rest_example_of_get_is_the_models(name: str) -> None:
    body = example(name)["responses"]["200"]["body"]
    assert group_view(body) == model_view(body)


def test_the_summaries_of_the_rest_example_of_list_are_the_models() -> None:
    body = example("ContainerGroupsList.json")["responses"]["200"]["body"]
    assert body["value"]
    for item in body["value"]:
        group = ContainerGroup.deserialize(item)
        assert group_summary(item) == GroupSummary(group.name or "", group.provisioning_state, dict(group.tags or {}))


def _job(name: str, command: list[str], *, init: bool = False) -> dict[str, Any]:
    container = {
        "name": "main",
        "properties": {"image": "busybox", "command": command, "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}},
    }
    properties: dict[str, Any] = {"containers": [container], "osType": "Linux", "restartPolicy": "Never"}
    if init:
        properties["initContainers"] = [{"name": "setup", "properties": {"image": "busybox", "command": ["true"]}}]
    return {"location": POOL.location, "tags": {"job": name}, "properties": properties}


class Arm:
    """Plain ARM calls to the emulator's container groups of ``POOL``, beside the adapter's."""

    def __init__(self, emulator: AciEmulator, tls: TLSFiles) -> None:
        self.base = (
            f"{emulator.url}/subscriptions/{POOL.subscription_id}/resourceGroups/{POOL.resource_group}"
            "/providers/Microsoft.ContainerInstance/containerGroups"
        )
        self._options: dict[str, Any] = {
            "headers": {"Authorization": f"Bearer {DEVSTACK_TOKEN}"},
            "params": {"api-version": "2023-05-01"},
            "verify": str(tls.ca),
        }

    def put(self, name: str, body: dict[str, Any]) -> None:
        assert requests.put(f"{self.base}/{name}", json=body, timeout=10, **self._options).status_code in (200, 201)

    def get(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = requests.get(f"{self.base}/{name}", timeout=10, **self._options).json()
        return body


@contextlib.contextmanager
def adapter_for(emulator: AciEmulator, tls: TLSFiles, **options: Any) -> Iterator[AciContainerGroups]:
    adapter = AciContainerGroups(
        DevstackCredential(),
        DispatcherSettings(pools=[POOL]),
        arm_endpoint=emulator.url,
        client_options={"connection_verify": str(tls.ca), **options},
    )
    try:
        yield adapter
    finally:
        adapter.close()


def test_groups_the_emulator_ran_read_the_same_as_the_models(
    make_aci_emulator: Callable[..., AciEmulator], dev_tls: TLSFiles
) -> None:
    emulator = make_aci_emulator()
    arm = Arm(emulator, dev_tls)
    bodies = {
        "ok": _job("ok", ["sh", "-c", "echo fine"]),
        "fails": _job("fails", ["sh", "-c", "exit 3"]),
        "init": _job("init", ["true"], init=True),
        "runs": _job("runs", ["sleep", "30"]),
    }
    for name, body in bodies.items():
        arm.put(name, body)
    with adapter_for(emulator, dev_tls) as adapter:
        for name in ("ok", "fails", "init"):
            wait_for(lambda n=name: (v := adapter.get(POOL, n)) is not None and v.finished)
        wait_for(lambda: (v := adapter.get(POOL, "runs")) is not None and v.started_at is not None)
        for name in bodies:
            raw = arm.get(name)
            assert adapter.get(POOL, name) == model_view(raw) == group_view(raw)
        views = {n: adapter.get(POOL, n) for n in bodies}
        assert {n: [c.exit_code for c in v.containers] for n, v in views.items() if v} == {
            "ok": [0],
            "fails": [3],
            "init": [0],
            "runs": [None],
        }
        assert all(c.events and c.start_time for v in views.values() if v for c in v.containers)
        assert all(c.finish_time for n in ("ok", "fails") if (v := views[n]) for c in v.containers)
        assert views["init"] is not None
        assert [c.exit_code for c in views["init"].init_containers] == [0]
        listed = adapter.list(POOL)
        assert set(listed) == set(bodies)
        assert all(listed[n].tags == {"job": n} for n in bodies)
        assert adapter.get(POOL, "never-was") is None


def test_every_page_of_a_long_list_is_followed(
    make_aci_emulator: Callable[..., AciEmulator], dev_tls: TLSFiles
) -> None:
    emulator = make_aci_emulator(mode="simulate", page_size=10)
    arm = Arm(emulator, dev_tls)
    for n in range(25):
        arm.put(f"g{n}", _job(f"g{n}", ["true"]))
    with adapter_for(emulator, dev_tls) as adapter:
        assert set(adapter.list(POOL)) == {f"g{n}" for n in range(25)}


def test_a_throttled_read_is_a_transient_cloud_error_with_arms_status(
    make_aci_emulator: Callable[..., AciEmulator], dev_tls: TLSFiles
) -> None:
    emulator = make_aci_emulator(mode="simulate", throttle=ThrottleLimits(reads=(2, 0.001)))
    with adapter_for(emulator, dev_tls, retry_total=0) as adapter:
        assert adapter.get(POOL, "absent") is None
        adapter.list(POOL)
        with pytest.raises(CloudError) as raised:
            adapter.get(POOL, "absent")
        assert raised.value.status == 429
        assert raised.value.transient
        assert str(raised.value).startswith("get absent in p: ")

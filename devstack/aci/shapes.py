"""The JSON the service returns for container groups: secrets removed, defaults filled, instance views."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from devstack.aci.clock import iso
from devstack.aci.state import ContainerState, ContainerView, Event, GroupView

RESOURCE_TYPE = "Microsoft.ContainerInstance/containerGroups"


def group_id(subscription: str, resource_group: str, name: str) -> str:
    """The ARM resource id of a container group."""
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
        f"Microsoft.ContainerInstance/containerGroups/{name}"
    )


def _scrub_containers(containers: list[dict[str, Any]], *, main: bool) -> None:
    for container in containers:
        props = container.get("properties") or {}
        props.setdefault("command", [])
        if main:
            props.setdefault("ports", [])
        variables = props.get("environmentVariables") or []
        props["environmentVariables"] = [
            {key: value for key, value in variable.items() if key != "secureValue"} for variable in variables
        ]


def scrubbed_properties(body: dict[str, Any]) -> dict[str, Any]:
    """The request's ``properties`` as GET shows them: no secure values, secret contents or storage keys."""
    props = copy.deepcopy(body.get("properties") or {})
    _scrub_containers(props.get("containers") or [], main=True)
    _scrub_containers(props.get("initContainers") or [], main=False)
    for volume in props.get("volumes") or []:
        if volume.get("azureFile") is not None:
            volume["azureFile"].pop("storageAccountKey", None)
        if volume.get("secret") is not None:
            volume["secret"] = {}
    for credential in props.get("imageRegistryCredentials") or []:
        credential.pop("password", None)
    log_analytics = (props.get("diagnostics") or {}).get("logAnalytics")
    if isinstance(log_analytics, dict):  # both are x-ms-secret in the swagger
        log_analytics.pop("workspaceKey", None)
        log_analytics.pop("workspaceResourceId", None)
    for extension in props.get("extensions") or []:
        (extension.get("properties") or {}).pop("protectedSettings", None)
    props.setdefault("sku", "Standard")
    props.setdefault("restartPolicy", "Always")
    props.setdefault("initContainers", [])
    props.setdefault("imageRegistryCredentials", [])
    return props


def _address(props: dict[str, Any], group: str, location: str) -> None:
    """A group that asks for an IP address gets one (stable per group), and an FQDN when it names a DNS label."""
    address = props.get("ipAddress")
    if not isinstance(address, dict):
        return
    a, b, c = hashlib.sha256(group.encode()).digest()[:3]
    public = address.get("type") == "Public"
    address.setdefault("ip", f"20.{a % 223 + 1}.{b}.{c % 254 + 1}" if public else f"10.0.{b}.{c % 254 + 1}")
    label = address.get("dnsNameLabel")
    if label and public:
        address["fqdn"] = f"{label}.{location.replace(' ', '').lower()}.azurecontainer.io"


def _state(state: ContainerState) -> dict[str, Any]:
    shaped: dict[str, Any] = {"state": state.state, "detailStatus": state.detail_status}
    if state.start_time is not None:
        shaped["startTime"] = iso(state.start_time)
    if state.finish_time is not None:
        shaped["finishTime"] = iso(state.finish_time)
    if state.exit_code is not None:
        shaped["exitCode"] = state.exit_code
    return shaped


def _event(event: Event) -> dict[str, Any]:
    return {
        "count": event.count,
        "firstTimestamp": iso(event.first_timestamp),
        "lastTimestamp": iso(event.last_timestamp),
        "name": event.name,
        "message": event.message,
        "type": event.type,
    }


def _container_view(view: ContainerView) -> dict[str, Any]:
    shaped: dict[str, Any] = {"restartCount": view.restart_count, "events": [_event(e) for e in view.events]}
    if view.current is not None:
        shaped["currentState"] = _state(view.current)
    if view.previous is not None:
        shaped["previousState"] = _state(view.previous)
    return shaped


def render_group(
    subscription: str,
    resource_group: str,
    name: str,
    body: dict[str, Any],
    view: GroupView,
    *,
    with_instance_view: bool,
    answering_put: bool = False,
) -> dict[str, Any]:
    """A container group as GET (``with_instance_view``) or list and PUT (without it) return it; the answer to a
    PUT carries the group's ``instanceView`` with no events yet, as the service's does."""
    props = scrubbed_properties(body)
    _address(props, group_id(subscription, resource_group, name), str(body.get("location") or ""))
    props["provisioningState"] = view.provisioning_state
    if with_instance_view:
        for key, views in (("containers", view.containers), ("initContainers", view.init_containers)):
            for container in props.get(key) or []:
                container_view = views.get(container.get("name", ""))
                if container_view is not None:
                    container.setdefault("properties", {})["instanceView"] = _container_view(container_view)
        props["instanceView"] = {"events": [_event(e) for e in view.events], "state": view.state}
    elif answering_put:
        props["instanceView"] = {"events": [], "state": view.state}
    shaped: dict[str, Any] = {
        "id": group_id(subscription, resource_group, name),
        "location": body.get("location"),
        "name": name,
        "properties": props,
        "type": RESOURCE_TYPE,
    }
    for key in ("tags", "zones", "identity"):
        if body.get(key) is not None:
            shaped[key] = copy.deepcopy(body[key])
    return shaped

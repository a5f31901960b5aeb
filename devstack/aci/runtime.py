"""What the registry asks of a group's runtime, whether it runs processes or simulates them."""

from __future__ import annotations

from typing import Protocol

from devstack.aci.spec import GroupSpec
from devstack.aci.state import ContainerState, ContainerView, Event, GroupView, ProvisioningFailure


class GroupRuntime(Protocol):
    """The life of one deployed container group."""

    def view(self, now: float) -> GroupView:
        """The group's provisioning state, state, events and container instance views at ``now``."""
        ...

    def logs(self, container: str, now: float) -> list[tuple[float, str]]:
        """The container's captured log lines as (timestamp, text), oldest first."""
        ...

    def stop(self, now: float) -> None:
        """Kill every container; the group state becomes Stopped."""
        ...

    def start(self, now: float) -> None:
        """Deploy the stopped group again from its init containers."""
        ...

    def restart(self, now: float) -> None:
        """Restart every container in place (restart counts grow)."""
        ...

    def terminate(self) -> None:
        """Kill every process and release every resource; the group is being deleted."""
        ...


def failed_provisioning_view(
    spec: GroupSpec, failure: ProvisioningFailure, created_at: float, failed_at: float
) -> GroupView:
    """The view of a deployment that failed before starting: provisioning Failed, group Pending, events."""
    containers: dict[str, ContainerView] = {}
    group_events: tuple[Event, ...] = ()
    if failure.kind == "image_pull":
        target = failure.container or spec.containers[0].name
        for container in (*spec.init_containers, *spec.containers):
            events: tuple[Event, ...] = (
                Event("Pulling", f'pulling image "{container.image}"', created_at, created_at),
            )
            if container.name == target:
                events += (Event("Failed", failure.message, failed_at, failed_at, type="Warning"),)
            containers[container.name] = ContainerView(
                current=ContainerState("Waiting", detail_status="ErrImagePull" if container.name == target else ""),
                events=events,
            )
    else:
        group_events = (Event("FailedMount", failure.message, failed_at, failed_at, type="Warning"),)
        for container in (*spec.init_containers, *spec.containers):
            containers[container.name] = ContainerView(
                current=ContainerState("Waiting", start_time=failed_at),
                events=(
                    Event("Pulling", f'pulling image "{container.image}"', created_at, created_at),
                    Event("Pulled", f'Successfully pulled image "{container.image}"', failed_at, failed_at),
                ),
            )
    init_names = {container.name for container in spec.init_containers}
    return GroupView(
        provisioning_state="Failed",
        state="Pending",
        events=group_events,
        containers={name: view for name, view in containers.items() if name not in init_names},
        init_containers={name: view for name, view in containers.items() if name in init_names},
        failure=(failure.error_code, failure.message),
    )

"""A validated PUT body turned into the plain data the runtimes need: containers, env, volumes, resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VolumeMountSpec:
    """Where a container mounts one of the group's volumes."""

    volume: str
    mount_path: str
    read_only: bool


@dataclass(frozen=True)
class ContainerSpec:
    """One app or init container: exec-form command, environment (plain and secure values), mounts."""

    name: str
    image: str
    command: tuple[str, ...]
    environment: dict[str, str]
    plain_environment: dict[str, str]
    mounts: tuple[VolumeMountSpec, ...]
    cpu: float = 0.0
    memory_in_gb: float = 0.0


@dataclass(frozen=True)
class AzureFileSpec:
    """An Azure Files share mounted as a volume."""

    account: str
    share: str
    key: str | None
    read_only: bool


@dataclass(frozen=True)
class VolumeSpec:
    """One group volume: exactly one of an Azure Files share, an emptyDir, secret files or a git repo."""

    name: str
    kind: str
    azure_file: AzureFileSpec | None = None
    secret: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupSpec:
    """The parts of a container group definition the emulator acts on."""

    name: str
    location: str
    tags: dict[str, str]
    restart_policy: str
    containers: tuple[ContainerSpec, ...]
    init_containers: tuple[ContainerSpec, ...]
    volumes: dict[str, VolumeSpec]

    @property
    def cpu(self) -> float:
        """vCPU requested by the app containers (init containers run within the group's resources)."""
        return sum(container.cpu for container in self.containers)


def _container(item: dict[str, Any], with_resources: bool) -> ContainerSpec:
    props = item["properties"]
    environment: dict[str, str] = {}
    plain: dict[str, str] = {}
    for variable in props.get("environmentVariables") or []:
        if variable.get("secureValue") is not None:
            environment[variable["name"]] = variable["secureValue"]
        else:
            environment[variable["name"]] = variable.get("value") or ""
            plain[variable["name"]] = variable.get("value") or ""
    mounts = tuple(
        VolumeMountSpec(mount["name"], mount["mountPath"], bool(mount.get("readOnly", False)))
        for mount in props.get("volumeMounts") or []
    )
    requests = props["resources"]["requests"] if with_resources else {}
    return ContainerSpec(
        name=item["name"],
        image=props.get("image", ""),
        command=tuple(props.get("command") or ()),
        environment=environment,
        plain_environment=plain,
        mounts=mounts,
        cpu=float(requests.get("cpu", 0.0)),
        memory_in_gb=float(requests.get("memoryInGB", 0.0)),
    )


def _volume(item: dict[str, Any]) -> VolumeSpec:
    name = item["name"]
    if item.get("azureFile") is not None:
        azure = item["azureFile"]
        return VolumeSpec(
            name,
            "azureFile",
            azure_file=AzureFileSpec(
                account=azure["storageAccountName"],
                share=azure["shareName"],
                key=azure.get("storageAccountKey"),
                read_only=bool(azure.get("readOnly", False)),
            ),
        )
    if item.get("secret") is not None:
        return VolumeSpec(name, "secret", secret=dict(item["secret"]))
    if item.get("gitRepo") is not None:
        return VolumeSpec(name, "gitRepo")
    return VolumeSpec(name, "emptyDir")


def parse_group(name: str, body: dict[str, Any]) -> GroupSpec:
    """Read a body that :func:`~devstack.aci.validation.validate_container_group` accepted."""
    props = body["properties"]
    return GroupSpec(
        name=name,
        location=body["location"],
        tags=dict(body.get("tags") or {}),
        restart_policy=props.get("restartPolicy") or "Always",
        containers=tuple(_container(item, True) for item in props["containers"]),
        init_containers=tuple(_container(item, False) for item in props.get("initContainers") or []),
        volumes={volume.name: volume for volume in (_volume(item) for item in props.get("volumes") or [])},
    )

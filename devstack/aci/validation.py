"""Checks a container group PUT body against the 2023-05-01 model and ACI's limits, naming the field at fault."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from devstack.aci.errors import ArmError

MAX_CONTAINERS = 60
MAX_VOLUMES = 20
MAX_LINUX_CPU = 4.0
MAX_LINUX_MEMORY_GB = 16.0
RESTART_POLICIES = ("Always", "OnFailure", "Never")
OS_TYPES = ("Linux", "Windows")

_GROUP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONTAINER_NAME = _GROUP_NAME
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _invalid(message: str, code: str = "InvalidRequestContent") -> ArmError:
    return ArmError(400, code, message)


def _required(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj or obj[key] is None:
        full = f"{path}.{key}" if path else key
        raise _invalid(f"Required property '{key}' not found in JSON. Path '{full}'.")
    return obj[key]


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"The value at path '{path}' must be a JSON object.")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(f"The value at path '{path}' must be a JSON array.")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"The value at path '{path}' must be a non-empty string.")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"The value at path '{path}' must be a number.")
    return float(value)


def validate_group_name(name: str) -> None:
    """Raise ``InvalidContainerGroupName`` unless ``name`` is 1-63 lowercase letters, digits and inner '-'."""
    if len(name) > 63 or not _GROUP_NAME.match(name):
        raise _invalid(
            f"The container group name '{name}' is invalid. The container group name must contain no more than "
            "63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').",
            "InvalidContainerGroupName",
        )


def validate_container_group(name: str, body: Any) -> None:
    """Raise an :class:`ArmError` (400) for the first rule ``body`` breaks; the message names the field."""
    validate_group_name(name)
    root = _object(body, "$")
    location = root.get("location")
    if not isinstance(location, str) or not location:
        raise _invalid("The 'location' property is required for this definition.", "LocationRequired")
    if "tags" in root and root["tags"] is not None:
        tags = _object(root["tags"], "tags")
        for key, value in tags.items():
            if not isinstance(value, str):
                raise _invalid(f"The value at path 'tags.{key}' must be a string.")
    props = _object(_required(root, "properties", ""), "properties")
    os_type = _required(props, "osType", "properties")
    if os_type not in OS_TYPES:
        raise _invalid(f"The value '{os_type}' at path 'properties.osType' is not one of {list(OS_TYPES)}.")
    policy = props.get("restartPolicy", "Always")
    if policy not in RESTART_POLICIES:
        raise _invalid(
            f"The value '{policy}' at path 'properties.restartPolicy' is not one of {list(RESTART_POLICIES)}."
        )
    volumes = _validate_volumes(props)
    _validate_group_options(props)
    containers = _array(_required(props, "containers", "properties"), "properties.containers")
    if not containers:
        raise _invalid("The container group must have at least one container. Path 'properties.containers'.")
    init_containers = _array(props.get("initContainers") or [], "properties.initContainers")
    if len(containers) + len(init_containers) > MAX_CONTAINERS:
        raise _invalid(
            f"The container group has {len(containers) + len(init_containers)} containers (including init "
            f"containers) at path 'properties.containers'; at most {MAX_CONTAINERS} are allowed.",
            "ContainerGroupContainerLimitExceeded",
        )
    names: set[str] = set()
    total_cpu = 0.0
    total_memory = 0.0
    for index, item in enumerate(containers):
        path = f"properties.containers[{index}]"
        container = _object(item, path)
        cname = _validate_container_common(container, path, names, volumes)
        inner = container["properties"]
        _string(_required(inner, "image", f"{path}.properties"), f"{path}.properties.image")
        resources = _object(_required(inner, "resources", f"{path}.properties"), f"{path}.properties.resources")
        requests = _object(
            _required(resources, "requests", f"{path}.properties.resources"), f"{path}.properties.resources.requests"
        )
        rpath = f"{path}.properties.resources.requests"
        cpu = _number(_required(requests, "cpu", rpath), f"{rpath}.cpu")
        memory = _number(_required(requests, "memoryInGB", rpath), f"{rpath}.memoryInGB")
        if cpu <= 0:
            raise _invalid(f"The cpu request of container '{cname}' at '{rpath}.cpu' must be greater than 0.")
        if memory <= 0:
            raise _invalid(f"The memory request of container '{cname}' at '{rpath}.memoryInGB' must be greater than 0.")
        if os_type == "Linux" and cpu > MAX_LINUX_CPU:
            raise _invalid(
                f"The cpu request {cpu:g} of container '{cname}' at '{rpath}.cpu' is above the "
                f"{MAX_LINUX_CPU:g} vCPU a Linux container group may request.",
                "InvalidContainerResourceRequests",
            )
        if os_type == "Linux" and memory > MAX_LINUX_MEMORY_GB:
            raise _invalid(
                f"The memory request {memory:g} of container '{cname}' at '{rpath}.memoryInGB' is above the "
                f"{MAX_LINUX_MEMORY_GB:g} GB a Linux container group may request.",
                "InvalidContainerResourceRequests",
            )
        total_cpu += cpu
        total_memory += memory
        for pindex, port in enumerate(_array(inner.get("ports") or [], f"{path}.properties.ports")):
            _required(_object(port, f"{path}.properties.ports[{pindex}]"), "port", f"{path}.properties.ports[{pindex}]")
        gpu = (resources.get("requests") or {}).get("gpu")
        if gpu is not None:
            gpath = f"{rpath}.gpu"
            gpu = _object(gpu, gpath)
            _required(gpu, "count", gpath)
            _required(gpu, "sku", gpath)
    for index, item in enumerate(init_containers):
        path = f"properties.initContainers[{index}]"
        container = _object(item, path)
        _validate_container_common(container, path, names, volumes)
        _string(_required(container["properties"], "image", f"{path}.properties"), f"{path}.properties.image")
    if os_type == "Linux" and total_cpu > MAX_LINUX_CPU:
        raise _invalid(
            f"The container group requests {total_cpu:g} vCPU in total (sum of "
            "'properties.containers[*].properties.resources.requests.cpu'); a Linux container group may request "
            f"at most {MAX_LINUX_CPU:g}.",
            "InvalidContainerResourceRequests",
        )
    if os_type == "Linux" and total_memory > MAX_LINUX_MEMORY_GB:
        raise _invalid(
            f"The container group requests {total_memory:g} GB in total (sum of "
            "'properties.containers[*].properties.resources.requests.memoryInGB'); a Linux container group may "
            f"request at most {MAX_LINUX_MEMORY_GB:g}.",
            "InvalidContainerResourceRequests",
        )


def _validate_group_options(props: dict[str, Any]) -> None:
    """The optional parts of a group, each with the properties the 2023-05-01 swagger marks required."""
    ip_address = props.get("ipAddress")
    if ip_address is not None:
        ip_address = _object(ip_address, "properties.ipAddress")
        ports = _array(_required(ip_address, "ports", "properties.ipAddress"), "properties.ipAddress.ports")
        _required(ip_address, "type", "properties.ipAddress")
        for index, port in enumerate(ports):
            _required(
                _object(port, f"properties.ipAddress.ports[{index}]"), "port", f"properties.ipAddress.ports[{index}]"
            )
    for index, credential in enumerate(
        _array(props.get("imageRegistryCredentials") or [], "properties.imageRegistryCredentials")
    ):
        cpath = f"properties.imageRegistryCredentials[{index}]"
        _string(_required(_object(credential, cpath), "server", cpath), f"{cpath}.server")
    log_analytics = (props.get("diagnostics") or {}).get("logAnalytics")
    if log_analytics is not None:
        lpath = "properties.diagnostics.logAnalytics"
        log_analytics = _object(log_analytics, lpath)
        _required(log_analytics, "workspaceId", lpath)
        _required(log_analytics, "workspaceKey", lpath)
    dns = props.get("dnsConfig")
    if dns is not None:
        _required(_object(dns, "properties.dnsConfig"), "nameServers", "properties.dnsConfig")
    for index, subnet in enumerate(_array(props.get("subnetIds") or [], "properties.subnetIds")):
        spath = f"properties.subnetIds[{index}]"
        _string(_required(_object(subnet, spath), "id", spath), f"{spath}.id")
    for index, item in enumerate(_array(props.get("extensions") or [], "properties.extensions")):
        epath = f"properties.extensions[{index}]"
        extension = _object(item, epath)
        _required(extension, "name", epath)
        inner = _object(_required(extension, "properties", epath), f"{epath}.properties")
        _required(inner, "extensionType", f"{epath}.properties")
        _required(inner, "version", f"{epath}.properties")


def _validate_container_common(container: dict[str, Any], path: str, names: set[str], volumes: set[str]) -> str:
    name = _string(_required(container, "name", path), f"{path}.name")
    if len(name) > 63 or not _CONTAINER_NAME.match(name):
        raise _invalid(
            f"The container name '{name}' at '{path}.name' is invalid. It must contain no more than 63 characters "
            "and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?'.",
            "InvalidContainerName",
        )
    if name in names:
        raise _invalid(f"The container name '{name}' at '{path}.name' is used twice.", "DuplicateContainerName")
    names.add(name)
    inner = _object(_required(container, "properties", path), f"{path}.properties")
    if "command" in inner and inner["command"] is not None:
        for index, part in enumerate(_array(inner["command"], f"{path}.properties.command")):
            if not isinstance(part, str):
                raise _invalid(f"The value at path '{path}.properties.command[{index}]' must be a string.")
    env_names: set[str] = set()
    for index, item in enumerate(
        _array(inner.get("environmentVariables") or [], f"{path}.properties.environmentVariables")
    ):
        epath = f"{path}.properties.environmentVariables[{index}]"
        variable = _object(item, epath)
        env_name = _string(_required(variable, "name", epath), f"{epath}.name")
        if not _ENV_NAME.match(env_name):
            raise _invalid(f"The environment variable name '{env_name}' at '{epath}.name' is invalid.")
        if env_name in env_names:
            raise _invalid(f"The environment variable '{env_name}' at '{epath}.name' is defined twice.")
        env_names.add(env_name)
        for key in ("value", "secureValue"):
            if variable.get(key) is not None and not isinstance(variable[key], str):
                raise _invalid(f"The value at path '{epath}.{key}' must be a string.")
    for index, item in enumerate(_array(inner.get("volumeMounts") or [], f"{path}.properties.volumeMounts")):
        mpath = f"{path}.properties.volumeMounts[{index}]"
        mount = _object(item, mpath)
        volume = _string(_required(mount, "name", mpath), f"{mpath}.name")
        mount_path = _string(_required(mount, "mountPath", mpath), f"{mpath}.mountPath")
        if volume not in volumes:
            raise _invalid(
                f"The volume mount '{volume}' at '{mpath}.name' does not match any volume in 'properties.volumes'.",
                "InvalidVolumeMount",
            )
        if not mount_path.startswith("/") or ".." in mount_path.split("/"):
            raise _invalid(f"The mount path '{mount_path}' at '{mpath}.mountPath' must be an absolute path.")
    return name


def _validate_volumes(props: dict[str, Any]) -> set[str]:
    volumes = _array(props.get("volumes") or [], "properties.volumes")
    if len(volumes) > MAX_VOLUMES:
        raise _invalid(
            f"The container group has {len(volumes)} volumes at 'properties.volumes'; "
            f"at most {MAX_VOLUMES} are allowed.",
            "ContainerGroupVolumeLimitExceeded",
        )
    names: set[str] = set()
    for index, item in enumerate(volumes):
        path = f"properties.volumes[{index}]"
        volume = _object(item, path)
        name = _string(_required(volume, "name", path), f"{path}.name")
        if name in names:
            raise _invalid(f"The volume name '{name}' at '{path}.name' is used twice.", "DuplicateVolumeName")
        names.add(name)
        kinds = [kind for kind in ("azureFile", "emptyDir", "secret", "gitRepo") if volume.get(kind) is not None]
        if len(kinds) != 1:
            raise _invalid(
                f"The volume '{name}' at '{path}' must define exactly one of azureFile, emptyDir, secret or gitRepo.",
                "InvalidVolume",
            )
        if kinds[0] == "azureFile":
            azure_file = _object(volume["azureFile"], f"{path}.azureFile")
            _string(_required(azure_file, "shareName", f"{path}.azureFile"), f"{path}.azureFile.shareName")
            _string(
                _required(azure_file, "storageAccountName", f"{path}.azureFile"), f"{path}.azureFile.storageAccountName"
            )
        elif kinds[0] == "secret":
            secret = _object(volume["secret"], f"{path}.secret")
            for key, value in secret.items():
                if not isinstance(value, str) or not _is_base64(value):
                    raise _invalid(
                        f"The secret volume '{name}' item '{key}' at '{path}.secret.{key}' must be base64 encoded.",
                        "InvalidSecretVolumeValue",
                    )
        elif kinds[0] == "gitRepo":
            git_repo = _object(volume["gitRepo"], f"{path}.gitRepo")
            _string(_required(git_repo, "repository", f"{path}.gitRepo"), f"{path}.gitRepo.repository")
    return names


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True

"""Map a job spec to the ACI container group that runs one attempt of it. Pure: no I/O.

Secrets are passed in already resolved and land only in ``secureValue``, secret volumes, the Azure Files
account key and registry passwords: the fields the service never returns. :func:`render` shows the
exact PUT body with all of them redacted.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from azure.mgmt.containerinstance import models as aci
from azure.mgmt.containerinstance._serialization import Serializer

from dispatcher.domain.errors import FieldError, InvalidJob, SecretNotFound
from dispatcher.domain.policy import image_registry
from dispatcher.domain.spec import (
    EmptyDirVolume,
    InitContainer,
    JobSpec,
    SecretRef,
    SecretVolume,
    ShareVolume,
    WorkspaceVolume,
)
from dispatcher.settings import DispatcherSettings, RegistryCredential

TAG_JOB = "dispatcher-job"
TAG_ATTEMPT = "dispatcher-attempt"
TAG_SPEC_HASH = "dispatcher-spec-hash"
TAG_INSTANCE = "dispatcher-instance"
TAG_DEADLINE = "dispatcher-deadline"
TAG_CREATED = "dispatcher-created"

REDACTED = "<redacted>"


def group_name(job_id: str, attempt: int) -> str:
    """The deterministic name of a job attempt's group, so redeliveries and races converge on one group."""
    return f"{job_id}-a{attempt}"


def workspace_share(job_id: str) -> str:
    """The name of the per-job Azure Files share that backs a workspace volume."""
    return f"ws-{job_id}"


def required_secrets(spec: JobSpec, settings: DispatcherSettings) -> list[str]:
    """The secret store keys that must be resolved before :func:`build_container_group` can run."""
    keys: list[str] = [ref.key for _, ref in spec.secret_refs() if not ref.is_inline]
    for volume in spec.volumes.values():
        account = None
        if isinstance(volume, ShareVolume):
            account = volume.account or settings.storage_account
        elif isinstance(volume, WorkspaceVolume):
            account = settings.storage_account
        secret = settings.account_key_secret(account) if account is not None else None
        if secret:
            keys.append(secret)
    for cred in _registry_credentials(spec, settings):
        if cred.password_secret:
            keys.append(cred.password_secret)
    return list(dict.fromkeys(keys))


def _registry_credentials(spec: JobSpec, settings: DispatcherSettings) -> list[RegistryCredential]:
    registries = {image_registry(c.image) for _, c in spec.all_containers()}
    return [cred for cred in settings.registry_credentials if cred.server in registries]


def _lookup(secrets: Mapping[str, str], key: str) -> str:
    try:
        return secrets[key]
    except KeyError:
        raise SecretNotFound(key) from None


def _secret_value(ref: SecretRef, secrets: Mapping[str, str]) -> str:
    if ref.value is not None:
        return ref.value.get_secret_value()
    return _lookup(secrets, ref.key)


def _environment(container: InitContainer, secrets: Mapping[str, str]) -> list[aci.EnvironmentVariable]:
    env = [aci.EnvironmentVariable(name=name, value=value) for name, value in container.env.items()]
    env += [
        aci.EnvironmentVariable(name=name, secure_value=_secret_value(ref, secrets))
        for name, ref in container.secret_env.items()
    ]
    return env


def _mounts(container: InitContainer, spec: JobSpec) -> list[aci.VolumeMount] | None:
    mounts = [
        aci.VolumeMount(
            name=m.volume,
            mount_path=m.path,
            read_only=True if isinstance(spec.volumes[m.volume], SecretVolume) else m.read_only,
        )
        for m in container.mounts
    ]
    return mounts or None


def _volume(name: str, spec: JobSpec, settings: DispatcherSettings, secrets: Mapping[str, str]) -> aci.Volume:
    volume = spec.volumes[name]
    if isinstance(volume, EmptyDirVolume):
        return aci.Volume(name=name, empty_dir={})
    if isinstance(volume, SecretVolume):
        data = {
            file: base64.b64encode(_secret_value(ref, secrets).encode()).decode() for file, ref in volume.items.items()
        }
        return aci.Volume(name=name, secret=data)
    if isinstance(volume, ShareVolume):
        account, share, read_only = volume.account or settings.storage_account, volume.share, volume.read_only
    else:
        account, share, read_only = settings.storage_account, workspace_share(_job_id(spec)), False
    key_secret = settings.account_key_secret(account)
    if not account or key_secret is None:
        raise InvalidJob([FieldError(f"volumes.{name}", f"storage account {account!r} is not configured for mounts")])
    return aci.Volume(
        name=name,
        azure_file=aci.AzureFileVolume(
            share_name=share,
            storage_account_name=account,
            storage_account_key=_lookup(secrets, key_secret),
            read_only=read_only,
        ),
    )


def _job_id(spec: JobSpec) -> str:
    if spec.id is None:
        raise InvalidJob([FieldError("id", "a job needs an id before it can be mapped to a container group")])
    return spec.id


def build_container_group(
    spec: JobSpec,
    attempt: int,
    secrets: Mapping[str, str],
    settings: DispatcherSettings,
    *,
    location: str,
    now: dt.datetime,
) -> aci.ContainerGroup:
    """The container group for attempt ``attempt`` (1-based) of ``spec``, in ``location``.

    ``secrets`` maps every key of :func:`required_secrets` to its value. Raises
    :class:`~dispatcher.domain.errors.SecretNotFound` naming a reference that is missing from it.
    """
    job_id = _job_id(spec)
    timeout = settings.timeout_for(spec.timeout_seconds)
    created = now.astimezone(dt.UTC).replace(microsecond=0)
    deadline = created + dt.timedelta(seconds=timeout)

    containers = [
        aci.Container(
            name=c.name,
            image=c.image,
            command=c.command,
            environment_variables=_environment(c, secrets) or None,
            resources=aci.ResourceRequirements(requests=aci.ResourceRequests(cpu=c.cpu, memory_in_gb=c.memory_gb)),
            volume_mounts=_mounts(c, spec),
        )
        for c in spec.containers
    ]
    init_containers = [
        aci.InitContainerDefinition(
            name=c.name,
            image=c.image,
            command=c.command,
            environment_variables=_environment(c, secrets) or None,
            volume_mounts=_mounts(c, spec),
        )
        for c in spec.init_containers
    ]
    registry_credentials = [
        aci.ImageRegistryCredential(
            server=cred.server,
            identity=cred.identity,
            username=cred.username,
            password=_lookup(secrets, cred.password_secret) if cred.password_secret else None,
        )
        for cred in _registry_credentials(spec, settings)
    ]
    identity = None
    if settings.job_identity:
        identity = aci.ContainerGroupIdentity(
            type="UserAssigned", user_assigned_identities={settings.job_identity: aci.UserAssignedIdentities()}
        )
    return aci.ContainerGroup(
        location=location,
        tags={
            TAG_JOB: job_id,
            TAG_ATTEMPT: str(attempt),
            TAG_SPEC_HASH: spec.spec_hash(),
            TAG_INSTANCE: settings.instance,
            TAG_DEADLINE: deadline.isoformat().replace("+00:00", "Z"),
            TAG_CREATED: created.isoformat().replace("+00:00", "Z"),
        },
        identity=identity,
        os_type="Linux",
        restart_policy=spec.restart_policy,
        priority=spec.priority,
        containers=containers,
        init_containers=init_containers or None,
        volumes=[_volume(name, spec, settings, secrets) for name in spec.volumes] or None,
        subnet_ids=[aci.ContainerGroupSubnetId(id=s) for s in settings.subnet_ids] or None,
        image_registry_credentials=registry_credentials or None,
    )


_SERIALIZER = Serializer({k: v for k, v in vars(aci).items() if isinstance(v, type)})
_SERIALIZER.client_side_validation = True


def to_wire(group: aci.ContainerGroup) -> dict[str, Any]:
    """The JSON body the SDK PUTs for ``group``, serialized by the SDK itself with client-side validation."""
    body: dict[str, Any] = _SERIALIZER.body(group, "ContainerGroup")  # type: ignore[no-untyped-call]
    return body


def _redact_env(env: Iterable[dict[str, Any]]) -> None:
    for var in env:
        if "secureValue" in var:
            var["secureValue"] = REDACTED


def redact(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of a wire body with every secret value replaced by ``<redacted>``."""
    out = copy.deepcopy(body)
    props = out.get("properties", {})
    for group_key in ("containers", "initContainers"):
        for container in props.get(group_key) or []:
            _redact_env(container.get("properties", {}).get("environmentVariables") or [])
    for volume in props.get("volumes") or []:
        if "secret" in volume:
            volume["secret"] = dict.fromkeys(volume["secret"], REDACTED)
        if "azureFile" in volume and "storageAccountKey" in volume["azureFile"]:
            volume["azureFile"]["storageAccountKey"] = REDACTED
    for cred in props.get("imageRegistryCredentials") or []:
        if "password" in cred:
            cred["password"] = REDACTED
    return out


def render(
    spec: JobSpec, settings: DispatcherSettings, *, attempt: int = 1, location: str, now: dt.datetime
) -> dict[str, Any]:
    """The exact body that would be PUT for ``spec``, secrets redacted: a dry run that resolves nothing."""
    if spec.id is None:
        spec = spec.model_copy(update={"id": "job-id"})
    placeholders = dict.fromkeys(required_secrets(spec, settings), REDACTED)
    group = build_container_group(spec, attempt, placeholders, settings, location=location, now=now)
    return redact(to_wire(group))

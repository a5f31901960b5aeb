"""Map one attempt's :class:`~dispatcher.ports.GroupRequest` to the ACI container group that runs it. Pure: no I/O.

Secrets are passed in already resolved and land only in ``secureValue``, secret volumes, the Azure Files
account key and registry passwords: the fields the service never returns. :func:`render` shows the
exact PUT body with all of them redacted.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from azure.mgmt.containerinstance import models as aci
from azure.mgmt.containerinstance._serialization import Serializer

from dispatcher.domain.errors import FieldError, InvalidJob, SecretNotFound
from dispatcher.domain.naming import (
    TAG_ATTEMPT,
    TAG_CREATED,
    TAG_DEADLINE,
    TAG_INSTANCE,
    TAG_JOB,
    TAG_SPEC_HASH,
    workspace_share,
)
from dispatcher.domain.secrets import dispatcher_secret_keys, job_secret_keys, mount_account
from dispatcher.domain.secrets import registry_credentials as registry_credentials_for
from dispatcher.domain.spec import EmptyDirVolume, InitContainer, JobSpec, SecretRef, SecretVolume, ShareVolume
from dispatcher.ports import GroupRequest
from dispatcher.settings import ContainerLogs, DispatcherSettings

REDACTED = "<redacted>"


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


def _volume(name: str, request: GroupRequest, settings: DispatcherSettings) -> aci.Volume:
    spec = request.spec
    volume = spec.volumes[name]
    if isinstance(volume, EmptyDirVolume):
        return aci.Volume(name=name, empty_dir={})
    if isinstance(volume, SecretVolume):
        data = {
            file: base64.b64encode(_secret_value(ref, request.job_secrets).encode()).decode()
            for file, ref in volume.items.items()
        }
        return aci.Volume(name=name, secret=data)
    account = mount_account(volume, settings) or ""
    if isinstance(volume, ShareVolume):
        share, read_only = volume.share, volume.read_only
    else:
        share, read_only = request.workspace or workspace_share(request.job_id), False
    key_secret = settings.account_key_secret(account)
    if not account or key_secret is None:
        raise InvalidJob([FieldError(f"volumes.{name}", f"storage account {account!r} is not configured for mounts")])
    return aci.Volume(
        name=name,
        azure_file=aci.AzureFileVolume(
            share_name=share,
            storage_account_name=account,
            storage_account_key=_lookup(request.dispatcher_secrets, key_secret),
            read_only=read_only,
        ),
    )


MAX_TAGS = 50
MAX_TAG_TEXT = 256
_TAG_NAME_FORBIDDEN = re.compile(r"[<>%&\\?/]")


def label_tags(labels: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """A job's labels as ARM tags beside the dispatcher's ``own``, within ARM's tag rules (Resource Manager's
    "Use tags" limitations: at most 50 tags a resource; names without ``< > % & \\ ? /``; names and values of at
    most 256 characters here, the stricter of the limits ARM documents; no empty value). Names are compared as ARM
    does, without case: a label that would clash with one of the dispatcher's tags, or another label, is left out,
    as are labels past the 50th tag, in key order."""
    taken = {name.lower() for name in own}
    tags: dict[str, str] = {}
    for key in sorted(labels):
        name = _TAG_NAME_FORBIDDEN.sub("_", key)[:MAX_TAG_TEXT]
        value = labels[key][:MAX_TAG_TEXT]
        if not value or name.lower() in taken or len(own) + len(tags) >= MAX_TAGS:
            continue
        taken.add(name.lower())
        tags[name] = value
    return tags


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def build_container_group(request: GroupRequest, settings: DispatcherSettings) -> aci.ContainerGroup:
    """The container group of one attempt, built from nothing but ``request`` and ``settings``.

    The same request gives the same group, byte for byte. Raises :class:`~dispatcher.domain.errors.SecretNotFound`
    naming a reference that the request's resolved secrets lack.
    """
    spec = request.spec
    created = request.created.astimezone(dt.UTC).replace(microsecond=0)
    deadline = created + dt.timedelta(seconds=request.timeout_seconds)
    containers = [
        aci.Container(
            name=c.name,
            image=c.image,
            command=c.command,
            environment_variables=_environment(c, request.job_secrets) or None,
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
            environment_variables=_environment(c, request.job_secrets) or None,
            volume_mounts=_mounts(c, spec),
        )
        for c in spec.init_containers
    ]
    registry_credentials = [
        aci.ImageRegistryCredential(
            server=cred.server,
            identity=cred.identity,
            username=cred.username,
            password=_lookup(request.dispatcher_secrets, cred.password_secret) if cred.password_secret else None,
        )
        for cred in registry_credentials_for(spec, settings)
    ]
    identities = dict.fromkeys(i for i in (settings.job_identity, request.identity) if i)
    identity = None
    if identities:
        identity = aci.ContainerGroupIdentity(
            type="UserAssigned", user_assigned_identities={i: aci.UserAssignedIdentities() for i in identities}
        )
    own = {
        TAG_JOB: request.job_id,
        TAG_ATTEMPT: str(request.attempt),
        TAG_SPEC_HASH: spec.spec_hash(),
        TAG_INSTANCE: settings.instance,
        TAG_DEADLINE: _stamp(deadline),
        TAG_CREATED: _stamp(created),
    }
    return aci.ContainerGroup(
        location=request.location,
        tags={**own, **label_tags(request.labels, own)},
        identity=identity,
        os_type="Linux",
        restart_policy=spec.restart_policy,
        priority=spec.priority,
        containers=containers,
        init_containers=init_containers or None,
        volumes=[_volume(name, request, settings) for name in spec.volumes] or None,
        subnet_ids=[aci.ContainerGroupSubnetId(id=s) for s in settings.subnet_ids] or None,
        image_registry_credentials=registry_credentials or None,
        diagnostics=_diagnostics(request),
    )


def _diagnostics(request: GroupRequest) -> aci.ContainerGroupDiagnostics | None:
    """ACI's own log shipping to the pool's Log Analytics workspace, when the pool has one."""
    logs = request.container_logs
    if logs is None:
        return None
    analytics = aci.LogAnalytics(
        workspace_id=logs.workspace_id,
        workspace_key=_lookup(request.dispatcher_secrets, logs.key_secret),
        log_type=logs.log_type,
        workspace_resource_id=logs.workspace_resource_id,
        metadata={TAG_JOB: request.job_id, TAG_ATTEMPT: str(request.attempt)},
    )
    return aci.ContainerGroupDiagnostics(log_analytics=analytics)


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
    analytics = (props.get("diagnostics") or {}).get("logAnalytics") or {}
    if "workspaceKey" in analytics:
        analytics["workspaceKey"] = REDACTED
    return out


def render(
    spec: JobSpec,
    settings: DispatcherSettings,
    *,
    attempt: int = 1,
    location: str,
    now: dt.datetime,
    container_logs: ContainerLogs | None = None,
) -> dict[str, Any]:
    """The exact body that would be PUT for ``spec`` (in a pool sending container logs to ``container_logs``),
    secrets redacted: a dry run that resolves nothing."""
    job_id = spec.id or "job-id"
    own_keys = dispatcher_secret_keys(spec, settings) + ([container_logs.key_secret] if container_logs else [])
    request = GroupRequest(
        job_id=job_id,
        attempt=attempt,
        spec=spec,
        location=location,
        created=now,
        timeout_seconds=settings.timeout_for(spec.timeout_seconds),
        job_secrets=dict.fromkeys(job_secret_keys(spec), REDACTED),
        dispatcher_secrets=dict.fromkeys(own_keys, REDACTED),
        container_logs=container_logs,
    )
    return redact(to_wire(build_container_group(request, settings)))

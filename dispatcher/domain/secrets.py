"""Which secrets a job needs, from which vault, and how inline values become references. Pure.

Two vaults hold secrets. A job's own references (``secretEnv``, secret volumes) resolve in the job-secrets
vault, where inline values are stored too. The dispatcher's own secrets (a storage account's key for an
azureFile mount, a registry's password) resolve in the dispatcher's vault, which no job can name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dispatcher.domain.policy import image_registry
from dispatcher.domain.spec import JobSpec, SecretRef, SecretVolume, ShareVolume, WorkspaceVolume
from dispatcher.settings import DispatcherSettings, RegistryCredential


def inline_refs(spec: JobSpec) -> Iterator[tuple[str, SecretRef]]:
    """Every inline secret value of ``spec`` with its field path, in a stable order."""
    for path, ref in spec.secret_refs():
        if ref.is_inline:
            yield path, ref


def job_secret_keys(spec: JobSpec) -> list[str]:
    """The job-secrets vault keys (``name`` or ``name/version``) a launch of ``spec`` resolves."""
    return list(dict.fromkeys(ref.key for _, ref in spec.secret_refs() if not ref.is_inline))


def registry_credentials(spec: JobSpec, settings: DispatcherSettings) -> list[RegistryCredential]:
    """The configured registry credentials that the spec's images need."""
    registries = {image_registry(c.image) for _, c in spec.all_containers()}
    return [cred for cred in settings.registry_credentials if cred.server in registries]


def mount_account(volume: object, settings: DispatcherSettings) -> str | None:
    """The storage account an azureFile volume mounts from, or ``None`` for a volume that mounts none."""
    if isinstance(volume, ShareVolume):
        return volume.account or settings.storage_account
    if isinstance(volume, WorkspaceVolume):
        return settings.storage_account
    return None


def dispatcher_secret_keys(spec: JobSpec, settings: DispatcherSettings) -> list[str]:
    """The dispatcher's own vault keys a launch of ``spec`` resolves: account keys and registry passwords."""
    keys: list[str] = []
    for volume in spec.volumes.values():
        account = mount_account(volume, settings)
        secret = settings.account_key_secret(account) if account is not None else None
        if secret:
            keys.append(secret)
    keys += [cred.password_secret for cred in registry_credentials(spec, settings) if cred.password_secret]
    return list(dict.fromkeys(keys))


def with_references(spec: JobSpec, stored: Mapping[str, SecretRef]) -> JobSpec:
    """``spec`` with the secret references at the paths of ``stored`` replaced (inline values by vault names)."""

    def swap(path: str, ref: SecretRef) -> SecretRef:
        return stored.get(path, ref)

    def containers(field: str, items: list[object]) -> list[object]:
        return [
            c.model_copy(  # type: ignore[attr-defined]
                update={
                    "secret_env": {
                        name: swap(f"{field}[{i}].secretEnv.{name}", ref)
                        for name, ref in c.secret_env.items()  # type: ignore[attr-defined]
                    }
                }
            )
            for i, c in enumerate(items)
        ]

    volumes = {
        name: volume.model_copy(
            update={"items": {file: swap(f"volumes.{name}.items.{file}", ref) for file, ref in volume.items.items()}}
        )
        if isinstance(volume, SecretVolume)
        else volume
        for name, volume in spec.volumes.items()
    }
    return spec.model_copy(
        update={
            "containers": containers("containers", list(spec.containers)),
            "init_containers": containers("initContainers", list(spec.init_containers)),
            "volumes": volumes,
        }
    )

"""Operator policy: what a well-formed job is still not allowed to do here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from dispatcher.domain.errors import FieldError, PolicyViolation
from dispatcher.domain.identity import team_labels
from dispatcher.domain.naming import INLINE_PREFIX
from dispatcher.domain.spec import JobSpec, ShareVolume, WorkspaceVolume
from dispatcher.settings import DispatcherSettings

DOCKER_HUB = "docker.io"


def image_reference(image: str) -> str:
    """The fully qualified ``registry/repository[:tag]`` form of an image, as Docker resolves short names."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return image
    if not sep:
        return f"{DOCKER_HUB}/library/{image}"
    return f"{DOCKER_HUB}/{image}"


def image_registry(image: str) -> str:
    """The registry host an image is pulled from."""
    return image_reference(image).partition("/")[0]


def registry_allowed(image: str, allowed: list[str]) -> bool:
    """Whether an image comes from an allowed registry (``host``) or under an allowed prefix (``host/path/``)."""
    ref = image_reference(image)
    for entry in allowed:
        if entry == "*":
            return True
        if "/" in entry:
            if ref.startswith(entry if entry.endswith("/") else entry + "/") or ref.split(":")[0] == entry:
                return True
        elif image_registry(image) == entry:
            return True
    return False


def identity_of(spec: JobSpec, team: str | None, settings: DispatcherSettings) -> str | None:
    """The resource id of the managed identity ``spec`` names (``identity:``), from its team's allowlist; ``None``
    when it names none or one its team may not use."""
    if spec.identity is None or team is None or team not in settings.teams:
        return None
    return settings.teams[team].identities.get(spec.identity)


def check_policy(spec: JobSpec, settings: DispatcherSettings, team: str | None = None) -> list[FieldError]:
    """Every way ``spec``, submitted for ``team``, breaks the operator's policy, each naming its field."""
    errors: list[FieldError] = []
    add = errors.append
    if spec.identity is not None and identity_of(spec, team, settings) is None:
        allowed = sorted(settings.teams[team].identities) if team in settings.teams else []
        listed = ", ".join(allowed) or "none"
        add(FieldError("identity", f"{spec.identity!r} is not an identity team {team!r} may use ({listed})"))
    for path, container in spec.all_containers():
        if not registry_allowed(container.image, settings.allowed_registries):
            add(
                FieldError(
                    f"{path}.image",
                    f"{container.image!r} is not from an allowed registry ({', '.join(settings.allowed_registries)})",
                )
            )
    if spec.total_cpu > settings.max_cpu + 1e-9:
        add(FieldError("containers", f"{spec.total_cpu:g} vCPU is above this dispatcher's cap of {settings.max_cpu:g}"))
    if spec.total_memory_gb > settings.max_memory_gb + 1e-9:
        add(
            FieldError(
                "containers",
                f"{spec.total_memory_gb:g} GB is above this dispatcher's cap of {settings.max_memory_gb:g} GB",
            )
        )
    if spec.timeout_seconds is not None and spec.timeout_seconds > settings.max_timeout_seconds:
        add(
            FieldError(
                "timeoutSeconds",
                f"{spec.timeout_seconds} is above this dispatcher's cap of {settings.max_timeout_seconds} seconds",
            )
        )
    for name, volume in spec.volumes.items():
        if isinstance(volume, WorkspaceVolume) and not settings.storage_account:
            add(FieldError(f"volumes.{name}", "workspaces need a storage account (DISPATCHER_STORAGE_ACCOUNT)"))
        if not isinstance(volume, ShareVolume):
            continue
        account = volume.account or settings.storage_account
        if volume.share not in settings.allowed_shares and f"{account}/{volume.share}" not in settings.allowed_shares:
            add(FieldError(f"volumes.{name}.share", f"share {volume.share!r} is not on the allowed list"))
        if settings.account_key_secret(account) is None:
            add(FieldError(f"volumes.{name}.account", f"storage account {account!r} is not configured for mounts"))
    if spec.tasks is not None and spec.tasks.total > settings.max_tasks:
        field = "tasks.count" if spec.tasks.count is not None else "tasks.items"
        add(FieldError(field, f"{spec.tasks.total} tasks is more than this dispatcher's cap of {settings.max_tasks}"))
    if not settings.allow_inline_secrets:
        for path, ref in spec.secret_refs():
            if ref.is_inline:
                add(FieldError(path, "inline secret values are not allowed here; reference a secret store name"))
    errors.extend(_secret_reference_errors(spec, settings))
    return errors


def name_allowed(name: str, patterns: list[str]) -> bool:
    """Whether ``name`` is one of ``patterns``: exact names, or prefixes ending in ``*``."""
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


def _secret_reference_errors(spec: JobSpec, settings: DispatcherSettings) -> list[FieldError]:
    own = settings.dispatcher_secret_names()
    patterns = settings.secret_names_for(spec.labels)
    errors: list[FieldError] = []
    for path, ref in spec.secret_refs():
        name = ref.secret
        if name is None:
            continue
        if name in own:
            errors.append(FieldError(path, f"{name!r} is one of the dispatcher's own secrets; no job may read it"))
        elif name.startswith(INLINE_PREFIX):
            errors.append(FieldError(path, f"names starting {INLINE_PREFIX!r} hold other jobs' inline values"))
        elif not name_allowed(name, patterns):
            errors.append(
                FieldError(path, f"secret {name!r} is not one this job may reference ({', '.join(patterns)})")
            )
    return errors


def apply_policy(spec: JobSpec, settings: DispatcherSettings, team: str | None = None) -> JobSpec:
    """Label ``spec`` with ``team`` (its submitter's), check it against policy and fill in the operator's defaults,
    or raise :class:`PolicyViolation`."""
    spec = spec.model_copy(update={"labels": team_labels(spec.labels, team)})
    problems = check_policy(spec, settings, team)
    if problems:
        raise PolicyViolation(problems)
    if spec.timeout_seconds is None:
        return spec.model_copy(update={"timeout_seconds": settings.default_timeout_seconds})
    return spec


class Policy(BaseModel):
    """The operator's policy as the API shows it (``GET /api/policy``), for clients to check specs as the server
    will. It holds no secret and names none of the dispatcher's own: the server alone refuses references to those."""

    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)

    allowed_registries: list[str]
    allowed_shares: list[str]
    max_cpu: float
    max_memory_gb: float = Field(alias="maxMemoryGB")
    max_tasks: int
    max_timeout_seconds: int
    default_timeout_seconds: int
    allow_inline_secrets: bool
    secret_names: list[str]
    secret_names_by_label: dict[str, dict[str, list[str]]]
    storage_account: str = Field(description="The account of workspaces and of shares by default; empty: none.")
    mount_accounts: list[str] = Field(description="Storage accounts jobs may mount shares from.")


def policy_of(settings: DispatcherSettings) -> Policy:
    """What of ``settings`` is policy, for clients."""
    accounts = sorted({*settings.share_accounts, *([settings.storage_account] if settings.storage_account else [])})
    return Policy(
        allowed_registries=settings.allowed_registries,
        allowed_shares=settings.allowed_shares,
        max_cpu=settings.max_cpu,
        max_memory_gb=settings.max_memory_gb,
        max_tasks=settings.max_tasks,
        max_timeout_seconds=settings.max_timeout_seconds,
        default_timeout_seconds=settings.default_timeout_seconds,
        allow_inline_secrets=settings.allow_inline_secrets,
        secret_names=settings.secret_names,
        secret_names_by_label=settings.secret_names_by_label,
        storage_account=settings.storage_account,
        mount_accounts=accounts,
    )


def settings_of(policy: Policy) -> DispatcherSettings:
    """Settings that check a spec as a server with ``policy`` does (:func:`check_policy`), and map it as its groups
    would be (with placeholder secret names: nothing is resolved)."""
    return DispatcherSettings(
        **policy.model_dump(exclude={"mount_accounts"}),
        share_accounts=dict.fromkeys(policy.mount_accounts, "storage-account-key"),
    )

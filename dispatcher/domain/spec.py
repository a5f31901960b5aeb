"""Job spec v1: what a user asks to run, as frozen pydantic models, plus the parser that enforces ACI's limits.

A spec is accepted from YAML or JSON. :func:`parse_job` and :func:`validate_job` are the only ways in:
they run the structural validation of the models and then :func:`~dispatcher.domain.limits.check_limits`, and
raise :class:`~dispatcher.domain.errors.InvalidJob` with every problem, each naming its field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dispatcher.domain.naming import GROUP_NAME_MAX, JOB_ID
from dispatcher.domain.tasks import Tasks

# ACI's limits for one Linux container group (DESIGN.md, "Azure facts").
MAX_CONTAINERS = 60
MAX_VOLUMES = 20
MAX_GROUP_CPU = 4.0
MAX_GROUP_MEMORY_GB = 16.0
MAX_RETRIES = 10
MAX_SPEC_BYTES = 256 * 1024

# ARM names a group at most 63 characters; the group name is "{id}-a{attempt}" and attempts go up to
# MAX_RETRIES + 1, so the id keeps room for "-a11". A workspace share is "ws-{id}", which fits too.
ID_MAX = GROUP_NAME_MAX - len(f"-a{MAX_RETRIES + 1}")

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SHARE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
    )


class SecretRef(_Model):
    """A reference to a secret: a name in the configured secret store (Key Vault), or, if policy allows,
    an inline value. A plain string is shorthand for ``{secret: <name>}``."""

    secret: str | None = Field(default=None, description="Name of the secret in the secret store.")
    version: str | None = Field(default=None, description="A specific secret version; the latest if omitted.")
    value: SecretStr | None = Field(
        default=None, description="An inline secret value. Rejected unless the operator's policy allows it."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"secret": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.secret is None) == (self.value is None):
            raise ValueError("give exactly one of 'secret' (a secret store name) or 'value' (inline)")
        if self.secret is not None and not SECRET_NAME.match(self.secret):
            raise ValueError(f"secret name {self.secret!r} must be 1-127 letters, digits and '-'")
        if self.version is not None and self.secret is None:
            raise ValueError("'version' applies only to a secret store reference")
        return self

    @property
    def is_inline(self) -> bool:
        return self.value is not None

    @property
    def key(self) -> str:
        """How the reference is named in resolved-secret maps and messages; never the value itself."""
        if self.secret is None:
            return "<inline>"
        return f"{self.secret}/{self.version}" if self.version else self.secret


class Mount(_Model):
    """A volume mounted into a container."""

    volume: str = Field(description="Name of a volume declared under `volumes`.")
    path: str = Field(description="Absolute mount path inside the container.")
    read_only: bool = False

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path")
        if ":" in value:
            raise ValueError(f"{value!r} must not contain ':'")
        return value


class InitContainer(_Model):
    """A container that runs to completion before the main containers start, in order."""

    name: str = Field(description="Unique among the job's containers: lowercase letters, digits and '-'.")
    image: str = Field(min_length=1, max_length=512)
    command: list[str] | None = Field(default=None, description="Exec form: the program and its arguments.")
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: dict[str, SecretRef] = Field(
        default_factory=dict, description="Environment variables set from secrets; they become `secureValue`."
    )
    mounts: list[Mount] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > GROUP_NAME_MAX or not DNS_LABEL.match(value):
            raise ValueError(
                f"{value!r} must be 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit"
            )
        return value

    @field_validator("env", "secret_env")
    @classmethod
    def _env_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in value if not ENV_NAME.match(name)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: not valid environment variable names")
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty command; omit it to use the image's entrypoint")
        return value


class Container(InitContainer):
    """One of the job's main containers; they share the group's network and volumes."""

    cpu: float = Field(default=1.0, gt=0, description="vCPU requested.")
    memory_gb: float = Field(default=1.5, gt=0, alias="memoryGB", description="Memory requested, in GB.")

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: float) -> float:
        if value > MAX_GROUP_CPU:
            raise ValueError(f"{number_text(value)} is above the 4 vCPU a Linux group may request")
        return value

    @field_validator("memory_gb")
    @classmethod
    def _memory(cls, value: float) -> float:
        if value > MAX_GROUP_MEMORY_GB:
            raise ValueError(f"{number_text(value)} is above the 16 GB a Linux group may request")
        if not math.isclose(value * 10, round(value * 10), abs_tol=1e-6):
            raise ValueError(f"{number_text(value)} must be a multiple of 0.1 GB")
        return value


class ShareVolume(_Model):
    """An existing Azure Files share, allowlisted by policy."""

    kind: Literal["share"]
    share: str = Field(description="The Azure Files share name.")
    account: str | None = Field(default=None, description="Storage account; the dispatcher's own if omitted.")
    read_only: bool = False

    @field_validator("share")
    @classmethod
    def _share(cls, value: str) -> str:
        if not SHARE_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid share name (3-63 lowercase letters, digits, single hyphens)")
        return value


class WorkspaceVolume(_Model):
    """A per-job share that the dispatcher creates; outputs written here outlive the job."""

    kind: Literal["workspace"]


class SecretVolume(_Model):
    """Files whose contents come from secrets, mounted read-only on a tmpfs."""

    kind: Literal["secret"]
    items: dict[str, SecretRef] = Field(min_length=1, description="File name → secret reference.")

    @field_validator("items")
    @classmethod
    def _file_names(cls, value: dict[str, SecretRef]) -> dict[str, SecretRef]:
        bad = [n for n in value if not FILE_NAME.match(n) or n in (".", "..")]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: file names are letters, digits, '.', '_' and '-'")
        return value


class EmptyDirVolume(_Model):
    """A scratch folder shared by the job's containers for the life of the group."""

    kind: Literal["emptyDir"]


Volume = Annotated[ShareVolume | WorkspaceVolume | SecretVolume | EmptyDirVolume, Field(discriminator="kind")]


class Retries(_Model):
    """How many more attempts a failed job gets, and how long to wait between them."""

    count: int = Field(default=0, ge=0, le=MAX_RETRIES)
    backoff_seconds: float = Field(default=30.0, ge=0, le=86400)
    backoff_factor: float = Field(default=2.0, ge=1, le=10)
    max_backoff_seconds: float = Field(default=3600.0, ge=0, le=86400)
    on_timeout: bool = Field(default=False, description="Whether a timed-out attempt is retried too.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int) and not isinstance(data, bool):
            return {"count": data}
        return data

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt ``failed_attempt`` (1-based) failed."""
        exponent = min(max(failed_attempt - 1, 0), 64)
        return float(min(self.backoff_seconds * self.backoff_factor**exponent, self.max_backoff_seconds))


class Placement(_Model):
    """Where the job may run: a region or pool pin, and a spread group for anti-affinity."""

    region: str | None = Field(default=None, description="An Azure region, e.g. westeurope.")
    pool: str | None = Field(default=None, description="A capacity pool name.")
    spread_group: str | None = Field(
        default=None, description="Jobs of one spread group avoid pools that already run members of it."
    )


MAX_DEPENDENCIES = 20
SHORTHAND = ("image", "command", "cpu", "memoryGB", "env", "secretEnv", "mounts")
"""The fields of the single-container shorthand: at the top level they stand for one container named ``main``."""


class Dependency(_Model):
    """A job this one waits for. A plain id is shorthand for ``{job: <id>}`` (condition Succeeded)."""

    job: str = Field(description="The id of the job to wait for.")
    condition: Literal["Succeeded", "Completed"] = Field(
        default="Succeeded", description="Succeeded: it must succeed. Completed: any end will do."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"job": data} if isinstance(data, str) else data

    @field_validator("job")
    @classmethod
    def _job(cls, value: str) -> str:
        if len(value) > ID_MAX or not JOB_ID.match(value) or "--" in value:
            raise ValueError(f"{ascii(value)[:80]} is not a job id")
        return value


class JobSpec(_Model):
    """A job: one ACI container group per attempt, run until its containers exit."""

    api_version: Literal["dispatcher/v1"] = Field(default="dispatcher/v1", description="The spec version.")
    id: str | None = Field(
        default=None,
        description=(
            f"Client-chosen id, for idempotent submission: 1-{ID_MAX} lowercase letters, digits and single "
            "hyphens, starting and ending with a letter or digit."
        ),
    )
    name: str | None = Field(default=None, max_length=256)
    labels: dict[str, str] = Field(default_factory=dict)
    image: str | None = Field(default=None, description="Shorthand for a single container named `main`.")
    command: list[str] | None = Field(default=None, description="Shorthand: the single container's command.")
    containers: list[Container] = Field(default_factory=list)
    init_containers: list[InitContainer] = Field(default_factory=list)
    volumes: dict[str, Volume] = Field(default_factory=dict)
    timeout_seconds: int | None = Field(
        default=None, gt=0, description="Wall-clock limit per attempt; the operator's default if omitted."
    )
    retries: Retries = Field(default_factory=Retries)
    restart_policy: str = Field(default="Never", description="Never or OnFailure.")
    priority: Literal["Regular", "Spot"] = "Regular"
    placement: Placement = Field(default_factory=Placement)
    depends_on: list[Dependency] = Field(
        default_factory=list,
        max_length=MAX_DEPENDENCIES,
        description="Jobs that must end first (each Succeeded, or with condition Completed, in any way).",
    )
    tasks: Tasks | None = Field(
        default=None, description="Make this an array job: one container per task, packed into container groups."
    )
    identity: str | None = Field(
        default=None,
        max_length=128,
        description="A managed identity the job's containers run as, by the name the operator gave it for the team.",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value) > ID_MAX:
            raise ValueError(f"{len(value)} characters is more than the {ID_MAX} a job id may have")
        if not JOB_ID.match(value) or "--" in value:
            raise ValueError(
                f"{value!r} must be lowercase letters, digits and single hyphens, starting and ending with a letter "
                "or digit"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not LABEL_KEY.match(k)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: label keys are 1-63 letters, digits, '.', '_' or '-'")
        if len(value) > 32:
            raise ValueError(f"{len(value)} labels is more than the 32 a job may have")
        return value

    @field_validator("volumes")
    @classmethod
    def _volume_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [n for n in value if len(n) > GROUP_NAME_MAX or not DNS_LABEL.match(n)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: volume names are 1-63 lowercase letters, digits and '-'")
        return value

    @field_validator("restart_policy")
    @classmethod
    def _restart_policy(cls, value: str) -> str:
        if value == "Always":
            raise ValueError("Always restarts containers forever, so a job would never finish; use Never or OnFailure")
        if value not in ("Never", "OnFailure"):
            raise ValueError(f"{value!r} is not a restart policy; use Never or OnFailure")
        return value

    @model_validator(mode="before")
    @classmethod
    def _expand_shorthand(cls, data: Any) -> Any:
        """``image``, ``command``, ``cpu``, ``memoryGB``, ``env``, ``secretEnv`` and ``mounts`` at the top level stand
        for a single container named ``main``."""
        if not isinstance(data, Mapping) or not any(key in data for key in SHORTHAND):
            return data
        data = dict(data)
        if data.get("containers"):
            given = ", ".join(key for key in SHORTHAND if key in data)
            raise ValueError(f"give either the top-level shorthand ({given}) or containers[], not both")
        if "image" not in data:
            raise ValueError(f"a top-level {next(key for key in SHORTHAND if key in data)} needs a top-level image")
        main = {"name": "main"} | {key: data.pop(key) for key in SHORTHAND if key in data}
        data["containers"] = [main]
        return data

    def all_containers(self) -> Iterator[tuple[str, InitContainer]]:
        """Every container with its field path, init containers first."""
        for i, init in enumerate(self.init_containers):
            yield f"initContainers[{i}]", init
        for i, container in enumerate(self.containers):
            yield f"containers[{i}]", container

    def secret_refs(self) -> Iterator[tuple[str, SecretRef]]:
        """Every secret reference in the spec, with its field path."""
        for path, container in self.all_containers():
            for name, ref in container.secret_env.items():
                yield f"{path}.secretEnv.{name}", ref
        for vol_name, volume in self.volumes.items():
            if isinstance(volume, SecretVolume):
                for file_name, ref in volume.items.items():
                    yield f"volumes.{vol_name}.items.{file_name}", ref

    @property
    def total_cpu(self) -> float:
        return sum(c.cpu for c in self.containers)

    @property
    def total_memory_gb(self) -> float:
        return sum(c.memory_gb for c in self.containers)

    @property
    def is_array(self) -> bool:
        return self.tasks is not None

    @property
    def workspace_volume(self) -> str | None:
        return next((n for n, v in self.volumes.items() if isinstance(v, WorkspaceVolume)), None)

    def canonical(self) -> dict[str, Any]:
        """The spec as plain JSON data, by alias; inline secret values are replaced by a marker."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def spec_hash(self) -> str:
        """A stable hash of what the job runs; the id is excluded so equal specs hash equal under any id."""
        data = self.canonical()
        data.pop("id", None)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def number_text(value: float) -> str:
    return f"{value:g}"

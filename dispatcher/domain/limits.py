"""The rules of a job spec that span fields: ACI's group-wide limits, unique names, declared volumes, dependencies.
Pure."""

from __future__ import annotations

from dispatcher.domain.errors import FieldError
from dispatcher.domain.naming import GROUP_NAME_MAX
from dispatcher.domain.spec import (
    MAX_CONTAINERS,
    MAX_GROUP_CPU,
    MAX_GROUP_MEMORY_GB,
    MAX_VOLUMES,
    JobSpec,
    WorkspaceVolume,
    number_text,
)
from dispatcher.domain.tasks import GROUP_SUFFIX_MAX, FixedPacking

ARRAY_ID_MAX = GROUP_NAME_MAX - GROUP_SUFFIX_MAX
"""An array job's groups are named ``{id}-g{sequence}``, within ARM's 63 characters."""


def check_limits(spec: JobSpec) -> list[FieldError]:
    """The rules that span fields: ACI's group-wide limits, unique names, declared volumes."""
    errors: list[FieldError] = []
    add = errors.append

    if not spec.containers:
        add(FieldError("containers", "a job needs at least one container (or the top-level image shorthand)"))
    total = len(spec.containers) + len(spec.init_containers)
    if total > MAX_CONTAINERS:
        add(
            FieldError("containers", f"{total} containers is more than the {MAX_CONTAINERS} a container group may hold")
        )
    if len(spec.volumes) > MAX_VOLUMES:
        add(FieldError("volumes", f"{len(spec.volumes)} volumes is more than the {MAX_VOLUMES} a group may mount"))
    if spec.total_cpu > MAX_GROUP_CPU + 1e-9:
        add(
            FieldError(
                "containers",
                f"the containers request {number_text(spec.total_cpu)} vCPU in total; "
                "a Linux group may request at most 4",
            )
        )
    if spec.total_memory_gb > MAX_GROUP_MEMORY_GB + 1e-9:
        add(
            FieldError(
                "containers",
                f"the containers request {number_text(spec.total_memory_gb)} GB in total; "
                "a Linux group may request at most 16",
            )
        )
    workspaces = [name for name, v in spec.volumes.items() if isinstance(v, WorkspaceVolume)]
    if len(workspaces) > 1:
        add(FieldError("volumes", f"a job has at most one workspace volume, not {len(workspaces)}"))

    waited: set[str] = set()
    for i, dependency in enumerate(spec.depends_on):
        if dependency.job == spec.id:
            add(FieldError(f"dependsOn[{i}]", "a job cannot depend on itself"))
        elif dependency.job in waited:
            add(FieldError(f"dependsOn[{i}]", f"{dependency.job!r} is already a dependency"))
        waited.add(dependency.job)

    errors += _array_limits(spec)

    seen_names: dict[str, str] = {}
    for path, c in spec.all_containers():
        if c.name in seen_names:
            add(FieldError(f"{path}.name", f"{c.name!r} is already the name of {seen_names[c.name]}"))
        seen_names.setdefault(c.name, path)
        for name in sorted(set(c.env) & set(c.secret_env)):
            add(FieldError(f"{path}.secretEnv.{name}", f"{name!r} is also set in env; set it in one place"))
        paths: set[str] = set()
        for j, m in enumerate(c.mounts):
            where = f"{path}.mounts[{j}]"
            if m.volume not in spec.volumes:
                add(FieldError(f"{where}.volume", f"{m.volume!r} is not declared under volumes"))
            if m.path.rstrip("/") in paths:
                add(FieldError(f"{where}.path", f"{m.path!r} is already a mount path of this container"))
            paths.add(m.path.rstrip("/"))
    return errors


def _array_limits(spec: JobSpec) -> list[FieldError]:
    """An array job runs one container per task, and a group of its tasks must fit ACI's group limits."""
    tasks = spec.tasks
    if tasks is None:
        return []
    errors: list[FieldError] = []
    add = errors.append
    if len(spec.containers) != 1:
        add(FieldError("containers", "an array job runs one container per task: give exactly one (or the shorthand)"))
    if spec.restart_policy != "Never":
        add(FieldError("restartPolicy", "an array job's tasks are retried by the dispatcher; use Never"))
    if spec.id is not None and len(spec.id) > ARRAY_ID_MAX:
        add(FieldError("id", f"an array job's id has at most {ARRAY_ID_MAX} characters, to name its groups"))
    if isinstance(tasks.packing, FixedPacking) and spec.containers:
        size = tasks.packing.tasks_per_group
        room = MAX_CONTAINERS - len(spec.init_containers)
        main = spec.containers[0]
        if size > room:
            add(
                FieldError(
                    "tasks.packing.tasksPerGroup", f"{size} tasks is more than the {room} containers a group holds"
                )
            )
        elif size * main.cpu > MAX_GROUP_CPU + 1e-9 or size * main.memory_gb > MAX_GROUP_MEMORY_GB + 1e-9:
            add(
                FieldError(
                    "tasks.packing.tasksPerGroup",
                    f"{size} tasks of {number_text(main.cpu)} vCPU and {number_text(main.memory_gb)} GB do not fit one "
                    "group's 4 vCPU and 16 GB",
                )
            )
    return errors

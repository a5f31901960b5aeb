"""The ACI operations themselves, free of HTTP: validate, apply quotas, deploy, read and delete groups."""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.aci.clock import ScaledClock, iso, iso_nanos
from devstack.aci.config import AciConfig, normalise_region
from devstack.aci.errors import ArmError, not_found
from devstack.aci.faults import FaultInjector
from devstack.aci.processes import ProcessGroup
from devstack.aci.quota import RateWindows, RegionUsage, TokenBuckets, check_capacity
from devstack.aci.registry import GroupRecord, Operation, Registry, group_key
from devstack.aci.runtime import GroupRuntime
from devstack.aci.sandbox import SandboxUnavailable, find_bwrap
from devstack.aci.shapes import render_group
from devstack.aci.simulation import SimulatedGroup
from devstack.aci.spec import GroupSpec, parse_group
from devstack.aci.state import GroupView, ProvisioningFailure
from devstack.aci.validation import validate_container_group

API_VERSION = "2023-05-01"
SUPPORTED_API_VERSIONS = ("2021-10-01", "2023-05-01")
"""The versions whose shapes the emulator serves: 2023-05-01, which the SDK uses, and 2021-10-01, whose official
examples it replays. ARM refuses the others."""
PROVIDER = "Microsoft.ContainerInstance"


@dataclass(frozen=True)
class ArmResponse:
    """An answer to send: status, JSON body (or none) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class AciService:
    """Container group operations over a :class:`Registry`, with quotas, faults and emulated time."""

    def __init__(self, config: AciConfig) -> None:
        self.config = config
        self.clock = ScaledClock(config.time_scale)
        self.registry = Registry()
        self.faults = FaultInjector()
        self.buckets = TokenBuckets(config.throttle)
        self.rates = RateWindows()
        self._rng = random.Random(config.simulation.seed)
        self._rng_lock = threading.Lock()
        self._groups_dir = config.state_dir / "groups"

    # --- helpers ---------------------------------------------------------------------------------

    def _retry_after(self) -> str:
        seconds = self.config.lro_retry_after_seconds
        return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"

    def _operation_url(self, base_url: str, operation: Operation) -> str:
        return (
            f"{base_url}/subscriptions/{operation.subscription}/providers/{PROVIDER}/locations/{operation.region}"
            f"/operations/{operation.id}?api-version={API_VERSION}"
        )

    def _lro_headers(self, base_url: str, operation: Operation) -> dict[str, str]:
        return {
            "Azure-AsyncOperation": self._operation_url(base_url, operation),
            "Retry-After": self._retry_after(),
        }

    def _record(self, subscription: str, resource_group: str, name: str) -> GroupRecord:
        record = self.registry.get(group_key(subscription, resource_group, name))
        if record is None:
            raise not_found(resource_group, name)
        return record

    def region_usage(self, subscription: str, region: str) -> RegionUsage:
        """Groups in ``region`` and the cores of those not stopped."""
        groups, cores = self.registry.region_usage(subscription, region)
        return RegionUsage(container_groups=groups, cores=math.ceil(cores))

    def _mount_failure(self, spec: GroupSpec) -> ProvisioningFailure | None:
        """Run mode mounts shares from ``files_root/account/share``: missing shares or wrong keys fail."""
        accounts = self.config.storage_accounts
        for volume in spec.volumes.values():
            share = volume.azure_file
            if share is None:
                continue
            if accounts and share.account not in accounts:
                return ProvisioningFailure(
                    "mount",
                    f"Output: mount error: could not resolve address for {share.account}.file.core.windows.net: "
                    "Unknown error",
                )
            if accounts and share.key != accounts[share.account]:
                return ProvisioningFailure(
                    "mount",
                    "Output: mount error(13): Permission denied\nRefer to the mount.cifs(8) manual page "
                    "(e.g. man mount.cifs) and kernel log messages (dmesg)",
                )
            if not (self.config.files_root / share.account / share.share).is_dir():
                return ProvisioningFailure(
                    "mount",
                    "Output: mount error(2): No such file or directory\nRefer to the mount.cifs(8) manual page "
                    "(e.g. man mount.cifs) and kernel log messages (dmesg)",
                )
        return None

    def _planned_failure(self, spec: GroupSpec, region: str) -> ProvisioningFailure | None:
        injected = self.faults.take_provisioning_failure(spec.name)
        rate = self.config.faults_for(region).image_pull_failure_rate
        with self._rng_lock:
            random_pull_failure = rate > 0 and self._rng.random() < rate
        if injected is None and random_pull_failure:
            injected = ProvisioningFailure("image_pull", "")
        if injected is not None:
            image = spec.containers[0].image
            if injected.kind == "image_pull" and not injected.message:
                message = (
                    f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack '
                    f'image "{image}": failed to resolve reference "{image}": not found'
                )
                return ProvisioningFailure("image_pull", message, spec.containers[0].name)
            if injected.kind == "mount" and not injected.message:
                return ProvisioningFailure(
                    "mount",
                    "Output: mount error(13): Permission denied\nRefer to the mount.cifs(8) manual page "
                    "(e.g. man mount.cifs) and kernel log messages (dmesg)",
                )
            return injected
        if self.config.mode == "run":
            return self._mount_failure(spec)
        return None

    def _runtime(
        self, record_key: tuple[str, str, str], spec: GroupSpec, failure: ProvisioningFailure | None
    ) -> GroupRuntime:
        now = self.clock.now()
        if self.config.mode == "simulate":
            with self._rng_lock:
                seed = self._rng.random()
            return SimulatedGroup(spec, self.config.simulation, random.Random(seed), now, failure)
        try:
            bwrap = find_bwrap()
        except SandboxUnavailable as error:
            raise ArmError(400, "DevstackSandboxUnavailable", str(error)) from error
        workdir = Path(self._groups_dir, *record_key, f"{now:.6f}")
        group = ProcessGroup(
            spec,
            bwrap=bwrap,
            workdir=workdir,
            files_root=self.config.files_root,
            clock=self.clock.now,
            failure=failure,
            restart_backoff=self.clock.real_seconds(self.config.restart_backoff_seconds),
            restart_backoff_cap=self.clock.real_seconds(300.0),
        )
        group.launch()
        return group

    # --- operations ------------------------------------------------------------------------------

    def create_or_update(
        self, subscription: str, resource_group: str, name: str, body: Any, base_url: str
    ) -> ArmResponse:
        """PUT: 201 for a new group, 200 for an existing one, both with an ``Azure-AsyncOperation`` header."""
        validate_container_group(name, body)
        spec = parse_group(name, body)
        region = normalise_region(spec.location)
        key = group_key(subscription, resource_group, name)
        now = self.clock.now()
        with self.registry.lock:
            existing = self.registry.get(key)
            if existing is not None and existing.region != region:
                raise ArmError(
                    409,
                    "InvalidResourceLocation",
                    f"The resource '{name}' already exists in location '{existing.region}' in resource group "
                    f"'{resource_group}'. A resource with the same name cannot be created in location '{region}'. "
                    "Please select a new resource name.",
                )
            if existing is not None and existing.body == body:
                # An identical PUT is not a no-op: ACI restarts the group's containers in place.
                existing.runtime.restart(now)
                self.registry.set_stopped(existing, False)
                operation = Operation(subscription, region, "create", key, existing.uid, now, now)
                self.registry.add_operation(operation)
                view = existing.runtime.view(now)
                shaped = render_group(
                    subscription, resource_group, name, body, view, with_instance_view=False, answering_put=True
                )
                return ArmResponse(200, shaped, self._lro_headers(base_url, operation))
            if self.config.faults_for(region).capacity_unavailable:
                raise ArmError(
                    409,
                    "ServiceUnavailable",
                    f"The requested resource is not available in the location '{region}' at this moment. Please "
                    f"retry with a different resource request or in another location. Resource requested: "
                    f"'{spec.cpu:g}' CPU '{sum(c.memory_in_gb for c in spec.containers):g}' GB memory "
                    f"'{body['properties']['osType']}' OS",
                )
            if existing is None:
                limits = self.config.quota_for(region)
                check_capacity(region, limits, self.region_usage(subscription, region), spec.cpu)
                self.rates.admit(subscription, region, "creates", limits, now)
            failure = self._planned_failure(spec, region)
            runtime = self._runtime(key, spec, failure)
            if existing is not None:
                existing.runtime.terminate()
            record = GroupRecord(subscription, resource_group, name, body, spec, runtime, now, region)
            self.registry.put(record)
            operation = Operation(subscription, region, "create", key, record.uid, now, now + self.faults.lro_delay)
            self.registry.add_operation(operation)
        # The answer describes the deployment just accepted; its progress is read through the operation or GET.
        accepted = GroupView(provisioning_state=self._put_answer(), state="Pending")
        shaped = render_group(
            subscription, resource_group, name, body, accepted, with_instance_view=False, answering_put=True
        )
        return ArmResponse(201 if existing is None else 200, shaped, self._lro_headers(base_url, operation))

    def _put_answer(self) -> str:
        states, weights = zip(*self.config.put_answers.items(), strict=True)
        with self._rng_lock:
            return self._rng.choices(states, weights)[0]

    def update_tags(self, subscription: str, resource_group: str, name: str, body: Any) -> ArmResponse:
        """PATCH: replace the group's tags (the only property ``ContainerGroups_Update`` changes); 200."""
        if not isinstance(body, dict) or not isinstance(body.get("tags", {}), dict):
            raise ArmError(400, "InvalidRequestContent", "The request content must be an object with 'tags'.")
        tags = body.get("tags") or {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise ArmError(400, "InvalidRequestContent", "Tag names and values must be strings. Path 'tags'.")
        with self.registry.lock:
            record = self._record(subscription, resource_group, name)
            record.body = {**record.body, "tags": dict(tags)}
        view = record.runtime.view(self.clock.now())
        return ArmResponse(
            200, render_group(subscription, resource_group, name, record.body, view, with_instance_view=False)
        )

    def outbound_dependencies(self, subscription: str, resource_group: str, name: str) -> ArmResponse:
        """GET outboundNetworkDependenciesEndpoints: the swagger says the list is always empty."""
        self._record(subscription, resource_group, name)
        return ArmResponse(200, [])

    def location_of(self, subscription: str, resource_group: str, name: str) -> str | None:
        """Where an existing group is, for the errors ARM gives by location; ``None`` for an absent one."""
        record = self.registry.get(group_key(subscription, resource_group, name))
        return record.region if record is not None else None

    def get(self, subscription: str, resource_group: str, name: str) -> ArmResponse:
        """GET: the group with its full instance view."""
        record = self._record(subscription, resource_group, name)
        view = record.runtime.view(self.clock.now())
        return ArmResponse(
            200, render_group(subscription, resource_group, name, record.body, view, with_instance_view=True)
        )

    def list(self, subscription: str, resource_group: str | None, skip: int, base_url: str, path: str) -> ArmResponse:
        """GET list (by subscription or resource group): pages of groups without instance views."""
        now = self.clock.now()
        records = [
            r
            for r in self.registry.groups()
            if r.subscription.lower() == subscription.lower()
            and (resource_group is None or r.resource_group.lower() == resource_group.lower())
        ]
        page = records[skip : skip + self.config.page_size]
        body: dict[str, Any] = {
            "value": [
                render_group(
                    r.subscription, r.resource_group, r.name, r.body, r.runtime.view(now), with_instance_view=False
                )
                for r in page
            ]
        }
        if skip + len(page) < len(records):
            body["nextLink"] = f"{base_url}{path}?api-version={API_VERSION}&$skipToken={skip + len(page)}"
        return ArmResponse(200, body)

    def delete(self, subscription: str, resource_group: str, name: str, base_url: str) -> ArmResponse:
        """DELETE: 202 and a long-running operation, or 204 when the group does not exist."""
        key = group_key(subscription, resource_group, name)
        now = self.clock.now()
        with self.registry.lock:
            record = self.registry.get(key)
            if record is None:
                return ArmResponse(204)
            self.rates.admit(subscription, record.region, "deletes", self.config.quota_for(record.region), now)
            self.registry.remove(key)
        record.runtime.terminate()
        operation = Operation(subscription, record.region, "delete", key, record.uid, now, now + self.faults.lro_delay)
        self.registry.add_operation(operation)
        return ArmResponse(202, None, self._lro_headers(base_url, operation))

    def stop(self, subscription: str, resource_group: str, name: str) -> ArmResponse:
        """POST stop: kill the containers; 204."""
        record = self._record(subscription, resource_group, name)
        record.runtime.stop(self.clock.now())
        self.registry.set_stopped(record, True)
        return ArmResponse(204)

    def start(self, subscription: str, resource_group: str, name: str, base_url: str) -> ArmResponse:
        """POST start: deploy a stopped group again; 202 and a long-running operation."""
        record = self._record(subscription, resource_group, name)
        now = self.clock.now()
        record.runtime.start(now)
        self.registry.set_stopped(record, False)
        operation = Operation(
            subscription, record.region, "start", record_key(record), record.uid, now, now + self.faults.lro_delay
        )
        self.registry.add_operation(operation)
        return ArmResponse(202, None, self._lro_headers(base_url, operation))

    def restart(self, subscription: str, resource_group: str, name: str) -> ArmResponse:
        """POST restart: restart every container in place; 204."""
        record = self._record(subscription, resource_group, name)
        record.runtime.restart(self.clock.now())
        self.registry.set_stopped(record, False)
        return ArmResponse(204)

    def logs(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        container: str,
        *,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> ArmResponse:
        """GET logs: the container's output, optionally only the last ``tail`` lines and with timestamps."""
        record = self._record(subscription, resource_group, name)
        known = {c.name for c in (*record.spec.containers, *record.spec.init_containers)}
        if container not in known:
            raise ArmError(
                404, "ContainerNotFound", f"The container '{container}' is not found in container group '{name}'."
            )
        lines = record.runtime.logs(container, self.clock.now())
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        if timestamps:
            content = "".join(f"{iso_nanos(moment)} {text}" for moment, text in lines)
        else:
            content = "".join(text for _, text in lines)
        return ArmResponse(200, {"content": content})

    def usage(self, subscription: str, location: str) -> ArmResponse:
        """GET usages: current values against the region's quota."""
        region = normalise_region(location)
        limits = self.config.quota_for(region)
        usage = self.region_usage(subscription, region)
        now = self.clock.now()
        creates_5, creates_hour = self.rates.usage(subscription, region, "creates", now)
        deletes_5, deletes_hour = self.rates.usage(subscription, region, "deletes", now)
        rows = [
            ("ContainerGroups", "Container Groups", usage.container_groups, limits.container_groups),
            ("StandardCores", "Standard Cores", usage.cores, limits.cores),
            (
                "ContainerGroupCreatesPerFiveMinutes",
                "Container Group Creates per 5 minutes",
                creates_5,
                limits.creates_per_5_minutes,
            ),
            ("ContainerGroupCreatesPerHour", "Container Group Creates per hour", creates_hour, limits.creates_per_hour),
            (
                "ContainerGroupDeletesPerFiveMinutes",
                "Container Group Deletes per 5 minutes",
                deletes_5,
                limits.deletes_per_5_minutes,
            ),
            ("ContainerGroupDeletesPerHour", "Container Group Deletes per hour", deletes_hour, limits.deletes_per_hour),
        ]
        value = [
            {
                "id": f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{region}/usages/{key}",
                "unit": "Count",
                "currentValue": current,
                "limit": limit,
                "name": {"value": key, "localizedValue": label},
            }
            for key, label, current, limit in rows
        ]
        return ArmResponse(200, {"value": value})

    def operation_status(self, subscription: str, location: str, operation_id: str) -> ArmResponse:
        """GET on an ``Azure-AsyncOperation`` URL: InProgress, Succeeded, Failed or Canceled."""
        operation = self.registry.operation(operation_id)
        if operation is None or operation.subscription.lower() != subscription.lower():
            raise ArmError(404, "OperationNotFound", f"The operation '{operation_id}' could not be found.")
        now = self.clock.now()
        body: dict[str, Any] = {
            "id": f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/operations/{operation.id}",
            "name": operation.id,
            "startTime": iso(operation.started_at),
        }
        status, error = self._operation_outcome(operation, now)
        body["status"] = status
        if status != "InProgress":
            body["endTime"] = iso(now)
        if error is not None:
            body["error"] = {"code": error[0], "message": error[1]}
        headers = {"Retry-After": self._retry_after()} if status == "InProgress" else {}
        return ArmResponse(200, body, headers)

    def _operation_outcome(self, operation: Operation, now: float) -> tuple[str, tuple[str, str] | None]:
        if now < operation.ready_at:
            return "InProgress", None
        if operation.kind == "delete":
            return "Succeeded", None
        record = self.registry.get(operation.group)
        if record is None or record.uid != operation.group_uid:
            return "Canceled", ("Canceled", "The container group was deleted or replaced before it was provisioned.")
        view = record.runtime.view(now)
        if view.provisioning_state == "Succeeded":
            return "Succeeded", None
        if view.provisioning_state == "Failed":
            return "Failed", view.failure or ("DeploymentFailed", "The container group failed to provision.")
        return "InProgress", None

    # --- out of band -----------------------------------------------------------------------------

    def vanish(self, name: str, resource_group: str | None = None) -> int:
        """Delete groups called ``name`` behind the client's back (no quota, no LRO); returns how many."""
        removed = 0
        for record in list(self.registry.find(name, resource_group)):
            if self.registry.remove(record_key(record)) is not None:
                record.runtime.terminate()
                removed += 1
        return removed

    def evict(self, name: str, resource_group: str | None = None) -> int:
        """Evict Spot groups called ``name``: ACI restarts an evicted Spot group by itself (its docs say no more), so
        every container runs again from the start and its restart count grows. Returns how many were evicted;
        a Regular group is never evicted."""
        evicted = 0
        for record in list(self.registry.find(name, resource_group)):
            if (record.body.get("properties") or {}).get("priority") == "Spot" and not record.stopped:
                record.runtime.restart(self.clock.now())
                evicted += 1
        return evicted

    def shutdown(self) -> None:
        """Terminate every group's runtime (kills every process)."""
        for record in self.registry.clear():
            record.runtime.terminate()


def record_key(record: GroupRecord) -> tuple[str, str, str]:
    """The registry key of ``record``."""
    return group_key(record.subscription, record.resource_group, record.name)

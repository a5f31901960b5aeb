"""Every setting the dispatcher reads, in one place, from ``DISPATCHER_*`` environment variables.

Lists and maps are given as JSON, e.g. ``DISPATCHER_ALLOWED_SHARES='["datasets"]'``.

Functions binding expressions and connections are app settings too, read by the Functions host rather
than by this class; they are documented here so that one file names them all:

- ``%DISPATCHER_JOBS_QUEUE%``: the Service Bus queue the intake trigger listens on.
- ``ServiceBusConnection``: the Service Bus connection; in Azure identity-based, as
  ``ServiceBusConnection__fullyQualifiedNamespace`` (plus ``__credential`` and ``__clientId``).
- ``AzureWebJobsStorage``: the Functions host's own storage, identity-based in Azure as
  ``AzureWebJobsStorage__accountName`` (plus ``__credential`` and ``__clientId``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict


class RegistryCredential(BaseModel):
    """How ACI pulls from one private registry: a managed identity (ACR), or a username and password secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server: str = Field(description="Registry host, e.g. myregistry.azurecr.io.")
    identity: str | None = Field(default=None, description="Resource id of a user-assigned identity with AcrPull.")
    username: str | None = None
    password_secret: str | None = Field(default=None, description="Name of the secret holding the password.")


class ContainerLogs(BaseModel):
    """Where a pool's container groups send their containers' output, besides the dispatcher's own harvest: a Log
    Analytics workspace, through ACI's ``diagnostics.logAnalytics`` (the workspace key resolved at each launch from
    the dispatcher's vault, like every key a group needs)."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    workspace_id: str = Field(min_length=1, description="The workspace's id (its customer id, a GUID).")
    key_secret: str = Field(min_length=1, description="The dispatcher's vault secret holding the workspace key.")
    workspace_resource_id: str | None = Field(default=None, description="The workspace's ARM id.")
    log_type: Literal["ContainerInstanceLogs", "ContainerInsights"] = Field(
        default="ContainerInstanceLogs",
        description="The tables the logs land in (ContainerInstanceLog_CL or ContainerLog).",
    )


class Pool(BaseModel):
    """A capacity pool: one resource group in one region of one subscription, with ACI's quota as limits."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    subscription_id: str
    resource_group: str
    location: str
    max_groups: int = Field(default=100, ge=0, description="Concurrent container groups (ACI default 100).")
    max_cores: float = Field(default=100, ge=0, description="Concurrent cores (ACI default 100).")
    creates_per_5min: int = Field(
        default=100, ge=0, alias="createsPer5Min", description="Group creates per 5 minutes (ACI default 100)."
    )
    creates_per_hour: int = Field(default=300, ge=0, description="Group creates per hour (ACI default 300).")
    pace_deletes: Literal["hour", "both", "off"] = Field(
        default="hour",
        description="Which of ACI's delete windows (the same sizes as the create windows) creates are paced to: a "
        "create is admitted only while the deletes the pool's groups will need fit the window even if every group "
        "ended now, so no finished group waits on it. 'hour' (the default) paces to the hourly window, the one that "
        "fills at a steady rate; 'both' to the 5-minute window too, which with the pool full holds every freed "
        "slot for 5 minutes; 'off' not at all. Throughput cost: docs/benchmark.md, finding 16.",
    )
    spot: bool = Field(default=True, description="Whether Spot jobs may run here.")
    weight: float = Field(default=1.0, gt=0, description="Relative share of placements when several pools fit.")
    group_cores: float = Field(default=4.0, gt=0, description="Most vCPU one container group may request here.")
    group_memory_gb: float = Field(
        default=16.0, gt=0, alias="groupMemoryGB", description="Most GB one container group may request here."
    )
    container_logs: ContainerLogs | None = Field(
        default=None, description="A Log Analytics workspace the pool's groups also send container output to."
    )


class Prices(BaseModel):
    """ACI prices per second, for cost estimates (pay-as-you-go Linux list prices by default)."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    currency: str = "USD"
    vcpu_second: float = Field(default=0.0000135, ge=0)
    gb_second: float = Field(default=0.0000015, ge=0)
    spot_discount: float = Field(default=0.7, ge=0, le=1, description="Fraction taken off for Spot.")


ARM_READ_BURST = 250
ARM_READS_PER_SECOND = 25
"""ARM's read throttling for a subscription in a region: a bucket of 250 requests, refilled at 25 per second
(learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling)."""
ROLES = ("Jobs.Read", "Jobs.Submit", "Jobs.Admin", "Schedules.Manage")
"""The API's app roles: read its team's jobs; submit, cancel and re-run them; everything of every team; and
manage schedules."""


class Team(BaseModel):
    """A team: who is in it (Entra group object ids), what it may use at once, its share, and the managed
    identities its jobs may run as."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    groups: list[str] = Field(default_factory=list, description="Entra group object ids whose members are the team.")
    max_cores: float | None = Field(default=None, ge=0, description="Most cores the team's jobs hold at once.")
    max_groups: int | None = Field(default=None, ge=0, description="Most container groups the team holds at once.")
    weight: float = Field(default=1.0, gt=0, description="The team's relative share when teams compete.")
    identities: dict[str, str] = Field(
        default_factory=dict,
        description="Names a spec's `identity` may give, each a user-assigned managed identity's resource id.",
    )


class KeyCaller(BaseModel):
    """Who a request authorized by a function key acts as: automation has no token, so the operator names it."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    name: str = Field(default="function key", min_length=1)
    team: str | None = Field(default=None, description="The team its jobs count against; none for an admin.")
    roles: list[str] = Field(default_factory=lambda: ["Jobs.Admin", "Schedules.Manage"])


class DispatcherSettings(BaseSettings):
    """The dispatcher's settings; operator policy among them."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", extra="ignore", frozen=True)

    instance: str = Field(
        default="default", description="This dispatcher's name; tagged on every group it creates, to find orphans."
    )

    # Operator policy.
    allowed_registries: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Registries (mcr.microsoft.com) or image prefixes (myacr.azurecr.io/team/) jobs may use; * = any.",
    )
    allowed_shares: list[str] = Field(
        default_factory=list, description="Azure Files shares jobs may mount, as share or account/share."
    )
    max_cpu: float = Field(default=4.0, gt=0, description="Most vCPU one job may request.")
    max_memory_gb: float = Field(default=16.0, gt=0, description="Most memory one job may request, in GB.")
    max_tasks: int = Field(default=10_000, gt=0, description="Most tasks one array job may have.")
    max_timeout_seconds: int = Field(default=86400, gt=0, description="Longest timeout a job may ask for.")
    default_timeout_seconds: int = Field(default=3600, gt=0, description="Timeout of a job that names none.")
    allow_inline_secrets: bool = Field(default=False, description="Whether specs may carry secret values inline.")
    secret_names: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Job-secrets vault names every job may reference: exact names, or prefixes ending in '*'.",
    )
    secret_names_by_label: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description='More names a job may reference by one of its labels, e.g. {"team": {"ml": ["ml-*"]}}: '
        "a job labelled team=ml may also reference ml-*.",
    )

    # Sign-in and tenancy.
    auth_tenant_id: str = Field(default="", description="The Entra tenant whose tokens the API accepts.")
    auth_audience: str = Field(
        default="", description="The API app registration's client id: the audience of its tokens; empty = no tokens."
    )
    auth_authority: str = Field(
        default="",
        description="The token issuer, e.g. https://login.microsoftonline.com/{tenant}/v2.0 (the default for the "
        "cloud); its OpenID configuration names the signing keys.",
    )
    auth_scope: str = Field(
        default="",
        description="The permission the dashboard asks a token for, as Entra names it in its answer (so that MSAL "
        "finds the token in its cache): empty = api://{audience}/access_as_user.",
    )
    function_keys: bool = Field(
        default=True, description="Whether the keyed routes (/api/keyed/..., a function key each) are served."
    )
    key_caller: KeyCaller = Field(default_factory=KeyCaller, description="Who a function-key caller acts as.")
    teams: dict[str, Team] = Field(default_factory=dict, description="Teams by name, as a JSON object.")
    queue_teams: dict[str, str] = Field(
        default_factory=dict,
        description="The team each Service Bus queue's submissions count against: whoever may send there is it.",
    )

    # What the mapping to a container group needs.
    storage_account: str = Field(default="", description="Storage account of workspaces and of shares by default.")
    storage_account_key_secret: str = Field(
        default="storage-account-key",
        description="Secret holding the storage account key; ACI's azureFile volumes need an account key.",
    )
    share_accounts: dict[str, str] = Field(
        default_factory=dict, description="Other storage accounts jobs may mount shares from: account → key secret."
    )
    job_identity: str | None = Field(
        default=None, description="Resource id of a user-assigned identity given to every job's group."
    )
    subnet_ids: list[str] = Field(default_factory=list, description="Subnets to inject job groups into.")
    registry_credentials: list[RegistryCredential] = Field(default_factory=list)

    # Capacity.
    pools: list[Pool] = Field(default_factory=list, description="Capacity pools, as a JSON list.")
    saturation_cooldown_seconds: float = Field(
        default=60, ge=0, description="How long a pool that answered ContainerGroupQuotaReached is skipped."
    )

    # How to reach Azure. In Azure: a managed identity and the default endpoints. Locally: the devstack
    # emulators' endpoints and its fixed development token (credential = devstack).
    credential: Literal["azure", "devstack"] = Field(
        default="azure", description="azure: DefaultAzureCredential; devstack: the emulators' fixed token."
    )
    cloud: Literal["AzureCloud", "AzureUSGovernment", "AzureChinaCloud"] = Field(
        default="AzureCloud", description="The Azure cloud: the exact hosts a real credential may be sent to."
    )
    data_account: str = Field(
        default="",
        description="Storage account of job records (Table) and logs (Blob); the workspaces' account if empty.",
    )
    arm_endpoint: str = Field(default="https://management.azure.com", description="Azure Resource Manager.")
    keyvault_url: str = Field(
        default="", description="The dispatcher's own Key Vault: storage account keys, registry passwords."
    )
    job_secrets_vault_url: str = Field(
        default="", description="The Key Vault of the secrets jobs reference, where inline values are stored too."
    )
    table_endpoint: str = Field(default="", description="Table service URL of the job store's account.")
    blob_endpoint: str = Field(default="", description="Blob service URL of the logs' account.")
    file_endpoint: str = Field(default="", description="File service URL of the workspaces' account.")
    storage_connection_string: str = Field(
        default="", description="Account-key connection string for table, blob and file; devstack only."
    )
    clock_file: str = Field(
        default="", description="devstack only: a file of seconds added to the dispatcher's clock, for tests."
    )
    tls_ca_bundle: str = Field(default="", description="Extra CA bundle to trust; devstack's local CA only.")
    servicebus_namespace: str = Field(
        default="",
        validation_alias=AliasChoices(
            "ServiceBusConnection__fullyQualifiedNamespace", "DISPATCHER_SERVICEBUS_NAMESPACE"
        ),
        description="Service Bus namespace, shared with the trigger's identity-based connection.",
    )
    servicebus_connection_string: str = Field(
        default="",
        validation_alias=AliasChoices("ServiceBusConnection", "DISPATCHER_SERVICEBUS_CONNECTION_STRING"),
        description="Service Bus connection string; devstack only (the emulator's).",
    )
    telemetry_connection_string: str = Field(
        default="",
        validation_alias=AliasChoices("APPLICATIONINSIGHTS_CONNECTION_STRING"),
        description="Where the Functions worker sends telemetry; read here only to check its endpoints are Azure's.",
    )

    # Names of the dispatcher's own resources.
    jobs_queue: str = Field(
        default="jobs", description="Service Bus queue of submitted jobs (%DISPATCHER_JOBS_QUEUE%)."
    )
    events_topic: str = Field(default="job-events", description="Service Bus topic of lifecycle events.")
    jobs_table: str = Field(default="jobs", description="Table of job records and their indexes.")
    logs_container: str = Field(default="job-logs", description="Blob container of harvested logs.")

    intake_retry_seconds: float = Field(
        default=300,
        ge=0,
        description="How long one delivery of a submission retries a transient storage or Key Vault error, with "
        "backoff, before it gives the message back; the host renews the message's lock meanwhile "
        "(maxAutoLockRenewalDuration in host.json must be longer).",
    )

    # Reconciler.
    reconcile_schedule: str = Field(
        default="0 * * * * *",
        description="NCRONTAB of the reconciler's timer (%DISPATCHER_RECONCILE_SCHEDULE%): how often it runs when "
        "idle; while work is active, wake-ups run it every reconcile_interval_seconds.",
    )
    wake: bool = Field(
        default=True,
        description="Whether the reconciler wakes itself while work is active (scheduled messages to wake_queue).",
    )
    wake_queue: str = Field(
        default="wake",
        description="Service Bus queue of the reconciler's wake-ups (%DISPATCHER_WAKE_QUEUE%), with duplicate "
        "detection: a scheduled message per moment, which the wake trigger turns into a run.",
    )
    reconcile_interval_seconds: float = Field(
        default=5,
        gt=0,
        le=60,
        description="Seconds between reconciler runs while groups are active, work is queued or a launch was just "
        "made: how soon an exit, a start, a freed slot or a reopened create window is seen.",
    )
    tick_budget_seconds: float = Field(default=240, gt=0, description="Work budget of one reconciler run.")
    arm_reads_per_tick: int = Field(
        default=200,
        ge=1,
        description="ARM reads per pool per reconciler run besides its list: container group gets and the log "
        "reads of ended groups, within ARM's read bucket (250, refilled at 25 per second); with more active groups, "
        "successive runs inspect them in turn, and a harvest that does not fit waits for the next run.",
    )
    upkeep_seconds: float = Field(
        default=30,
        ge=0,
        description="How often a run also does the upkeep that need not follow every change at once: recovering "
        "open intents, releasing the dependants of ended jobs, firing due schedules, folding usage, purging, "
        "counting the queue and the dead letters (the runs in between reconcile, publish and launch only).",
    )
    sweep_seconds: float = Field(
        default=10,
        gt=0,
        description="How often each running group is read while nothing points to a change in it (just created, "
        "past its timeout, asked to cancel: those are read every run): each run reads this share of the rest, "
        "reconcile_interval_seconds / sweep_seconds. The longest an exit waits to be seen.",
    )
    arm_read_share: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="The share of ARM's read budget for the subscription (a bucket of 250, refilled at 25 per "
        "second) the reconciler may spend: each run takes this share of what refills in one "
        "reconcile_interval_seconds, split between the pools of the subscription (and never more than "
        "arm_reads_per_tick per pool); the rest is left to whatever else reads there.",
    )
    orphan_grace_seconds: float = Field(default=600, ge=0, description="Age before an unowned group is deleted.")
    stuck_grace_seconds: float = Field(default=300, ge=0, description="How long a container may wait on a failure.")
    launch_grace_seconds: float = Field(
        default=60,
        ge=0,
        description="How long a new attempt may stay unconfirmed (unlaunched, or not yet listed) before a run acts.",
    )
    retention_days: int = Field(default=30, ge=1, description="Age at which terminal records and logs are purged.")
    dependency_grace_seconds: float = Field(
        default=3600,
        ge=0,
        description="How long a job waits for a dependency that has not been submitted before it fails naming it "
        "(jobs submitted together may arrive in any order).",
    )
    prices: Prices = Field(default_factory=Prices)

    @model_validator(mode="after")
    def _teams_named_are_configured(self) -> DispatcherSettings:
        """A queue or the key caller attributed to a team that is not configured would queue jobs no scheduler
        reads: refused when the settings are read."""
        named = {*self.queue_teams.values(), *([self.key_caller.team] if self.key_caller.team else [])}
        unknown = sorted(named - set(self.teams))
        if unknown:
            raise ValueError(f"queueTeams and keyCaller name teams that are not in DISPATCHER_TEAMS: {unknown}")
        return self

    def pool(self, name: str) -> Pool | None:
        """The configured pool called ``name``, or ``None``."""
        return next((p for p in self.pools if p.name == name), None)

    def reads_per_run(self, pool: Pool) -> int:
        """ARM reads one run may spend in ``pool``: :attr:`arm_read_share` of what ARM's bucket refills in one
        interval (at most the bucket), shared by the pools of its subscription, capped by :attr:`arm_reads_per_tick`."""
        refilled = min(ARM_READ_BURST, ARM_READS_PER_SECOND * self.reconcile_interval_seconds)
        sharing = sum(1 for p in self.pools if p.subscription_id == pool.subscription_id) or 1
        return max(1, min(self.arm_reads_per_tick, int(self.arm_read_share * refilled / sharing)))

    def timeout_for(self, requested: int | None) -> int:
        """The timeout a job runs with: its own, or the operator's default."""
        return requested if requested is not None else self.default_timeout_seconds

    def dispatcher_secret_names(self) -> frozenset[str]:
        """The dispatcher's own secrets (account keys, registry passwords): never a job's to reference."""
        names = {self.storage_account_key_secret, *self.share_accounts.values()}
        names.update(r.password_secret for r in self.registry_credentials if r.password_secret)
        return frozenset(names)

    def secret_names_for(self, labels: Mapping[str, str]) -> list[str]:
        """The name patterns a job with ``labels`` may reference."""
        extra = [
            p for key, by_value in self.secret_names_by_label.items() for p in by_value.get(labels.get(key, ""), [])
        ]
        return [*self.secret_names, *extra]

    def account_key_secret(self, account: str) -> str | None:
        """The secret holding ``account``'s key, or ``None`` if jobs may not mount from that account."""
        if account and account == self.storage_account:
            return self.storage_account_key_secret
        return self.share_accounts.get(account)

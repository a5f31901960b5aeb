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

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RegistryCredential(BaseModel):
    """How ACI pulls from one private registry: a managed identity (ACR), or a username and password secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server: str = Field(description="Registry host, e.g. myregistry.azurecr.io.")
    identity: str | None = Field(default=None, description="Resource id of a user-assigned identity with AcrPull.")
    username: str | None = None
    password_secret: str | None = Field(default=None, description="Name of the secret holding the password.")


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
    max_timeout_seconds: int = Field(default=86400, gt=0, description="Longest timeout a job may ask for.")
    default_timeout_seconds: int = Field(default=3600, gt=0, description="Timeout of a job that names none.")
    allow_inline_secrets: bool = Field(default=False, description="Whether specs may carry secret values inline.")

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

    def timeout_for(self, requested: int | None) -> int:
        """The timeout a job runs with: its own, or the operator's default."""
        return requested if requested is not None else self.default_timeout_seconds

    def account_key_secret(self, account: str) -> str | None:
        """The secret holding ``account``'s key, or ``None`` if jobs may not mount from that account."""
        if account and account == self.storage_account:
            return self.storage_account_key_secret
        return self.share_accounts.get(account)

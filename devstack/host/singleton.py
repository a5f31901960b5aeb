"""The host's singleton listener lock: one timer listener across every instance of an app, as Azure runs it.

The Functions host (the WebJobs SDK's ``StorageBaseDistributedLockManager`` and ``SingletonOptions``) takes a blob
lease in the ``AzureWebJobsStorage`` account before it starts a timer trigger's listener: the blob
``locks/{hostId}/Host.Functions.{name}.Listener`` in the ``azure-webjobs-hosts`` container, leased for
``ListenerLockPeriod`` (60 s) and renewed before it expires. An instance that cannot take the lease does not start
the listener and tries again every ``ListenerLockRecoveryPollingInterval`` (1 minute). An instance that dies
holding the lease stops renewing it: the lease expires and another instance's next try takes it.

This module does the same with the real ``azure-storage-blob`` lease calls (against Azurite locally); tests
shorten both periods to Azure's minimum lease of 15 s.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient

logger = logging.getLogger("devstack.host")

HOSTS_CONTAINER = "azure-webjobs-hosts"
LOCKS_DIRECTORY = "locks"
LISTENER_LOCK_SECONDS = 60.0
RECOVERY_POLL_SECONDS = 60.0
MIN_LEASE_SECONDS, MAX_LEASE_SECONDS = 15, 60


def lock_blob_name(host_id: str, function_name: str) -> str:
    return f"{LOCKS_DIRECTORY}/{host_id}/Host.Functions.{function_name}.Listener"


class ListenerLock:
    """A lease on one timer function's listener blob. ``acquire`` and ``renew`` say whether this instance holds it;
    neither raises on a lease held elsewhere (409), and a storage error counts as not holding it."""

    def __init__(
        self, connection_string: str, host_id: str, function_name: str, *, period: float = LISTENER_LOCK_SECONDS
    ) -> None:
        if not MIN_LEASE_SECONDS <= period <= MAX_LEASE_SECONDS:
            raise ValueError(f"a lease lasts {MIN_LEASE_SECONDS} to {MAX_LEASE_SECONDS} s, not {period:g}")
        self.period = period
        self.name = lock_blob_name(host_id, function_name)
        self.instance = uuid.uuid4().hex
        self._service = BlobServiceClient.from_connection_string(connection_string)
        self._blob: BlobClient = self._service.get_blob_client(HOSTS_CONTAINER, self.name)
        self._lease = BlobLeaseClient(self._blob, lease_id=str(uuid.uuid4()))
        self.held = False
        self._renewed = 0.0

    def acquire(self) -> bool:
        try:
            self._take()
        except ResourceNotFoundError:
            self._create()
            try:
                self._take()
            except ResourceExistsError:
                return self._lost("held by another instance")
            except HttpResponseError as error:
                return self._lost(f"storage error {error.status_code}")
        except ResourceExistsError:
            return self._lost("held by another instance")
        except HttpResponseError as error:
            return self._lost(f"storage error {error.status_code}")
        self.held = True
        self._renewed = time.monotonic()
        return True

    def _take(self) -> None:
        self._lease.acquire(lease_duration=int(self.period))
        self._blob.set_blob_metadata({"FunctionInstance": self.instance}, lease=self._lease)

    def _create(self) -> None:
        container = self._service.get_container_client(HOSTS_CONTAINER)
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        with contextlib.suppress(ResourceExistsError):  # another instance made it, or it is leased
            self._blob.upload_blob(b"", overwrite=False)

    def renew(self) -> bool:
        """Renew the lease. A server error keeps it for as long as its last renewal lasts (the next try is sooner);
        any other failure (409: another instance took it) loses it."""
        if not self.held:
            return False
        try:
            self._lease.renew()
        except HttpResponseError as error:
            if (error.status_code or 0) >= 500 and time.monotonic() - self._renewed < self.period:
                logger.warning("renewing the listener lock %s failed with %s", self.name, error.status_code)
                return True
            return self._lost(f"renewal failed with {error.status_code}")
        self._renewed = time.monotonic()
        return True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            self._lease.release()
        except HttpResponseError:  # expired or taken already: nothing of ours to release
            return

    def close(self) -> None:
        self._service.close()

    def _lost(self, why: str) -> bool:
        if self.held:
            logger.warning("lost the listener lock %s: %s", self.name, why)
        self.held = False
        return False

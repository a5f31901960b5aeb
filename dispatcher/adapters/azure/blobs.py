"""Harvested logs in Blob storage through ``azure-storage-blob``: the LogStore port."""

from __future__ import annotations

import contextlib

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from dispatcher.adapters.azure.errors import translated


class BlobLogStore:
    """Full container logs as text blobs in one container (``job-logs``), created on first use."""

    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._container = service.get_container_client(container)
        self._ready = False

    def put(self, path: str, text: str) -> str:
        with translated(f"write log {path}"):
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._container.create_container()
                self._ready = True
            with contextlib.suppress(ResourceExistsError):  # the first harvest's log stands (the port's rule)
                self._container.upload_blob(
                    path,
                    text.encode(),
                    overwrite=False,
                    content_settings=ContentSettings(content_type="text/plain; charset=utf-8"),
                )
        return f"{self._container.container_name}/{path}"

    def get(self, path: str) -> str | None:
        with translated(f"read log {path}"):
            try:
                return self._container.download_blob(path).readall().decode(errors="replace")
            except ResourceNotFoundError:
                return None

    def delete_job(self, job_id: str) -> None:
        with translated(f"delete the logs of {job_id}"), contextlib.suppress(ResourceNotFoundError):
            for blob in self._container.list_blobs(name_starts_with=f"{job_id}/"):
                with contextlib.suppress(ResourceNotFoundError):
                    self._container.delete_blob(blob.name)

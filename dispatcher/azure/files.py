"""Azure Files shares through ``azure-storage-file-share``: the Shares port."""

from __future__ import annotations

from azure.core.exceptions import ResourceExistsError
from azure.storage.fileshare import ShareServiceClient


class FileShares:
    """Creates the per-job workspace shares."""

    def __init__(self, service: ShareServiceClient) -> None:
        self._service = service

    def ensure(self, share: str) -> None:
        try:
            self._service.create_share(share)
        except ResourceExistsError:
            return

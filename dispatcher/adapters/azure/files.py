"""Azure Files shares through ``azure-storage-file-share``: the Shares port."""

from __future__ import annotations

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
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

    def delete(self, share: str) -> None:
        try:
            self._service.delete_share(share, delete_snapshots=True)
        except ResourceNotFoundError:
            return

    def read(self, share: str, path: str) -> bytes | None:
        try:
            return self._service.get_share_client(share).get_file_client(path).download_file().readall()
        except ResourceNotFoundError:
            return None

    def files(self, share: str) -> list[str]:
        client = self._service.get_share_client(share)
        found: list[str] = []
        pending = [""]
        try:
            while pending:
                folder = pending.pop()
                directory = client.get_directory_client(folder) if folder else client.get_directory_client()
                for item in directory.list_directories_and_files():
                    path = f"{folder}/{item.name}" if folder else str(item.name)
                    if getattr(item, "is_directory", False):
                        pending.append(path)
                    else:
                        found.append(path)
        except ResourceNotFoundError:
            return []
        return sorted(found)

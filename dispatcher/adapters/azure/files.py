"""Azure Files shares through ``azure-storage-file-share``: the Shares port."""

from __future__ import annotations

import contextlib
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.fileshare import ShareServiceClient

from dispatcher.adapters.azure.errors import translated
from dispatcher.domain.errors import CloudError
from dispatcher.domain.jobs import OutputSummary
from dispatcher.ports import OutputEntry, OutputPage

SUMMARY_NAMES = 100
"""File paths a summary keeps, the first ones in listing order."""
MAX_DEPTH = 32
"""Folders deeper than this are not counted: a listing that nests that deep (a loop, say) ends the count."""


class FileShares:
    """The per-job workspace shares, and the shares jobs mount."""

    def __init__(self, service: ShareServiceClient) -> None:
        self._service = service

    def ensure(self, share: str) -> None:
        with translated(f"create share {share}"), contextlib.suppress(ResourceExistsError):
            self._service.create_share(share)

    def ensure_folder(self, share: str, path: str) -> None:
        client = self._service.get_share_client(share)
        parts = [p for p in path.split("/") if p]
        with translated(f"create folder {path} in share {share}"):
            for depth in range(1, len(parts) + 1):
                with contextlib.suppress(ResourceExistsError):
                    client.get_directory_client("/".join(parts[:depth])).create_directory()

    def delete(self, share: str) -> None:
        with translated(f"delete share {share}"), contextlib.suppress(ResourceNotFoundError):
            self._service.delete_share(share, delete_snapshots=True)

    def read(self, share: str, path: str) -> bytes | None:
        with translated(f"read {path} of share {share}"):
            try:
                return self._service.get_share_client(share).get_file_client(path).download_file().readall()
            except ResourceNotFoundError:
                return None

    def _listing(self, share: str, folder: str, limit: int) -> Any:
        client = self._service.get_share_client(share)
        directory = client.get_directory_client(folder) if folder else client.get_directory_client()
        return directory.list_directories_and_files(results_per_page=limit)

    def page(self, share: str, folder: str, continuation: str | None, limit: int) -> OutputPage:
        with translated(f"list {folder or '/'} of share {share}"):
            try:
                pages = self._listing(share, folder, limit).by_page(continuation_token=continuation)
                items = list(next(pages, []))
            except ResourceNotFoundError:
                raise CloudError(
                    f"share {share} has no folder {folder!r}", code="ResourceNotFound", status=404, transient=False
                ) from None
            token = getattr(pages, "continuation_token", None)
        entries = [
            OutputEntry(str(item.name), bool(item.get("is_directory")), int(item.get("size") or 0)) for item in items
        ]
        return OutputPage(entries=entries, continuation=str(token) if token else None)

    def summary(self, share: str, limit: int) -> OutputSummary:
        """Count the share's files breadth first, visiting at most ``limit`` entries and ``MAX_DEPTH`` levels."""
        files = size = visited = 0
        first: list[str] = []
        pending: list[tuple[str, int]] = [("", 0)]
        complete = True
        with translated(f"summarize share {share}"):
            while pending:
                folder, depth = pending.pop(0)
                try:
                    items = self._listing(share, folder, 1000)
                    for item in items:
                        visited += 1
                        if visited > limit:
                            return OutputSummary(files=files, bytes=size, first=first, complete=False)
                        path = f"{folder}/{item.name}" if folder else str(item.name)
                        if item.get("is_directory"):
                            if depth + 1 >= MAX_DEPTH:
                                complete = False
                            else:
                                pending.append((path, depth + 1))
                            continue
                        files += 1
                        size += int(item.get("size") or 0)
                        if len(first) < SUMMARY_NAMES:
                            first.append(path)
                except ResourceNotFoundError:
                    if not folder:
                        return OutputSummary()
        return OutputSummary(files=files, bytes=size, first=first, complete=complete)

"""Shares, directories and files kept as a plain folder tree: share ``S`` of account ``A`` is ``root/A/S/``.

The folder is the single source of truth for content, so a file a job writes into the share
folder is visible through the REST API at once. What a plain file system cannot hold (metadata,
content headers, quotas) is kept in memory and lost on restart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from devstack.files.errors import StorageError

_SHARE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_FORBIDDEN_IN_NAMES = set('\\/:|<>*?"\x00')
DEFAULT_QUOTA_GIB = 5120


@dataclass
class ContentHeaders:
    """The HTTP headers a file is served with, as set when it was created."""

    content_type: str = "application/octet-stream"
    content_encoding: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    content_disposition: str | None = None
    content_md5: str | None = None


@dataclass
class _ShareRecord:
    metadata: dict[str, str] = field(default_factory=dict)
    quota_gib: int = DEFAULT_QUOTA_GIB


@dataclass
class _ItemRecord:
    metadata: dict[str, str] = field(default_factory=dict)
    headers: ContentHeaders = field(default_factory=ContentHeaders)
    generation: int = 0


@dataclass(frozen=True)
class EntryInfo:
    """What the service reports about a share, directory or file, read from the folder."""

    name: str
    is_directory: bool
    size: int
    etag: str
    last_modified: dt.datetime
    creation_time: dt.datetime
    last_write_time: dt.datetime
    change_time: dt.datetime
    file_id: str
    parent_id: str
    metadata: dict[str, str]
    headers: ContentHeaders


@dataclass(frozen=True)
class ShareInfo:
    """A share's properties."""

    name: str
    etag: str
    last_modified: dt.datetime
    quota_gib: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class Listing:
    """One page of a directory listing, sorted by name."""

    directories: list[EntryInfo]
    files: list[EntryInfo]
    next_marker: str


def _from_ns(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)


def _etag(stat: os.stat_result, generation: int) -> str:
    digest = hashlib.sha256(f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}:{generation}".encode()).hexdigest()
    return f'"0x8D{digest[:13].upper()}"'


def validate_segment(name: str) -> str:
    """Return ``name`` if it may be a directory or file name; raise ``InvalidResourceName`` otherwise.

    Refuses empty names, ``.`` and ``..`` and the characters Azure Files forbids, so no request
    can reach outside its share folder.
    """
    if not name or name in {".", ".."} or any(c in _FORBIDDEN_IN_NAMES or ord(c) < 0x20 for c in name):
        raise StorageError(400, "InvalidResourceName", "The specified resource name contains invalid characters.")
    if len(name) > 255:
        raise StorageError(400, "InvalidResourceName", "The specified resource name length is not within bounds.")
    return name


def validate_share_name(name: str) -> str:
    """Return ``name`` if it is a valid share name (3-63 of a-z, 0-9 and single hyphens); raise otherwise."""
    if not _SHARE_NAME.match(name):
        raise StorageError(400, "InvalidResourceName", "The specified resource name contains invalid characters.")
    return name


class ShareStore:
    """Shares of every account under one root folder. All methods raise :class:`StorageError` as the service would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._shares: dict[Path, _ShareRecord] = {}
        self._items: dict[Path, _ItemRecord] = {}

    # --- paths -------------------------------------------------------------------------------

    def share_folder(self, account: str, share: str) -> Path:
        """The folder that holds ``share`` of ``account`` (it may not exist)."""
        validate_segment(account)
        return self.root / account / validate_share_name(share)

    def _existing_share(self, account: str, share: str) -> Path:
        folder = self.share_folder(account, share)
        if not folder.is_dir():
            raise StorageError(404, "ShareNotFound", "The specified share does not exist.")
        return folder

    def _item_path(self, account: str, share: str, parts: list[str]) -> Path:
        folder = self._existing_share(account, share)
        path = folder
        for part in parts:
            path = path / validate_segment(part)
            # A job may leave a symbolic link in its share. An SMB share of Azure Files shows none (a Linux client
            # cannot create one without mfsymlinks), so none is ever followed: it is not an item of the share.
            if path.is_symlink():
                raise StorageError(404, "ResourceNotFound", "The specified resource does not exist.")
        return path

    def _parent_must_exist(self, path: Path) -> None:
        if not path.parent.is_dir():
            raise StorageError(404, "ParentNotFound", "The specified parent path does not exist.")

    # --- shares ------------------------------------------------------------------------------

    def create_share(self, account: str, share: str, metadata: dict[str, str], quota_gib: int | None) -> ShareInfo:
        """Create an empty share; ``ShareAlreadyExists`` (409) if it exists."""
        folder = self.share_folder(account, share)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
        except FileExistsError as error:
            raise StorageError(409, "ShareAlreadyExists", "The specified share already exists.") from error
        with self._lock:
            self._shares[folder] = _ShareRecord(metadata=dict(metadata), quota_gib=quota_gib or DEFAULT_QUOTA_GIB)
        return self.share_info(account, share)

    def share_info(self, account: str, share: str) -> ShareInfo:
        """The share's properties; ``ShareNotFound`` (404) if it does not exist."""
        folder = self._existing_share(account, share)
        with self._lock:
            record = self._shares.setdefault(folder, _ShareRecord())
        stat = folder.stat()
        return ShareInfo(
            name=share,
            etag=_etag(stat, 0),
            last_modified=_from_ns(stat.st_mtime_ns),
            quota_gib=record.quota_gib,
            metadata=dict(record.metadata),
        )

    def set_share(
        self, account: str, share: str, *, metadata: dict[str, str] | None = None, quota_gib: int | None = None
    ) -> ShareInfo:
        """Replace a share's metadata, or set its quota; ``ShareNotFound`` (404) if it does not exist."""
        folder = self._existing_share(account, share)
        with self._lock:
            record = self._shares.setdefault(folder, _ShareRecord())
            if metadata is not None:
                record.metadata = dict(metadata)
            if quota_gib is not None:
                record.quota_gib = quota_gib
        return self.share_info(account, share)

    def delete_share(self, account: str, share: str) -> None:
        """Delete the share and everything in it; ``ShareNotFound`` (404) if it does not exist."""
        folder = self._existing_share(account, share)
        shutil.rmtree(folder)
        with self._lock:
            self._shares.pop(folder, None)
            for path in [p for p in self._items if p.is_relative_to(folder)]:
                del self._items[path]

    def list_shares(self, account: str, prefix: str) -> list[ShareInfo]:
        """The account's shares whose names start with ``prefix``, sorted by name."""
        account_folder = self.root / validate_segment(account)
        if not account_folder.is_dir():
            return []
        names = sorted(p.name for p in account_folder.iterdir() if p.is_dir() and _SHARE_NAME.match(p.name))
        return [self.share_info(account, name) for name in names if name.startswith(prefix)]

    # --- directories -------------------------------------------------------------------------

    def create_directory(self, account: str, share: str, parts: list[str], metadata: dict[str, str]) -> EntryInfo:
        """Create a directory; ``ParentNotFound`` (404) or ``ResourceAlreadyExists`` (409) as the service does."""
        path = self._item_path(account, share, parts)
        self._parent_must_exist(path)
        try:
            path.mkdir()
        except FileExistsError as error:
            raise StorageError(409, "ResourceAlreadyExists", "The specified resource already exists.") from error
        with self._lock:
            self._items[path] = _ItemRecord(metadata=dict(metadata))
        return self._info(path)

    def directory_info(self, account: str, share: str, parts: list[str]) -> EntryInfo:
        """A directory's properties (the share root when ``parts`` is empty); ``ResourceNotFound`` (404)."""
        path = self._item_path(account, share, parts)
        if not path.is_dir():
            raise StorageError(404, "ResourceNotFound", "The specified resource does not exist.")
        return self._info(path)

    def delete_directory(self, account: str, share: str, parts: list[str]) -> None:
        """Delete an empty directory; ``ResourceNotFound`` (404) or ``DirectoryNotEmpty`` (409)."""
        if not parts:
            raise StorageError(400, "InvalidUri", "The root directory of a share cannot be deleted.")
        path = self._item_path(account, share, parts)
        if not path.is_dir() or path.is_symlink():
            raise StorageError(404, "ResourceNotFound", "The specified resource does not exist.")
        if any(path.iterdir()):
            raise StorageError(409, "DirectoryNotEmpty", "The specified directory is not empty.")
        path.rmdir()
        self._forget(path)

    def list_directory(
        self, account: str, share: str, parts: list[str], *, prefix: str, marker: str, max_results: int | None
    ) -> Listing:
        """Entries of a directory whose names start with ``prefix``, from ``marker`` on, at most ``max_results``."""
        path = self._item_path(account, share, parts)
        if not path.is_dir():
            raise StorageError(404, "ResourceNotFound", "The specified resource does not exist.")
        names = sorted(
            n for n in os.listdir(path) if n.startswith(prefix) and n >= marker and not (path / n).is_symlink()
        )
        limit = max_results if max_results and max_results > 0 else 5000
        page, rest = names[:limit], names[limit:]
        directories: list[EntryInfo] = []
        files: list[EntryInfo] = []
        for name in page:
            child = path / name
            try:
                info = self._info(child)
            except FileNotFoundError:  # removed by a job while we listed
                continue
            (directories if info.is_directory else files).append(info)
        return Listing(directories=directories, files=files, next_marker=rest[0] if rest else "")

    # --- files -------------------------------------------------------------------------------

    def create_file(
        self,
        account: str,
        share: str,
        parts: list[str],
        *,
        size: int,
        metadata: dict[str, str],
        headers: ContentHeaders,
    ) -> EntryInfo:
        """Create (or replace) a file of ``size`` zero bytes; ``ParentNotFound`` (404) if its directory is missing."""
        if not parts:
            raise StorageError(400, "InvalidUri", "A file needs a name.")
        if size < 0:
            raise StorageError(400, "InvalidHeaderValue", "x-ms-content-length must not be negative.")
        path = self._item_path(account, share, parts)
        self._parent_must_exist(path)
        if path.is_dir():
            raise StorageError(409, "ResourceTypeMismatch", "The specified resource type does not match.")
        with path.open("wb") as handle:
            handle.truncate(size)
        with self._lock:
            previous = self._items.get(path)
            generation = previous.generation + 1 if previous else 0
            self._items[path] = _ItemRecord(metadata=dict(metadata), headers=headers, generation=generation)
        return self._info(path)

    def _existing_file(self, account: str, share: str, parts: list[str]) -> Path:
        path = self._item_path(account, share, parts)
        if not path.is_file():
            if path.is_dir():
                raise StorageError(409, "ResourceTypeMismatch", "The specified resource type does not match.")
            if parts and not path.parent.is_dir():
                raise StorageError(404, "ParentNotFound", "The specified parent path does not exist.")
            raise StorageError(404, "ResourceNotFound", "The specified resource does not exist.")
        return path

    def write_range(self, account: str, share: str, parts: list[str], start: int, data: bytes) -> EntryInfo:
        """Write ``data`` at ``start`` inside the file's current size; ``InvalidRange`` (416) past its end."""
        path = self._existing_file(account, share, parts)
        if start + len(data) > path.stat().st_size:
            raise StorageError(416, "InvalidRange", "The range specified is invalid for the current size of the file.")
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, start)
        finally:
            os.close(fd)
        self._bump(path)
        return self._info(path)

    def clear_range(self, account: str, share: str, parts: list[str], start: int, end: int) -> EntryInfo:
        """Zero the bytes ``start..end`` (inclusive) of the file."""
        path = self._existing_file(account, share, parts)
        if end >= path.stat().st_size:
            raise StorageError(416, "InvalidRange", "The range specified is invalid for the current size of the file.")
        return self.write_range(account, share, parts, start, bytes(end - start + 1))

    def file_info(self, account: str, share: str, parts: list[str]) -> EntryInfo:
        """A file's properties; ``ResourceNotFound`` / ``ParentNotFound`` (404) if it is missing."""
        return self._info(self._existing_file(account, share, parts))

    def read(self, account: str, share: str, parts: list[str], start: int, end: int) -> tuple[EntryInfo, bytes]:
        """The file's properties and its bytes ``start..end`` inclusive (the caller clamps ``end``)."""
        path = self._existing_file(account, share, parts)
        info = self._info(path)
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read(max(0, end - start + 1))
        return info, data

    def delete_file(self, account: str, share: str, parts: list[str]) -> None:
        """Delete a file; ``ResourceNotFound`` (404) if it is missing."""
        path = self._existing_file(account, share, parts)
        path.unlink()
        self._forget(path)

    # --- records -----------------------------------------------------------------------------

    def _bump(self, path: Path) -> None:
        with self._lock:
            self._items.setdefault(path, _ItemRecord()).generation += 1

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._items.pop(path, None)

    def _info(self, path: Path) -> EntryInfo:
        stat = path.stat()
        parent_stat = path.parent.stat()
        with self._lock:
            record = self._items.get(path) or _ItemRecord()
        is_directory = path.is_dir()
        return EntryInfo(
            name=path.name,
            is_directory=is_directory,
            size=0 if is_directory else stat.st_size,
            etag=_etag(stat, record.generation),
            last_modified=_from_ns(stat.st_mtime_ns),
            creation_time=_from_ns(min(stat.st_mtime_ns, stat.st_ctime_ns)),
            last_write_time=_from_ns(stat.st_mtime_ns),
            change_time=_from_ns(stat.st_ctime_ns),
            file_id=str(stat.st_ino),
            parent_id=str(parent_stat.st_ino),
            metadata=dict(record.metadata),
            headers=record.headers,
        )

"""An Azure Files REST emulator whose shares are plain local folders."""

from devstack.files.emulator import FilesEmulator
from devstack.files.errors import StorageError
from devstack.files.store import ShareStore

__all__ = ["FilesEmulator", "ShareStore", "StorageError"]

"""Run the Azure Files emulator on a loopback port."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from devstack.accounts import DEFAULT_ACCOUNTS
from devstack.files.app import FilesApi
from devstack.files.store import ShareStore
from devstack.server import ServerThread


class FilesEmulator:
    """Azure Files over plain HTTP, path style (``http://127.0.0.1:PORT/<account>``), backed by ``files_root``.

    Share ``S`` of account ``A`` is the folder ``files_root / A / S``; files in it are plain files,
    so whatever a job writes there can be downloaded with ``ShareFileClient``.
    """

    def __init__(self, files_root: Path, accounts: dict[str, str] | None = None, port: int = 0) -> None:
        self.files_root = files_root
        self.accounts = dict(accounts) if accounts is not None else dict(DEFAULT_ACCOUNTS)
        self.store = ShareStore(files_root)
        self._server = ServerThread(FilesApi(self.store, self.accounts).app(), port=port, name="files")

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; valid once started."""
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port

    def account_url(self, account: str) -> str:
        """The account URL to give ``ShareServiceClient(account_url, credential=...)``."""
        return f"{self.url}/{account}"

    def connection_string(self, account: str) -> str:
        """A connection string for ``ShareServiceClient.from_connection_string``; ``KeyError`` for unknown accounts."""
        key = self.accounts[account]
        return (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
            f"FileEndpoint={self.account_url(account)};"
        )

    def share_folder(self, account: str, share: str) -> Path:
        """The local folder that holds ``share`` (what the ACI emulator bind-mounts)."""
        return self.store.share_folder(account, share)

    def start(self) -> FilesEmulator:
        """Create ``files_root`` if needed and start serving; returns ``self``."""
        self.files_root.mkdir(parents=True, exist_ok=True)
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving. The folder and its files stay."""
        self._server.stop()

    def __enter__(self) -> FilesEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

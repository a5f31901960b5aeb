"""A Key Vault secrets emulator: ``GET /secrets/{name}[/{version}]`` over HTTPS, values from a local JSON file.

Clients talk to it with the unmodified ``azure-keyvault-secrets`` SDK::

    SecretClient(vault_url=emulator.url, credential=DevstackCredential(),
                 connection_verify=str(tls.ca), verify_challenge_resource=False)

The SDK first sends a request without a token and expects Key Vault's 401 bearer challenge, then
retries with a token for the challenge's resource. ``verify_challenge_resource=False`` is needed in
devstack mode: the SDK checks that the vault's host name ends with the challenge resource's domain
(``vault.azure.net``), which ``127.0.0.1`` never does. Only the development token
(:data:`dispatcher.adapters.azure.credential.DEVSTACK_TOKEN`) is accepted.

The secrets file maps names to a value, or to a list of versions (the last one is the latest)::

    {"db-password": "s3cret", "api-key": [{"version": "v1", "value": "old"}, {"version": "v2", "value": "new"}]}

The file is re-read when it changes. Secret values are never logged and never appear in errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devstack.server import ServerThread
from devstack.tls import TLSFiles
from dispatcher.adapters.azure.credential import DEVSTACK_TOKEN

CHALLENGE = 'Bearer authorization="https://login.microsoftonline.com/devstack", resource="https://vault.azure.net"'
"""The ``WWW-Authenticate`` header of every 401, shaped like Key Vault's."""

_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


class SecretsFileError(ValueError):
    """The secrets file is not valid JSON of the documented shape; the message names the offending entry."""


@dataclass(frozen=True)
class SecretVersion:
    """One version of a secret. ``repr`` hides the value."""

    version: str
    value: str
    created: int

    def __repr__(self) -> str:
        return f"SecretVersion(version={self.version!r}, value=<hidden>)"


def _default_version(name: str, value: str, index: int) -> str:
    return hashlib.sha256(f"{name}\0{index}\0{value}".encode()).hexdigest()[:32]


def parse_secrets(document: object, created: int) -> dict[str, list[SecretVersion]]:
    """Turn the secrets file's JSON into versions per name (oldest first).

    Raises :class:`SecretsFileError` for a non-object document, invalid secret names, or entries that
    are neither a string nor a non-empty list of ``{"version": str, "value": str}``. A version may be
    omitted; it then gets a stable 32-hex-digit id derived from the name and value.
    """
    if not isinstance(document, dict):
        raise SecretsFileError("the secrets file must hold a JSON object of name -> value or versions")
    secrets: dict[str, list[SecretVersion]] = {}
    for name, entry in document.items():
        if not _SECRET_NAME.match(name):
            raise SecretsFileError(f"{name!r}: a secret name is 1-127 letters, digits and hyphens")
        if isinstance(entry, str):
            secrets[name] = [SecretVersion(_default_version(name, entry, 0), entry, created)]
            continue
        if not isinstance(entry, list) or not entry:
            raise SecretsFileError(f"{name}: expected a string or a non-empty list of versions")
        versions: list[SecretVersion] = []
        for index, item in enumerate(entry):
            if not isinstance(item, dict) or not isinstance(item.get("value"), str):
                raise SecretsFileError(f"{name}[{index}]: expected an object with a string 'value'")
            version = item.get("version") or _default_version(name, item["value"], index)
            if not isinstance(version, str) or not re.match(r"^[0-9a-zA-Z-]{1,64}$", version):
                raise SecretsFileError(f"{name}[{index}].version: expected 1-64 letters, digits and hyphens")
            versions.append(SecretVersion(version, item["value"], created))
        secrets[name] = versions
    return secrets


class _SecretsFile:
    """The secrets file, re-read whenever its modification time or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._secrets: dict[str, list[SecretVersion]] = {}

    def current(self) -> dict[str, list[SecretVersion]]:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                document = json.loads(self.path.read_text(encoding="utf-8"))
                self._secrets = parse_secrets(document, created=int(stat.st_mtime))
                self._stamp = stamp
            return self._secrets


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    # Errors close the connection: a client that keeps the failed response (inside the exception it
    # raised) would otherwise hold an idle TLS connection open and delay the emulator's shutdown.
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={**(headers or {}), "Connection": "close"},
    )


class KeyVaultEmulator:
    """Key Vault's get-secret API on ``https://127.0.0.1:PORT``, serving the secrets in ``secrets_file``."""

    def __init__(self, secrets_file: Path, tls: TLSFiles, port: int = 0) -> None:
        self._file = _SecretsFile(secrets_file)
        self._lock = threading.Lock()
        self.challenges = 0
        """How many 401 bearer challenges were answered (requests without a token)."""
        self.rejected_tokens = 0
        """How many requests carried a bearer token other than the development token."""
        app = Starlette(routes=[Route("/secrets/{rest:path}", self._secret, methods=["GET", "PUT", "DELETE"])])
        self._server = ServerThread(app, port=port, tls=tls, name="keyvault")

    @property
    def url(self) -> str:
        """The vault URL, ``https://127.0.0.1:PORT``; valid once started."""
        return self._server.url

    def start(self) -> KeyVaultEmulator:
        """Check the secrets file parses, then serve; returns ``self``.

        Raises :class:`SecretsFileError` for a malformed file, ``OSError`` if it cannot be read and
        ``json.JSONDecodeError`` if it is not JSON.
        """
        self._file.current()
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> KeyVaultEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _unauthorized(self, message: str) -> Response:
        return _error(401, "Unauthorized", message, headers={"WWW-Authenticate": CHALLENGE})

    async def _secret(self, request: Request) -> Response:
        if not request.query_params.get("api-version"):
            return _error(400, "BadParameter", "The request URI contains an invalid or missing api-version.")
        authorization = request.headers.get("authorization")
        if not authorization:
            with self._lock:
                self.challenges += 1
            return self._unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != DEVSTACK_TOKEN:
            with self._lock:
                self.rejected_tokens += 1
            return self._unauthorized("AKV10022: The bearer token is not valid for this vault.")
        if request.method != "GET":
            return _error(405, "MethodNotAllowed", "This vault emulator only reads secrets.")
        parts = request.path_params["rest"].split("/")
        if parts and parts[-1] == "":
            parts.pop()
        if not 1 <= len(parts) <= 2 or not _SECRET_NAME.match(parts[0]):
            return _error(400, "BadParameter", "The request URI is not a valid secret identifier.")
        name = parts[0]
        version = parts[1] if len(parts) == 2 else None
        versions = self._file.current().get(name, [])
        if version is None:
            chosen = versions[-1] if versions else None
        else:
            chosen = next((v for v in versions if v.version == version), None)
        if chosen is None:
            shown = name if version is None else f"{name}/{version}"
            return _error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {shown} was not found in this key vault. If you recently deleted this "
                "secret you may be able to recover it using the correct recovery command.",
            )
        return JSONResponse(
            {
                "value": chosen.value,
                "id": f"{self.url}/secrets/{name}/{chosen.version}",
                "attributes": {
                    "enabled": True,
                    "created": chosen.created,
                    "updated": chosen.created,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90,
                },
                "tags": {},
            }
        )

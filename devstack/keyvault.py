"""A Key Vault secrets emulator over HTTPS, speaking the REST API the ``azure-keyvault-secrets`` SDK uses.

Clients talk to it with the unmodified SDK::

    SecretClient(vault_url=emulator.url, credential=DevstackCredential(),
                 connection_verify=str(tls.ca), verify_challenge_resource=False)

The SDK first sends a request without a token and expects Key Vault's 401 bearer challenge, then retries with a
token for the challenge's resource. ``verify_challenge_resource=False`` is needed in devstack mode: the SDK checks
that the vault's host name ends with the challenge resource's domain (``vault.azure.net``), which ``127.0.0.1``
never does. Only the development token (:data:`dispatcher.adapters.azure.credential.DEVSTACK_TOKEN`) is accepted.

Operations: get a secret (latest or a version), set (a new version), list secrets, list a secret's versions, delete
(soft delete: the secret moves to the deleted collection, and its name cannot be reused while it is there, as in a
vault with soft delete, the default, and purge protection), get and list deleted secrets, recover, and purge
(refused, as purge protection refuses it). Secret values are never logged and never appear in errors.

The vault is seeded from a JSON file that maps names to a value, or to a list of versions (the last one is the
latest); the file is re-read when it changes, and its names replace what the vault holds for them::

    {"db-password": "s3cret", "api-key": [{"version": "v1", "value": "old"}, {"version": "v2", "value": "new"}]}
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devstack.server import ServerThread
from devstack.tls import TLSFiles
from dispatcher.adapters.azure.credential import DEVSTACK_TOKEN

CHALLENGE = 'Bearer authorization="https://login.microsoftonline.com/devstack", resource="https://vault.azure.net"'
"""The ``WWW-Authenticate`` header of every 401, shaped like Key Vault's."""
_CHALLENGED = {"WWW-Authenticate": CHALLENGE}

_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_VERSION = re.compile(r"^[0-9a-zA-Z-]{1,64}$")
RETENTION_DAYS = 90
PAGE = 25
MAX_VALUE_BYTES = 25 * 1024
"""Key Vault refuses a secret value over 25 KB."""


class SecretsFileError(ValueError):
    """The secrets file is not valid JSON of the documented shape; the message names the offending entry."""


@dataclass(frozen=True)
class SecretVersion:
    """One version of a secret. ``repr`` hides the value."""

    version: str
    value: str
    created: int
    tags: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def __repr__(self) -> str:
        return f"SecretVersion(version={self.version!r}, value=<hidden>)"


@dataclass(frozen=True)
class DeletedSecret:
    """A soft-deleted secret: every version, kept until its scheduled purge."""

    versions: list[SecretVersion]
    deleted: int


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
            if not isinstance(version, str) or not _VERSION.match(version):
                raise SecretsFileError(f"{name}[{index}].version: expected 1-64 letters, digits and hyphens")
            versions.append(SecretVersion(version, item["value"], created))
        secrets[name] = versions
    return secrets


class Vault:
    """The vault's secrets in memory, seeded from the secrets file whenever it changes. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self.secrets: dict[str, list[SecretVersion]] = {}
        self.deleted: dict[str, DeletedSecret] = {}

    def refresh(self) -> None:
        """Re-read the file if it changed; its names replace what the vault holds for them."""
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp == self._stamp:
                return
            document = json.loads(self.path.read_text(encoding="utf-8"))
            for name, versions in parse_secrets(document, created=int(stat.st_mtime)).items():
                self.secrets[name] = versions
                self.deleted.pop(name, None)
            self._stamp = stamp

    def get(self, name: str, version: str | None) -> SecretVersion | None:
        self.refresh()
        with self._lock:
            versions = self.secrets.get(name, [])
            if version is None:
                return versions[-1] if versions else None
            return next((v for v in versions if v.version == version), None)

    def set(self, name: str, value: str, tags: dict[str, str], content_type: str | None) -> SecretVersion | None:
        """A new version, or ``None`` when the name is soft-deleted and so cannot be reused."""
        self.refresh()
        with self._lock:
            if name in self.deleted:
                return None
            added = SecretVersion(uuid.uuid4().hex, value, int(time.time()), dict(tags), content_type)
            self.secrets.setdefault(name, []).append(added)
            return added

    def delete(self, name: str) -> DeletedSecret | None:
        self.refresh()
        with self._lock:
            versions = self.secrets.pop(name, None)
            if versions is None:
                return None
            self.deleted[name] = DeletedSecret(versions, int(time.time()))
            return self.deleted[name]

    def recover(self, name: str) -> list[SecretVersion] | None:
        with self._lock:
            gone = self.deleted.pop(name, None)
            if gone is None:
                return None
            self.secrets[name] = gone.versions
            return gone.versions


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    # Errors close the connection: a client that keeps the failed response (inside the exception it
    # raised) would otherwise hold an idle TLS connection open and delay the emulator's shutdown.
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={**(headers or {}), "Connection": "close"},
    )


async def _unknown(request: Request, exc: Exception) -> Response:
    """An operation the emulator lacks (backup, restore, ...), answered in Key Vault's error shape."""
    return _error(
        501, "NotImplemented", f"The devstack Key Vault does not implement {request.method} {request.url.path}."
    )


def _not_found(name: str, version: str | None = None) -> Response:
    shown = name if version is None else f"{name}/{version}"
    return _error(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {shown} was not found in this key vault. If you recently deleted this secret you "
        "may be able to recover it using the correct recovery command.",
    )


class KeyVaultEmulator:
    """Key Vault's secrets API on ``https://127.0.0.1:PORT``, seeded from ``secrets_file``."""

    def __init__(self, secrets_file: Path, tls: TLSFiles, port: int = 0) -> None:
        self.vault = Vault(secrets_file)
        self._lock = threading.Lock()
        self.challenges = 0
        """How many 401 bearer challenges were answered (requests without a token)."""
        self.rejected_tokens = 0
        """How many requests carried a bearer token other than the development token."""
        routes = [
            Route("/secrets", self._list, methods=["GET"]),
            Route("/secrets/{name}", self._secret, methods=["GET", "PUT", "DELETE", "PATCH"]),
            Route("/secrets/{name}/", self._secret, methods=["GET"]),
            Route("/secrets/{name}/versions", self._versions, methods=["GET"]),
            Route("/secrets/{name}/{version}", self._secret, methods=["GET", "PATCH"]),
            Route("/deletedsecrets", self._list_deleted, methods=["GET"]),
            Route("/deletedsecrets/{name}", self._deleted, methods=["GET", "DELETE"]),
            Route("/deletedsecrets/{name}/recover", self._recover, methods=["POST"]),
        ]
        app = Starlette(routes=routes, exception_handlers={404: _unknown, 405: _unknown})
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
        self.vault.refresh()
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

    # --- shapes -----------------------------------------------------------------------------------------------

    def _attributes(self, version: SecretVersion) -> dict[str, Any]:
        return {
            "enabled": True,
            "created": version.created,
            "updated": version.created,
            "recoveryLevel": "Recoverable",
            "recoverableDays": RETENTION_DAYS,
        }

    def _item(self, name: str, version: SecretVersion, *, with_version: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": f"{self.url}/secrets/{name}" + (f"/{version.version}" if with_version else ""),
            "attributes": self._attributes(version),
            "tags": dict(version.tags),
        }
        if version.content_type:
            item["contentType"] = version.content_type
        return item

    def _bundle(self, name: str, version: SecretVersion, *, value: bool = True) -> dict[str, Any]:
        bundle = self._item(name, version, with_version=True)
        if value:
            bundle["value"] = version.value
        return bundle

    def _deleted_bundle(self, name: str, gone: DeletedSecret, *, item: bool = False) -> dict[str, Any]:
        latest = gone.versions[-1]
        bundle = self._item(name, latest, with_version=not item)
        bundle.update(
            {
                "recoveryId": f"{self.url}/deletedsecrets/{name}",
                "deletedDate": gone.deleted,
                "scheduledPurgeDate": gone.deleted + RETENTION_DAYS * 86400,
            }
        )
        return bundle

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        try:
            size = min(max(int(request.query_params.get("maxresults") or PAGE), 1), PAGE)
            start = int(request.query_params.get("$skiptoken") or 0)
        except ValueError:
            return _error(400, "BadParameter", "maxresults and $skiptoken must be numbers.")
        body: dict[str, Any] = {"value": items[start : start + size], "nextLink": None}
        if start + size < len(items):
            version = request.query_params.get("api-version", "")
            body["nextLink"] = (
                f"{self.url}{request.url.path}?api-version={version}&maxresults={size}&$skiptoken={start + size}"
            )
        return JSONResponse(body)

    # --- requests ---------------------------------------------------------------------------------------------

    def _refusal(self, request: Request) -> Response | None:
        if not request.query_params.get("api-version"):
            return _error(400, "BadParameter", "The request URI contains an invalid or missing api-version.")
        authorization = request.headers.get("authorization")
        if not authorization:
            with self._lock:
                self.challenges += 1
            return _error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", _CHALLENGED)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != DEVSTACK_TOKEN:
            with self._lock:
                self.rejected_tokens += 1
            return _error(401, "Unauthorized", "AKV10022: The bearer token is not valid for this vault.", _CHALLENGED)
        name = request.path_params.get("name")
        if name is not None and not _SECRET_NAME.match(name):
            return _error(400, "BadParameter", "The request URI is not a valid secret identifier.")
        version = request.path_params.get("version")
        if version is not None and not _VERSION.match(version):
            return _error(400, "BadParameter", "The request URI is not a valid secret identifier.")
        return None

    async def _secret(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        name, version = request.path_params["name"], request.path_params.get("version")
        if request.method == "PUT":
            return await self._set(request, name)
        if request.method == "DELETE":
            gone = self.vault.delete(name)
            return JSONResponse(self._deleted_bundle(name, gone)) if gone is not None else _not_found(name)
        if request.method == "PATCH":
            return _error(501, "NotImplemented", "This vault emulator does not update secret attributes.")
        chosen = self.vault.get(name, version)
        return JSONResponse(self._bundle(name, chosen)) if chosen is not None else _not_found(name, version)

    async def _set(self, request: Request, name: str) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "BadParameter", "The request body is not JSON.")
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return _error(400, "BadParameter", "Property 'value' is required and must be a string.")
        if len(body["value"].encode()) > MAX_VALUE_BYTES:
            return _error(400, "BadParameter", "The secret value exceeds the maximum size of 25 KB.")
        tags = body.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            return _error(400, "BadParameter", "Property 'tags' must map strings to strings.")
        content_type = body.get("contentType")
        added = self.vault.set(name, body["value"], tags, content_type if isinstance(content_type, str) else None)
        if added is None:
            return _error(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in "
                "this state, the secret can only be recovered or purged.",
            )
        return JSONResponse(self._bundle(name, added))

    async def _list(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.vault.refresh()
        items = [self._item(n, v[-1], with_version=False) for n, v in sorted(self.vault.secrets.items()) if v]
        return self._page(request, items)

    async def _versions(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.vault.refresh()
        name = request.path_params["name"]
        versions = self.vault.secrets.get(name)
        if not versions:
            return _not_found(name)
        return self._page(request, [self._item(name, v, with_version=True) for v in versions])

    async def _list_deleted(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        items = [self._deleted_bundle(n, d, item=True) for n, d in sorted(self.vault.deleted.items())]
        return self._page(request, items)

    async def _deleted(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        name = request.path_params["name"]
        gone = self.vault.deleted.get(name)
        if gone is None:
            return _error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        if request.method == "DELETE":
            return _error(
                403,
                "Forbidden",
                'Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault '
                "service will automatically purge it after the retention period has passed.",
            )
        return JSONResponse(self._deleted_bundle(name, gone))

    async def _recover(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        name = request.path_params["name"]
        versions = self.vault.recover(name)
        if versions is None:
            return _error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return JSONResponse(self._bundle(name, versions[-1], value=False))

"""Function and master keys for HTTP ``authLevel`` checks, kept in a local JSON file like the host's secrets."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from azure.functions import AuthLevel

logger = logging.getLogger(__name__)


class KeysFileError(ValueError):
    """The keys file exists but does not have the expected shape."""


def _new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(40)).decode().rstrip("=") + "=="


@dataclass(frozen=True)
class HostKeys:
    """The keys file ``{"masterKey": "...", "functionKeys": {"default": "..."}}``.

    Any function key opens FUNCTION-level functions; the master key opens every level, ADMIN included.
    """

    master_key: str
    function_keys: dict[str, str]

    @classmethod
    def load_or_create(cls, path: Path) -> HostKeys:
        """Read ``path``; if it does not exist, write one with random keys (mode 0600) and log where."""
        if path.exists():
            return cls.parse(path.read_text(encoding="utf-8"), str(path))
        keys = cls(master_key=_new_key(), function_keys={"default": _new_key()})
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"masterKey": keys.master_key, "functionKeys": keys.function_keys}, handle, indent=2)
        logger.info("created function keys in %s", path)
        return keys

    @classmethod
    def parse(cls, text: str, source: str = "keys file") -> HostKeys:
        """Parse the JSON document; raises KeysFileError when a key is missing or not a string."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise KeysFileError(f"{source}: not valid JSON ({error})") from error
        if not isinstance(document, dict):
            raise KeysFileError(f"{source}: expected a JSON object")
        master = document.get("masterKey")
        function_keys = document.get("functionKeys") or {}
        if not isinstance(master, str) or not master:
            raise KeysFileError(f"{source}: masterKey must be a non-empty string")
        if not isinstance(function_keys, dict) or not all(
            isinstance(value, str) and value for value in function_keys.values()
        ):
            raise KeysFileError(f"{source}: functionKeys must map names to non-empty strings")
        return cls(master_key=master, function_keys={str(name): value for name, value in function_keys.items()})

    @property
    def default_function_key(self) -> str:
        """The key named ``default``, or the first function key, or the master key if there are none."""
        if "default" in self.function_keys:
            return self.function_keys["default"]
        return next(iter(self.function_keys.values()), self.master_key)

    def allows(self, level: AuthLevel, presented: str | None) -> bool:
        """Whether a request presenting ``presented`` (or nothing) may call a function of ``level``."""
        if level == AuthLevel.ANONYMOUS:
            return True
        if not presented:
            return False
        if _same(presented, self.master_key):
            return True
        if level == AuthLevel.ADMIN:
            return False
        return any(_same(presented, key) for key in self.function_keys.values())


def _same(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())

"""Where the CLI finds the API: its base URL and the function key, from flags, the environment or a file."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatcher.endpoints import api_url_problem
from dispatcher.entrypoints.client import ClientError

URL_ENV = "DISPATCHER_URL"
KEY_ENV = "DISPATCHER_KEY"
CONFIG_ENV = "DISPATCHER_CONFIG"
DEFAULT_CONFIG = Path("~/.config/aci-dispatcher/config.toml")


class ConfigurationError(ClientError):
    """The client has no API URL, or its configuration file cannot be read."""


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is (its base URL, ending in ``/api``) and the function key to present."""

    url: str
    key: str | None = field(default=None, repr=False)


def _config_file(environ: Mapping[str, str]) -> tuple[Path, bool]:
    """The configuration file to read, and whether it was named explicitly (and so must exist)."""
    named = environ.get(CONFIG_ENV)
    if named:
        return Path(named).expanduser(), True
    return DEFAULT_CONFIG.expanduser(), False


def _read_config(path: Path, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        if required:
            raise ConfigurationError(f"the configuration file {path} (from ${CONFIG_ENV}) does not exist") from None
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"the configuration file {path} is not valid TOML: {exc}") from None


def _text_setting(document: Mapping[str, Any], name: str, path: Path) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{path}: {name} must be a string")
    return value or None


def resolve_config(url: str | None, key: str | None, environ: Mapping[str, str] | None = None) -> ClientConfig:
    """The API URL and key, each from the first of: the flag, the environment, the configuration file.

    The environment is ``DISPATCHER_URL`` and ``DISPATCHER_KEY``; the file is ``$DISPATCHER_CONFIG`` or
    ``~/.config/aci-dispatcher/config.toml``, with top-level ``url`` and ``key``. The file is only read
    when a flag and the environment leave something unset. Raises :class:`ConfigurationError` when no
    URL is found, the file is unreadable, or a key would go over plain http to a host other than
    loopback; a missing key is allowed (the API then answers 401).
    """
    env = os.environ if environ is None else environ
    url = url or env.get(URL_ENV) or None
    key = key or env.get(KEY_ENV) or None
    path, required = _config_file(env)
    if url is None or key is None:
        document = _read_config(path, required)
        url = url or _text_setting(document, "url", path)
        key = key or _text_setting(document, "key", path)
    if url is None:
        raise ConfigurationError(f"no API URL: pass --url, set ${URL_ENV}, or set url in {path}")
    problem = api_url_problem(url, key is not None)
    if problem is not None:
        raise ConfigurationError(problem)
    return ClientConfig(url=url.rstrip("/"), key=key)

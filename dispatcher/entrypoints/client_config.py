"""Where the CLI finds the API: its base URL and the function key, from flags, the environment or a file; and the
file's other settings (the Service Bus namespace and queue), which ``dispatcher configure`` writes."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatcher.endpoints import api_url_problem
from dispatcher.entrypoints.client import ClientError
from dispatcher.entrypoints.client_auth import SignIn

URL_ENV = "DISPATCHER_URL"
KEY_ENV = "DISPATCHER_KEY"
CONFIG_ENV = "DISPATCHER_CONFIG"
DEFAULT_CONFIG = Path("~/.config/aci-dispatcher/config.toml")


class ConfigurationError(ClientError):
    """The client has no API URL, or its configuration file cannot be read."""


SIGN_IN_SETTINGS = {
    "scope": "DISPATCHER_SCOPE",
    "tenant": "DISPATCHER_TENANT",
    "sign_in": "DISPATCHER_SIGN_IN",
    "authority": "DISPATCHER_AUTHORITY",
    "dev_user": "DISPATCHER_DEV_USER",
    "ca_bundle": "DISPATCHER_CA_BUNDLE",
    "team": "DISPATCHER_TEAM",
}
"""Sign-in settings: each from its environment variable, else the configuration file's key of that name."""
METHODS = ("azure-cli", "device-code", "devstack")


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is (its base URL, ending in ``/api``), and how to sign in: Entra ID (``sign_in``) or the
    function key; and the team a caller in several teams submits for."""

    url: str
    key: str | None = field(default=None, repr=False)
    sign_in: SignIn | None = None
    team: str | None = None


def _sign_in(settings: Mapping[str, str | None], path: Path) -> SignIn | None:
    """The sign-in the settings describe: a scope is needed; the method is named, or devstack for a development
    user, or the Azure CLI's account."""
    scope = settings.get("scope")
    if scope is None:
        return None
    method = settings.get("sign_in") or ("devstack" if settings.get("dev_user") else "azure-cli")
    if method not in METHODS:
        raise ConfigurationError(f"{path}: sign_in must be one of {', '.join(METHODS)}, not {method!r}")
    if method == "devstack" and not (settings.get("authority") and settings.get("dev_user")):
        raise ConfigurationError("devstack sign-in needs the issuer ($DISPATCHER_AUTHORITY) and a user (--as)")
    return SignIn(
        method=method,  # type: ignore[arg-type]
        scope=scope,
        tenant=settings.get("tenant"),
        authority=settings.get("authority"),
        user=settings.get("dev_user"),
        ca_bundle=settings.get("ca_bundle"),
        record=path.with_name("account.json"),
    )


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
    document = _read_config(path, required)
    settings = {name: env.get(var) or _text_setting(document, name, path) for name, var in SIGN_IN_SETTINGS.items()}
    sign_in = None if key is not None else _sign_in(settings, path)  # a key given by flag or environment wins
    url = url or _text_setting(document, "url", path)
    if key is None and sign_in is None:
        key = _text_setting(document, "key", path)
    if url is None:
        raise ConfigurationError(f"no API URL: pass --url, set ${URL_ENV}, or set url in {path}")
    problem = api_url_problem(url, key is not None or sign_in is not None)
    if problem is not None:
        raise ConfigurationError(problem)
    return ClientConfig(url=url.rstrip("/"), key=key, sign_in=sign_in, team=settings.get("team"))


def config_settings(path: Path) -> dict[str, str]:
    """The configuration file's text settings (none when it does not exist); raises :class:`ConfigurationError`
    when it cannot be read."""
    return {k: v for k, v in _read_config(path, required=False).items() if isinstance(v, str)}


def config_setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A setting of the configuration file (``servicebus_namespace``, ``jobs_queue``), or ``None``."""
    path, required = _config_file(os.environ if environ is None else environ)
    return _text_setting(_read_config(path, required), name, path)


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the configuration file is read from (and ``dispatcher configure`` writes it)."""
    return _config_file(os.environ if environ is None else environ)[0]


def write_config(path: Path, settings: Mapping[str, str]) -> Path | None:
    """Write ``settings`` as the configuration file, readable by its owner only (it holds a key). A different file
    already there is kept beside it as ``.bak``, which is returned."""
    body = "".join(f"{name} = {json.dumps(value)}\n" for name, value in settings.items())  # TOML basic strings
    kept = None
    if path.exists() and path.read_text(errors="replace") != body:
        kept = path.with_name(path.name + ".bak")
        path.replace(kept)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(body)
    path.chmod(0o600)  # also when the file was there already
    return kept

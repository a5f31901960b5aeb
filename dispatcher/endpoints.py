"""Where a credential may be sent: every endpoint parsed as the HTTP stack parses it, then matched exactly.

azure-core sends through requests, which splits a URL with ``urllib3.util.parse_url``; so does this module. A
check that parses differently from the transport can be walked around: ``urlparse`` reads the host of
``https://HOST\\@management.azure.com`` as ``management.azure.com`` while urllib3 connects to ``HOST``. So an
endpoint is refused outright when it holds anything a parser could read two ways (userinfo, a backslash, a
percent sign, whitespace or a control character), a path, query or fragment where none belongs, or a port other
than the scheme's own; and with a real credential its host must be exactly the one its account, namespace or
vault gives in the configured cloud, never any host under a suffix (``*.cloudapp.azure.com`` is anyone's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

from dispatcher.domain.errors import UnsafeConfiguration
from dispatcher.domain.naming import LOOPBACK_HOSTS

if TYPE_CHECKING:
    from dispatcher.settings import DispatcherSettings


@dataclass(frozen=True)
class Cloud:
    """The endpoint suffixes of one Azure cloud."""

    arm: str
    storage: str
    vault: str
    servicebus: str
    monitor: tuple[str, ...] = ()
    """Application Insights' domains: its ingestion and live metrics endpoints are hosts under them."""
    login: str = "login.microsoftonline.com"
    """Entra ID's sign-in host: the only issuer of tokens the API accepts."""


CLOUDS = {
    "AzureCloud": Cloud(
        "management.azure.com",
        "core.windows.net",
        "vault.azure.net",
        "servicebus.windows.net",
        ("applicationinsights.azure.com", "monitor.azure.com"),
    ),
    "AzureUSGovernment": Cloud(
        "management.usgovcloudapi.net",
        "core.usgovcloudapi.net",
        "vault.usgovcloudapi.net",
        "servicebus.usgovcloudapi.net",
        ("applicationinsights.us", "monitor.azure.us"),
        "login.microsoftonline.us",
    ),
    "AzureChinaCloud": Cloud(
        "management.chinacloudapi.cn",
        "core.chinacloudapi.cn",
        "vault.azure.cn",
        "servicebus.chinacloudapi.cn",
        ("applicationinsights.azure.cn", "monitor.azure.cn"),
        "login.chinacloudapi.cn",
    ),
}
"""From ``az cloud show`` (endpoints.resourceManager and suffixes.storageEndpoint, keyvaultDns, serviceBus...,
endpoints.activeDirectory);
Application Insights' from its connection-string documentation (the valid endpoint suffixes of each cloud)."""

AMBIGUOUS = re.compile(r"[\\@%\s\x00-\x1f\x7f]")
VAULT_NAME = r"[a-z][a-z0-9-]{1,22}[a-z0-9]"
NAMESPACE = r"[a-z][a-z0-9-]{4,48}[a-z0-9]"
DEFAULT_PORTS = {"https": 443, "http": 80, "sb": None}


def parsed(name: str, url: str, *, schemes: tuple[str, ...], path: bool = False) -> Url:
    """``url`` as urllib3 reads it, or :class:`UnsafeConfiguration` naming the setting and what is wrong."""
    if AMBIGUOUS.search(url):
        raise UnsafeConfiguration(
            f"{name} holds userinfo, a backslash, a percent sign, whitespace or a control character: refused"
        )
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise UnsafeConfiguration(f"{name} is not a URL") from None
    if (parts.scheme or "").lower() not in schemes:
        raise UnsafeConfiguration(f"{name} must be a {' or '.join(schemes)} URL")
    if not parts.host or parts.auth is not None:
        raise UnsafeConfiguration(f"{name} must name a host and nothing before it")
    if parts.query is not None or parts.fragment is not None:
        raise UnsafeConfiguration(f"{name} must not have a query or a fragment")
    if not path and (parts.path or "/") != "/":
        raise UnsafeConfiguration(f"{name} must not have a path")
    return parts


def check_azure(name: str, url: str, expected: str | re.Pattern[str], *, scheme: str = "https") -> None:
    """Refuse ``url`` unless it is ``scheme://{expected host}`` on the scheme's own port."""
    parts = parsed(name, url, schemes=(scheme,))
    host = (parts.host or "").lower()
    ok = expected.fullmatch(host) if isinstance(expected, re.Pattern) else host == expected
    if not ok:
        wanted = expected.pattern if isinstance(expected, re.Pattern) else expected
        raise UnsafeConfiguration(
            f"{name}: the host {host!r} is not {wanted!r}; a real credential is only sent to the endpoint its "
            "account, vault or namespace gives (set DISPATCHER_CREDENTIAL=devstack for the local emulators)"
        )
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(scheme):
        raise UnsafeConfiguration(f"{name}: port {parts.port} is not the {scheme} port")


def check_loopback(name: str, url: str, *, path: bool = True) -> None:
    """Refuse ``url`` unless it is an http(s) URL of this machine (the emulators)."""
    parts = parsed(name, url, schemes=("http", "https", "sb"), path=path)
    if (parts.host or "").lower().strip("[]") not in LOOPBACK_HOSTS:
        raise UnsafeConfiguration(f"{name}: the devstack credential and keys are for loopback emulators only")


def vault_host(cloud: Cloud) -> re.Pattern[str]:
    return re.compile(rf"{VAULT_NAME}\.{re.escape(cloud.vault)}")


def namespace_host(cloud: Cloud) -> re.Pattern[str]:
    return re.compile(rf"{NAMESPACE}\.{re.escape(cloud.servicebus)}")


def monitor_host(cloud: Cloud) -> re.Pattern[str]:
    return re.compile(rf"([a-z0-9-]+\.)+({'|'.join(re.escape(domain) for domain in cloud.monitor)})")


def storage_host(account: str, service: str, cloud: Cloud) -> str:
    return f"{account}.{service}.{cloud.storage}"


def connection_string_endpoints(connection: str) -> dict[str, str]:
    """The endpoints a storage or Service Bus connection string sends to, by key (``BlobEndpoint``, ``Endpoint``,
    or the ones ``AccountName`` and ``EndpointSuffix`` give)."""
    fields: dict[str, str] = {}
    for part in connection.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    found = {k: v for k, v in fields.items() if k in ("BlobEndpoint", "TableEndpoint", "FileEndpoint", "Endpoint")}
    account, suffix = fields.get("AccountName"), fields.get("EndpointSuffix")
    if account and suffix:
        protocol = fields.get("DefaultEndpointsProtocol", "https")
        for service in ("blob", "table", "file"):
            found.setdefault(f"{service.capitalize()}Endpoint", f"{protocol}://{account}.{service}.{suffix}")
    return found


def telemetry_endpoints(connection: str) -> dict[str, str]:
    """The endpoints an Application Insights connection string sends telemetry to (with an Entra ID token when
    ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` asks for one), by key."""
    fields = {k.strip(): v.strip() for k, sep, v in (part.partition("=") for part in connection.split(";")) if sep}
    return {key: fields[key] for key in ("IngestionEndpoint", "LiveEndpoint") if fields.get(key)}


def api_url_problem(url: str, key: bool) -> str | None:
    """Why the CLI must not send its function key to ``url``, or ``None``: a URL that could be read two ways, or
    plain http to anything but this machine."""
    try:
        parts = parsed("the API URL", url, schemes=("http", "https"), path=True)
    except UnsafeConfiguration as exc:
        return str(exc)
    host = (parts.host or "").lower().strip("[]")
    if key and parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return f"refusing to send the function key in clear text to {url}: use https://"
    return None


def authority_of(settings: DispatcherSettings) -> str:
    """The issuer tokens must name: the setting, checked to be the cloud's sign-in host (loopback for devstack),
    or the cloud's default for the tenant."""
    cloud = CLOUDS[settings.cloud]
    authority = settings.auth_authority.rstrip("/") or f"https://{cloud.login}/{settings.auth_tenant_id}/v2.0"
    if settings.credential == "devstack":
        check_loopback("DISPATCHER_AUTH_AUTHORITY", authority)
        return authority
    parts = parsed("DISPATCHER_AUTH_AUTHORITY", authority, schemes=("https",), path=True)
    if (parts.host or "").lower() != cloud.login or parts.port not in (None, 443):
        raise UnsafeConfiguration(f"DISPATCHER_AUTH_AUTHORITY: only tokens issued by https://{cloud.login} are trusted")
    return authority

"""App settings for the local Functions runner: local.settings.json, host.json, %Setting% and connections.

Connection rule (the same names work in Azure and locally). For a binding ``connection="C"``:

1. a setting ``C`` is a connection string and is used as given;
2. otherwise a setting ``C__fullyQualifiedNamespace`` means an identity-based connection, which the
   runner cannot authenticate locally, so it is mapped to the devstack Service Bus emulator's connection
   string handed to the runner (``servicebus_connection``);
3. otherwise the binding cannot connect and the runner refuses to start.

An empty ``connection`` means ``AzureWebJobsServiceBus``, as in the host.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

DEFAULT_SERVICEBUS_CONNECTION = "AzureWebJobsServiceBus"
_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2}):(?P<seconds>\d{1,2}(?:\.\d+)?)$")


class SettingsError(ValueError):
    """A setting the function app needs is missing or malformed."""


@dataclass(frozen=True)
class LocalSettings:
    """The parts of ``local.settings.json`` the runner uses."""

    values: dict[str, str] = field(default_factory=dict)
    local_http_port: int | None = None

    @classmethod
    def load(cls, path: Path) -> LocalSettings:
        """Read ``path``; a missing file means no settings. Raises SettingsError when it is not valid."""
        if not path.exists():
            return cls()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise SettingsError(f"{path.name}: not valid JSON ({error})") from error
        if not isinstance(document, dict):
            raise SettingsError(f"{path.name}: expected a JSON object")
        if document.get("IsEncrypted") is True:
            raise SettingsError(f"{path.name}: encrypted settings are not supported locally")
        raw_values = document.get("Values", {})
        if not isinstance(raw_values, dict):
            raise SettingsError(f"{path.name}: Values must be an object")
        values = {str(key): _setting_text(value) for key, value in raw_values.items()}
        host = document.get("Host", {})
        port = host.get("LocalHttpPort") if isinstance(host, dict) else None
        return cls(values=values, local_http_port=int(port) if port is not None else None)


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class AppSettings(Mapping[str, str]):
    """Settings as the app sees them: explicit ones, then the process environment, then local.settings.json."""

    def __init__(self, local: Mapping[str, str], explicit: Mapping[str, str] | None = None) -> None:
        self._local = dict(local)
        self._explicit = dict(explicit or {})
        self._saved: dict[str, str | None] | None = None

    def __getitem__(self, key: str) -> str:
        if key in self._explicit:
            return self._explicit[key]
        if key in os.environ:
            return os.environ[key]
        return self._local[key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._explicit, *os.environ, *self._local]))

    def __len__(self) -> int:
        return len(set(self._explicit) | set(os.environ) | set(self._local))

    def apply_to_environment(self) -> None:
        """Put the settings into ``os.environ`` like the host: explicit ones always, file ones only where unset.

        ``restore_environment`` undoes exactly these changes.
        """
        saved: dict[str, str | None] = {}
        for key, value in self._local.items():
            if key not in os.environ and key not in self._explicit:
                saved[key] = None
                os.environ[key] = value
        for key, value in self._explicit.items():
            saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        self._saved = saved

    def restore_environment(self) -> None:
        """Put back the environment as it was before ``apply_to_environment``."""
        for key, previous in (self._saved or {}).items():
            if previous is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = previous
        self._saved = None

    def resolve(self, expression: str) -> str:
        """Replace every ``%Name%`` in ``expression`` by the setting ``Name``; raises SettingsError if unset."""

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self:
                raise SettingsError(f"the binding expression %{name}% names a setting that is not set")
            return self[name]

        return _SETTING_EXPRESSION.sub(lookup, expression)

    def servicebus_connection_string(self, connection: str | None, emulator_connection: str | None) -> str:
        """The connection string for a Service Bus binding's ``connection`` (rule in this module's docstring)."""
        name = connection or DEFAULT_SERVICEBUS_CONNECTION
        direct = self.get(name)
        if direct:
            return direct
        namespace = self.get(f"{name}__fullyQualifiedNamespace")
        if namespace:
            if emulator_connection is None:
                raise SettingsError(
                    f"connection {name!r} is identity-based ({name}__fullyQualifiedNamespace={namespace}); "
                    "locally it needs the emulator connection string passed to the runner"
                )
            return emulator_connection
        raise SettingsError(f"connection {name!r}: set {name} (a connection string) or {name}__fullyQualifiedNamespace")


@dataclass(frozen=True)
class ServiceBusOptions:
    """``host.json`` ``extensions.serviceBus`` options the runner honours, with the host's defaults."""

    max_concurrent_calls: int = 16
    max_auto_lock_renewal: timedelta = timedelta(minutes=5)
    auto_complete_messages: bool = True
    prefetch_count: int = 0
    max_message_batch_size: int = 1000


@dataclass(frozen=True)
class HostOptions:
    """The parts of ``host.json`` the runner honours."""

    route_prefix: str = "api"
    servicebus: ServiceBusOptions = field(default_factory=ServiceBusOptions)
    functions: tuple[str, ...] | None = None

    @classmethod
    def load(cls, path: Path) -> HostOptions:
        """Read ``host.json``; a missing file means the host's defaults. Raises SettingsError when malformed."""
        if not path.exists():
            return cls()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise SettingsError(f"{path.name}: not valid JSON ({error})") from error
        return cls.from_document(document)

    @classmethod
    def from_document(cls, document: Any) -> HostOptions:
        """Build options from a parsed ``host.json`` document."""
        if not isinstance(document, dict):
            raise SettingsError("host.json: expected a JSON object")
        extensions = _section(document, "extensions")
        http = _section(extensions, "http")
        bus = _section(extensions, "serviceBus")
        defaults = ServiceBusOptions()
        prefix = http.get("routePrefix", "api")
        servicebus = ServiceBusOptions(
            max_concurrent_calls=int(bus.get("maxConcurrentCalls", defaults.max_concurrent_calls)),
            max_auto_lock_renewal=parse_timespan(
                str(bus.get("maxAutoLockRenewalDuration", "00:05:00")), "maxAutoLockRenewalDuration"
            ),
            auto_complete_messages=bool(bus.get("autoCompleteMessages", defaults.auto_complete_messages)),
            prefetch_count=int(bus.get("prefetchCount", defaults.prefetch_count)),
            max_message_batch_size=int(bus.get("maxMessageBatchSize", defaults.max_message_batch_size)),
        )
        if servicebus.max_concurrent_calls < 1:
            raise SettingsError("host.json: extensions.serviceBus.maxConcurrentCalls must be at least 1")
        listed = document.get("functions")
        if listed is not None and not (isinstance(listed, list) and all(isinstance(name, str) for name in listed)):
            raise SettingsError("host.json: functions must be a list of function names")
        return cls(
            route_prefix=str(prefix).strip("/"),
            servicebus=servicebus,
            functions=tuple(listed) if listed is not None else None,
        )


def _section(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError(f"host.json: {key} must be an object")
    return value


def parse_timespan(text: str, what: str = "timespan") -> timedelta:
    """Parse a .NET TimeSpan such as ``00:05:00`` or ``1.02:00:00``; raises SettingsError otherwise."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise SettingsError(f"{what}: {text!r} is not a timespan like 00:05:00")
    return timedelta(
        days=int(match.group("days") or 0),
        hours=int(match.group("hours")),
        minutes=int(match.group("minutes")),
        seconds=float(match.group("seconds")),
    )

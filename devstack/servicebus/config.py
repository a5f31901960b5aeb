"""Load entity declarations shaped like the official Service Bus emulator's Config.json."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from devstack.servicebus.filters import SYSTEM_FIELDS, Rule

NAMESPACE = "sbemulatorns"

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class ConfigError(ValueError):
    """The emulator configuration is malformed or asks for something the emulator does not support."""


def parse_duration(text: str, *, where: str) -> timedelta:
    """Parse an ISO 8601 duration such as ``PT1M`` or ``P1DT2H30.5S``.

    Years and months are refused because their length is not fixed. ``where`` names the field in errors.
    """
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None or text.strip().upper() in {"P", "PT"} or text.strip().upper().endswith("T"):
        raise ConfigError(f"{where}: {text!r} is not an ISO 8601 duration like 'PT1M' or 'P1DT2H'")
    parts = {name: float(value) for name, value in match.groupdict().items() if value is not None}
    return timedelta(**parts)


@dataclass(frozen=True)
class EntityProperties:
    """Behaviour of one queue or subscription (and the send side of a topic)."""

    lock_duration: timedelta = timedelta(minutes=1)
    max_delivery_count: int = 10
    default_message_ttl: timedelta = timedelta(hours=1)
    duplicate_detection_window: timedelta = timedelta(seconds=20)
    requires_duplicate_detection: bool = False
    dead_lettering_on_message_expiration: bool = False


@dataclass(frozen=True)
class SubscriptionConfig:
    """A topic subscription; it receives a copy of every message sent to its topic."""

    name: str
    properties: EntityProperties
    rules: tuple[Rule, ...] | None = None


@dataclass(frozen=True)
class TopicConfig:
    """A topic and its subscriptions."""

    name: str
    properties: EntityProperties
    subscriptions: tuple[SubscriptionConfig, ...] = ()


@dataclass(frozen=True)
class QueueConfig:
    """A queue."""

    name: str
    properties: EntityProperties


@dataclass(frozen=True)
class NamespaceConfig:
    """Every entity the emulator serves."""

    name: str = NAMESPACE
    queues: tuple[QueueConfig, ...] = ()
    topics: tuple[TopicConfig, ...] = field(default_factory=tuple)


_KNOWN_PROPERTIES = {
    "LockDuration",
    "MaxDeliveryCount",
    "DefaultMessageTimeToLive",
    "DuplicateDetectionHistoryTimeWindow",
    "RequiresDuplicateDetection",
    "DeadLetteringOnMessageExpiration",
    "RequiresSession",
    "ForwardTo",
    "ForwardDeadLetteredMessagesTo",
}


def _properties(raw: Any, *, where: str) -> EntityProperties:
    if raw is None:
        return EntityProperties()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}.Properties: expected an object, got {type(raw).__name__}")
    unknown = set(raw) - _KNOWN_PROPERTIES
    if unknown:
        raise ConfigError(f"{where}.Properties: unknown keys {sorted(unknown)}; known are {sorted(_KNOWN_PROPERTIES)}")
    if raw.get("RequiresSession"):
        raise ConfigError(f"{where}.Properties.RequiresSession: sessions are not supported by this emulator")
    for forward in ("ForwardTo", "ForwardDeadLetteredMessagesTo"):
        if raw.get(forward):
            raise ConfigError(f"{where}.Properties.{forward}: auto-forwarding is not supported by this emulator")
    defaults = EntityProperties()
    max_delivery = raw.get("MaxDeliveryCount", defaults.max_delivery_count)
    if not isinstance(max_delivery, int) or isinstance(max_delivery, bool) or max_delivery < 1:
        raise ConfigError(f"{where}.Properties.MaxDeliveryCount: {max_delivery!r} must be an integer >= 1")

    def duration(key: str, default: timedelta) -> timedelta:
        value = raw.get(key)
        if value is None:
            return default
        parsed = parse_duration(value, where=f"{where}.Properties.{key}")
        if parsed <= timedelta(0):
            raise ConfigError(f"{where}.Properties.{key}: {value!r} must be longer than zero")
        return parsed

    def flag(key: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}.Properties.{key}: {value!r} must be true or false")
        return value

    return EntityProperties(
        lock_duration=duration("LockDuration", defaults.lock_duration),
        max_delivery_count=max_delivery,
        default_message_ttl=duration("DefaultMessageTimeToLive", defaults.default_message_ttl),
        duplicate_detection_window=duration("DuplicateDetectionHistoryTimeWindow", defaults.duplicate_detection_window),
        requires_duplicate_detection=flag("RequiresDuplicateDetection", defaults.requires_duplicate_detection),
        dead_lettering_on_message_expiration=flag(
            "DeadLetteringOnMessageExpiration", defaults.dead_lettering_on_message_expiration
        ),
    )


def _name(raw: Mapping[str, Any], *, where: str) -> str:
    name = raw.get("Name")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("$"):
        raise ConfigError(f"{where}.Name: {name!r} must be a non-empty name without '/' that does not start with '$'")
    return name


def _rules(raw: Any, *, where: str) -> tuple[Rule, ...] | None:
    """Parse subscription rules; ``None`` when there are none (the subscription then receives everything)."""
    if not raw:
        return None
    if not isinstance(raw, list):
        raise ConfigError(f"{where}.Rules: expected a list of rules")
    rules: list[Rule] = []
    for index, rule in enumerate(raw):
        at = f"{where}.Rules[{index}]"
        properties = rule.get("Properties") if isinstance(rule, Mapping) else None
        if not isinstance(properties, Mapping):
            raise ConfigError(f"{at}.Properties: expected an object with a FilterType")
        name = str(rule.get("Name", f"rule-{index}"))
        filter_type = str(properties.get("FilterType", ""))
        if filter_type == "Correlation":
            rules.append(_correlation_rule(name, properties.get("CorrelationFilter"), where=f"{at}.Properties"))
        elif filter_type == "Sql" and _is_match_all_sql(properties):
            rules.append(Rule(name))
        elif filter_type == "Sql":
            raise ConfigError(
                f"{at}.Properties.SqlFilter: SQL filters other than '1=1' are not supported by this emulator; "
                "use a Correlation filter"
            )
        else:
            raise ConfigError(f"{at}.Properties.FilterType: {filter_type!r} must be 'Correlation' or 'Sql'")
    return tuple(rules)


def _correlation_rule(name: str, raw: Any, *, where: str) -> Rule:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}.CorrelationFilter: expected an object with at least one field")
    unknown = set(raw) - set(SYSTEM_FIELDS) - {"Properties"}
    if unknown:
        known = sorted([*SYSTEM_FIELDS, "Properties"])
        raise ConfigError(f"{where}.CorrelationFilter: unknown keys {sorted(unknown)}; known are {known}")
    system = tuple((SYSTEM_FIELDS[key], str(value)) for key, value in raw.items() if key in SYSTEM_FIELDS)
    properties = raw.get("Properties") or {}
    if not isinstance(properties, Mapping):
        raise ConfigError(f"{where}.CorrelationFilter.Properties: expected an object")
    return Rule(name, system, tuple(properties.items()))


def _is_match_all_sql(properties: Mapping[str, Any]) -> bool:
    sql = (properties.get("SqlFilter") or {}).get("SqlExpression", "")
    return isinstance(sql, str) and sql.replace(" ", "") == "1=1"


def load_config(source: Mapping[str, Any] | Path | str) -> NamespaceConfig:
    """Read a Config.json document (a dict, or the path of a JSON file) into a ``NamespaceConfig``.

    Raises ``ConfigError`` naming the offending field when the document is malformed, declares two
    entities with the same (case-insensitive) name, or asks for sessions, forwarding or SQL filters.
    """
    if isinstance(source, (str, Path)):
        document: Any = json.loads(Path(source).read_text(encoding="utf-8"))
    else:
        document = source
    user = document.get("UserConfig") if isinstance(document, Mapping) else None
    if not isinstance(user, Mapping):
        raise ConfigError("UserConfig: missing; expected {'UserConfig': {'Namespaces': [...]}}")
    namespaces = user.get("Namespaces")
    if not isinstance(namespaces, list) or len(namespaces) != 1:
        raise ConfigError("UserConfig.Namespaces: expected a list with exactly one namespace")
    namespace = namespaces[0]
    where = "UserConfig.Namespaces[0]"
    queues: list[QueueConfig] = []
    for index, raw_queue in enumerate(namespace.get("Queues") or ()):
        at = f"{where}.Queues[{index}]"
        queues.append(QueueConfig(_name(raw_queue, where=at), _properties(raw_queue.get("Properties"), where=at)))
    topics: list[TopicConfig] = []
    for index, raw_topic in enumerate(namespace.get("Topics") or ()):
        at = f"{where}.Topics[{index}]"
        subscriptions: list[SubscriptionConfig] = []
        for sub_index, raw_sub in enumerate(raw_topic.get("Subscriptions") or ()):
            sub_at = f"{at}.Subscriptions[{sub_index}]"
            subscriptions.append(
                SubscriptionConfig(
                    _name(raw_sub, where=sub_at),
                    _properties(raw_sub.get("Properties"), where=sub_at),
                    _rules(raw_sub.get("Rules"), where=sub_at),
                )
            )
        _unique((s.name for s in subscriptions), where=f"{at}.Subscriptions")
        topics.append(
            TopicConfig(
                _name(raw_topic, where=at), _properties(raw_topic.get("Properties"), where=at), tuple(subscriptions)
            )
        )
    _unique([q.name for q in queues] + [t.name for t in topics], where=f"{where}.Queues/Topics")
    return NamespaceConfig(name=str(namespace.get("Name", NAMESPACE)), queues=tuple(queues), topics=tuple(topics))


def _unique(names: Iterable[str], *, where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise ConfigError(f"{where}: {name!r} is declared twice (names are case-insensitive)")
        seen.add(name.lower())


def _entity_json(name: str, properties: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"Name": name, "Properties": dict(properties or {})}


def default_config(
    queues: Mapping[str, Mapping[str, Any] | None] | Iterable[str] = (),
    topics: Mapping[str, Iterable[str] | Mapping[str, Mapping[str, Any] | None]] | None = None,
    *,
    namespace: str = NAMESPACE,
) -> dict[str, Any]:
    """Build a Config.json document.

    ``queues`` is a list of names or a mapping of name to Config.json ``Properties`` (e.g.
    ``{"jobs": {"MaxDeliveryCount": 3, "LockDuration": "PT5S"}}``). ``topics`` maps a topic name to its
    subscription names, or to a mapping of subscription name to ``Properties``.
    """
    queue_items = queues.items() if isinstance(queues, Mapping) else ((name, None) for name in queues)
    topic_documents: list[dict[str, Any]] = []
    for topic, subscriptions in (topics or {}).items():
        sub_items = (
            subscriptions.items() if isinstance(subscriptions, Mapping) else ((name, None) for name in subscriptions)
        )
        topic_documents.append(
            {
                "Name": topic,
                "Properties": {},
                "Subscriptions": [_entity_json(name, props) for name, props in sub_items],
            }
        )
    return {
        "UserConfig": {
            "Namespaces": [
                {
                    "Name": namespace,
                    "Queues": [_entity_json(name, props) for name, props in queue_items],
                    "Topics": topic_documents,
                }
            ],
            "Logging": {"Type": "File"},
        }
    }

"""Subscription rules: correlation filters (and match-all rules) evaluated against a message's fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Config.json CorrelationFilter keys -> MessageFacts attribute names.
SYSTEM_FIELDS = {
    "ContentType": "content_type",
    "CorrelationId": "correlation_id",
    "Label": "subject",
    "MessageId": "message_id",
    "ReplyTo": "reply_to",
    "ReplyToSessionId": "reply_to_session_id",
    "SessionId": "session_id",
    "To": "to",
}


@dataclass(frozen=True)
class Rule:
    """One subscription rule. With no conditions it matches every message (like ``1=1`` or a TrueFilter)."""

    name: str
    system: tuple[tuple[str, str], ...] = ()
    properties: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def matches(self, fields: Mapping[str, Any], application_properties: Mapping[str, Any]) -> bool:
        """True when every system field and application property named by the rule equals the message's."""
        for attribute, expected in self.system:
            if fields.get(attribute) != expected:
                return False
        for name, expected in self.properties:
            if name not in application_properties or not _same(application_properties[name], expected):
                return False
        return True


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        return actual == expected
    return str(actual) == str(expected)


def accepts(rules: tuple[Rule, ...] | None, fields: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
    """Whether a subscription with ``rules`` (``None``: no rules, receives everything) takes the message."""
    return rules is None or any(rule.matches(fields, properties) for rule in rules)

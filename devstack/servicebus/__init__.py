"""A Service Bus emulator speaking AMQP 1.0 on loopback, for the unmodified azure-servicebus SDK."""

from devstack.servicebus.config import ConfigError, default_config, load_config
from devstack.servicebus.emulator import SAS_KEY_NAME, SAS_KEY_VALUE, ServiceBusEmulator
from devstack.servicebus.store import EntityCounts, MessageSummary

__all__ = [
    "SAS_KEY_NAME",
    "SAS_KEY_VALUE",
    "ConfigError",
    "EntityCounts",
    "MessageSummary",
    "ServiceBusEmulator",
    "default_config",
    "load_config",
]

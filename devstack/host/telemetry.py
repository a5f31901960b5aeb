"""What the Functions Python worker does for telemetry, done by the runner.

With ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`` the worker configures the Azure Monitor OpenTelemetry
distro once, at start-up and before any invocation, from ``APPLICATIONINSIGHTS_CONNECTION_STRING`` and
``PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME`` (azure-functions-python-worker, ``otel.initialize_azure_monitor``); the
app only uses the OpenTelemetry API. The runner does the same, with two differences for a machine without Azure:
the connection string's endpoints must be this machine's (a local stand-in for the ingestion endpoint), and the
exporter's own calls to Microsoft (its SDK statistics and its control plane) are turned off. The worker also runs
each invocation in the host's trace context; the runner has no host spans, so the app's spans are the roots here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from devstack.host.settings import SettingsError
from dispatcher.endpoints import check_loopback, telemetry_endpoints

ENABLE = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
CONNECTION = "APPLICATIONINSIGHTS_CONNECTION_STRING"
LOGGER = "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"
OFF_MACHINE = ("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED")

logger = logging.getLogger("devstack.host")
_configured = False


def configure_like_the_worker(settings: Mapping[str, str]) -> bool:
    """Configure the distro as the worker would; ``False`` when the app's settings do not ask for it. OpenTelemetry
    takes its providers once per process, so a second runner in the same process shares the first's."""
    global _configured  # noqa: PLW0603 - the providers are the process's, set once
    if (settings.get(ENABLE) or "").lower() != "true":
        return False
    if _configured:
        return True
    connection = settings.get(CONNECTION) or ""
    found = telemetry_endpoints(connection)
    if "IngestionEndpoint" not in found:
        raise SettingsError(f"{ENABLE} is true, but {CONNECTION} names no IngestionEndpoint of this machine")
    for key, url in found.items():
        check_loopback(f"{CONNECTION} {key}", url)
    for name in OFF_MACHINE:
        os.environ.setdefault(name, "true")
    from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415 - only when asked for

    configure_azure_monitor(connection_string=connection, logger_name=settings.get(LOGGER) or "")
    _configured = True
    logger.info("telemetry goes to %s, as the worker would send it", found["IngestionEndpoint"])
    return True

"""Telemetry end to end: ``python -m devstack`` with the settings Azure gives the app (the worker's
``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY``, a connection string), the Azure Monitor distro exporting to a
loopback stand-in for Application Insights' ingestion endpoint. A job submitted over HTTP is one trace through
Service Bus, intake, ARM and its finish; the reconciler's metrics arrive.

The stack runs in a process of its own, since OpenTelemetry's providers are set once per process.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.stack import ROOT
from dispatcher.service import telemetry
from tests.fixtures.ingestion import Ingestion, ingestion_stub

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ingestion, str, str]]:
    with ingestion_stub() as ingestion:
        port = free_port()
        env = {
            **os.environ,
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
            "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME": "dispatcher",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # export spans within a fifth of a second, metrics every second
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            # Every trace: the distro's default keeps five a second, and the runner's own storage calls (its
            # locks, in this process) would take the job's place.
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_SERVICE_NAME": "func-dispatcher",
        }
        state = tmp_path_factory.mktemp("telemetry-stack")
        log = (state / "devstack.log").open("w+")
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "--state-dir", str(state / "s"), "--port", str(port), "--fresh"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            printed = wait_until(lambda: _key(Path(log.name)), 120, "devstack to come up")
            yield ingestion, f"http://127.0.0.1:{port}/api", printed
        finally:
            process.terminate()
            process.wait(timeout=60)
            log.close()


def _key(log: Path) -> str | None:
    found = re.search(r"function key\s+(\S+)", log.read_text())
    return found.group(1) if found else None


def test_a_job_submitted_over_http_is_one_trace_through_service_bus_intake_arm_and_its_finish(
    stack: tuple[Ingestion, str, str],
) -> None:
    ingestion, url, key = stack
    headers = {"x-functions-key": key}
    spec = {"id": "traced-e2e", "image": "busybox", "command": ["sh", "-c", "echo traced"]}
    assert requests.post(f"{url}/keyed/jobs", json=spec, headers=headers, timeout=30).status_code == 202

    def ended() -> bool:
        answer = requests.get(f"{url}/keyed/jobs/traced-e2e", headers=headers, timeout=30).json()
        return bool(answer["status"] == "Succeeded")

    wait_until(ended, 120, "the job to succeed")
    mine = wait_until(
        lambda: _trace_with(ingestion, "dispatcher.submit", "traced-e2e", "dispatcher.Finish"), 60, "the job's spans"
    )
    names = {span["name"] for span in mine}
    assert {"dispatcher.submit", "dispatcher.intake", "dispatcher.launch", "dispatcher.Finish"} <= names
    # The Azure SDKs' own spans are in it too: the Service Bus send, and ARM's create of the container group
    assert any("ServiceBus" in span["name"] for span in mine), names
    assert any("begin_create_or_update" in span["name"] for span in mine), names
    assert not any("traced" in str(span.get("data", "")) and "echo" in str(span.get("data", "")) for span in mine)


def test_the_reconciler_metrics_arrive(stack: tuple[Ingestion, str, str]) -> None:
    ingestion, _, _ = stack
    wanted = {telemetry.RECONCILE_DURATION, telemetry.QUEUE_DEPTH, telemetry.DEAD_LETTERS, telemetry.POOL_UTILIZATION}
    arrived = wait_until(
        lambda: ingestion.metric_names() if wanted <= ingestion.metric_names() else None, 60, "metrics"
    )
    assert wanted <= arrived


def _trace_with(ingestion: Ingestion, root: str, job_id: str, last: str) -> list[dict[str, Any]] | None:
    """The spans of the trace whose ``root`` span names ``job_id``, once its ``last`` span has arrived."""
    spans = ingestion.spans()
    traces = {
        s["trace"] for s in spans if s["name"] == root and s.get("properties", {}).get("dispatcher.job_id") == job_id
    }
    for trace in traces:
        mine = [s for s in spans if s["trace"] == trace]
        if any(s["name"] == last for s in mine):
            return mine
    return None

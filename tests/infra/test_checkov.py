"""checkov finds no failed check in infra/, and every check it skips is justified in .checkov.yaml.

checkov reads Bicep with pycep, which does not know ``extension`` declarations: a file declaring one (the Microsoft
Graph resources of the API's app registration) would be a parsing error. Those files are kept out of the scan, and a
test here makes sure they hold Microsoft Graph resources only, for which checkov has no checks anyway.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.templates import REPO, bicep_files, extensions, symbols

CHECKOV = REPO / ".venv-infra" / "bin" / "checkov"
CONFIG = REPO / ".checkov.yaml"


def extension_files() -> list[Path]:
    """The templates that declare a Bicep extension, which checkov's parser cannot read."""
    return [path for path in bicep_files() if extensions(path)]


def skipped_checks_with_reasons() -> dict[str, str]:
    """Each check id under ``skip-check`` in .checkov.yaml with the comment on its line (empty if none)."""
    reasons: dict[str, str] = {}
    for line in CONFIG.read_text().splitlines():
        match = re.match(r"^\s*-\s*(CKV2?_[A-Z]+_\d+)\s*(?:#\s*(.*))?$", line)
        if match:
            reasons[match.group(1)] = (match.group(2) or "").strip()
    return reasons


def test_every_skipped_check_has_a_one_line_justification() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    reasons = skipped_checks_with_reasons()
    assert set(config["skip-check"]) == set(reasons)
    for check, reason in reasons.items():
        assert len(reason) > 20, f"{check} needs a justification comment on its line"


def test_the_files_checkov_cannot_read_hold_only_microsoft_graph_resources() -> None:
    # Given the templates that declare an extension, When reading them,
    files = extension_files()
    assert [path.name for path in files] == ["api-registration.bicep"]
    for path in files:
        # Then each declares the Microsoft Graph extension, and only Microsoft Graph resources: nothing checkov checks.
        assert extensions(path) == ["microsoftGraphV1"], path.name
        assert not symbols(path, "modules"), path.name
        types = {resource["type"] for resource in symbols(path, "resources").values()}
        assert types, path.name
        assert all(t.startswith("Microsoft.Graph/") for t in types), (path.name, types)


def test_checkov_scans_the_bicep_in_infra_offline() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["directory"] == ["infra"]
    assert config["framework"] == ["bicep"]
    assert config["skip-download"] is True


@pytest.mark.slow
def test_checkov_reports_no_failed_checks() -> None:
    # Given checkov installed in .venv-infra (make creates it from requirements-infra.txt),
    if not CHECKOV.exists():
        pytest.skip(
            ".venv-infra is absent: create it with `python3 -m venv .venv-infra && "
            ".venv-infra/bin/pip install -r requirements-infra.txt`"
        )
    # When it scans infra/ with the project's configuration, but for the files its parser cannot read,
    skipped = [arg for path in extension_files() for arg in ("--skip-path", re.escape(str(path.relative_to(REPO))))]
    completed = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "--output", "json", *skipped],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report: dict[str, Any] = json.loads(completed.stdout)
    summary = report["summary"]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    # Then every template was parsed, resources were checked, and none failed.
    assert summary["parsing_errors"] == 0, completed.stdout[-2000:]
    assert summary["resource_count"] > 0
    assert summary["passed"] > 0
    assert not failed, "\n".join(failed)
    assert completed.returncode == 0, completed.stderr[-2000:]

"""The CLI installs on its own (``pip install .[cli]``), without the app's server packages, and works."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from devstack.stack import ROOT

SERVER_ONLY = ("azure-functions", "azure-data-tables", "azure-storage-blob", "azure-storage-file-share")
SERVER_ONLY += ("azure-keyvault-secrets", "cachetools")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            found[name.lower()] = version
    return found


def test_the_shared_packages_and_the_clis_are_pinned_as_the_app_and_the_dev_tools_pin_them() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    shared = dict(dep.lower().split("==") for dep in project["dependencies"])
    app, dev, cli = (pins(ROOT / name) for name in ("requirements.txt", "requirements-dev.txt", "requirements-cli.txt"))
    assert {name: app.get(name) for name in shared} == shared
    assert {name: dev.get(name) for name in cli} == cli
    assert not set(shared) & {name.lower() for name in SERVER_ONLY}


@pytest.mark.slow
def test_pip_install_cli_gives_a_working_cli_without_the_server_packages(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt", "requirements-cli.txt"):
        shutil.copy(ROOT / name, source / name)
    for package in ("dispatcher", "devstack"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{source}[cli]"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list"], capture_output=True, text=True, check=True
    )
    installed = {line.split()[0].lower() for line in listed.stdout.splitlines()[2:]}
    assert not installed & set(SERVER_ONLY)
    assert {"typer", "rich", "requests", "azure-servicebus", "azure-identity"} <= installed

    def dispatcher(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "dispatcher"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )

    assert re.fullmatch(r"dispatcher \S+\n", dispatcher("--version").stdout)
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*.yaml"))
    checked = dispatcher("validate", "--offline", *examples)
    assert (checked.returncode, checked.stdout.count("✓")) == (0, len(examples)), checked.stderr
    rendered = dispatcher("render", str(ROOT / "examples" / "hello.yaml"), "--offline")
    assert rendered.returncode == 0, rendered.stderr
    assert '"containers"' in rendered.stdout
    refused = dispatcher("submit", examples[0], "--via", "servicebus", "--servicebus-namespace", "evil.example.com")
    assert refused.returncode == 2
    assert "--servicebus-namespace" in refused.stderr
    unreachable = dispatcher("status", "x", "--url", "http://127.0.0.1:9/api", "--key", "k")
    assert unreachable.returncode == 3
    assert "cannot connect" in unreachable.stderr

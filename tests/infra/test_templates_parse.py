"""Every Bicep template parses with pycep, the parser checkov uses (checkov skips files it cannot parse)."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.infra.templates import INFRA, REPO, bicep_files, parse


def test_the_infra_folder_has_the_azd_layout() -> None:
    # Given the azd layout, When listing infra/, Then main, its parameters, abbreviations, app/ and core/ are there.
    assert (INFRA / "main.bicep").is_file()
    assert (INFRA / "main.parameters.json").is_file()
    assert (INFRA / "abbreviations.json").is_file()
    assert list((INFRA / "app").glob("*.bicep"))
    assert list((INFRA / "core").rglob("*.bicep"))


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(Path(p).relative_to(INFRA)))
def test_template_parses(path: Path) -> None:
    # Given a template, When pycep parses it, Then it yields at least one resource, module or output.
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules") or parsed.get("outputs"), f"{path} declares nothing"


def test_the_parser_here_is_the_one_checkov_runs() -> None:
    # Given requirements-infra.txt pins pycep-parser to checkov's own pin,
    # When comparing with the pycep-parser these tests import, Then the versions are the same.
    pins = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO / "requirements-infra.txt").read_text(), flags=re.MULTILINE)
    )
    assert pins["pycep-parser"] == version("pycep-parser")


def test_every_main_module_path_exists() -> None:
    # Given main.bicep and the app modules, When resolving each local module path, Then the file exists.
    for path in bicep_files():
        for name, module in parse(path).get("modules", {}).items():
            target = (path.parent / module["detail"]["path"]).resolve()
            assert target.is_file(), f"{path.name}: module {name} points at missing {module['detail']['path']}"

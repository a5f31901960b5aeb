"""No secret material in outputs, parameter defaults or app settings; keys go into Key Vault and nowhere else."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.templates import (
    INFRA,
    app_setting_expressions,
    bicep_files,
    deployed_app_settings,
    parse,
    symbols,
    walk,
)

# Functions that return secrets: listKeys(), listConnectionStrings(), listSecrets(), ... and getSecret().
SECRET_FUNCTION = re.compile(r"^(list[A-Za-z]*|getSecret)$")
# Properties that hold keys or connection strings when read off a resource.
SECRET_PROPERTY = re.compile(r"(?i)^(keys|\w*key|\w*keys|\w*connectionstring|\w*password|\w*sastoken)$")
# What key material and connection strings look like as literals.
SECRET_LITERAL = re.compile(r"(?i)(AccountKey=|SharedAccessKey=|SharedAccessSignature=|sig=|[A-Za-z0-9+/]{40,}={0,2})")
# Names of outputs that would carry a secret.
SECRET_NAME = re.compile(r"(?i)(^|_)(key|keys|password|secret|connection_?string|token|sas)($|_)")

# App settings that read a key-like property (functionKeys) but hold a switch: whether the keyed routes are served.
SWITCHES = {"DISPATCHER_FUNCTION_KEYS"}

_IDS = lambda p: str(Path(p).relative_to(INFRA))  # noqa: E731


def secret_function_calls(node: Any) -> list[str]:
    """Names of secret-returning functions called anywhere in ``node``."""
    calls = []
    for _, item in walk(node):
        if isinstance(item, dict) and item.get("type") == "function_accessor":
            name = item["operands"].get("func_name", "")
            if SECRET_FUNCTION.match(str(name)):
                calls.append(str(name))
        if isinstance(item, dict) and item.get("type") == "list_func":
            calls.append("list*()")
    return calls


def secret_properties(node: Any) -> list[str]:
    """Names of key-like properties read anywhere in ``node`` (e.g. ``primaryKey``, ``ConnectionString``)."""
    found = []
    for _, item in walk(node):
        if isinstance(item, dict) and item.get("type") == "property_accessor":
            for operand in item["operands"].values():
                if isinstance(operand, str) and SECRET_PROPERTY.search(operand):
                    found.append(operand)
    return found


def test_the_secret_detectors_recognise_a_key_read() -> None:
    # Given an output that reads a storage key, When scanning it, Then the call and the property are found.
    text = "output leak string = storage.listKeys().keys[0].value\n"
    from pycep import BicepParser

    value = BicepParser().parse(text=text)["outputs"]["leak"]["value"]
    assert secret_function_calls(value) == ["listKeys"]
    assert SECRET_NAME.search("STORAGE_KEY")


@pytest.mark.parametrize("path", bicep_files(), ids=_IDS)
def test_no_output_carries_secret_material(path: Path) -> None:
    for name, output in symbols(path, "outputs").items():
        assert not SECRET_NAME.search(name), f"{path.name}: output {name} is named like a secret"
        assert not secret_function_calls(output["value"]), f"{path.name}: output {name} calls a list*() function"
        assert not secret_properties(output["value"]), f"{path.name}: output {name} reads a key-like property"
        assert not any(d.get("type") == "secure" for d in output["decorators"]), f"{path.name}: {name} is @secure"


@pytest.mark.parametrize("path", bicep_files(), ids=_IDS)
def test_no_parameter_default_holds_secret_material(path: Path) -> None:
    for name, parameter in symbols(path, "parameters").items():
        default = parameter.get("default")
        secure = any(d.get("type") == "secure" for d in parameter["decorators"])
        assert not (secure and default), f"{path.name}: @secure() parameter {name} has a default"
        for _, item in walk(default):
            if isinstance(item, str):
                assert not SECRET_LITERAL.search(item), f"{path.name}: default of {name} looks like key material"


def test_keys_are_read_only_into_key_vault_secrets() -> None:
    # Given every template, When finding each list*() call, Then it is the value of a Key Vault secret and nothing else.
    places = []
    for path in bicep_files():
        parsed = parse(path)
        for section in ("variables", "outputs", "modules", "resources"):
            for name, body in parsed.get(section, {}).items():
                for where, item in walk(body):
                    if secret_function_calls(item) and not any(
                        secret_function_calls(child) for _, child in walk(item) if child is not item
                    ):
                        places.append((path.name, section, name, body.get("type"), where))
    assert places, "expected the storage account key to be put into Key Vault"
    for file, section, name, resource_type, where in places:
        assert (section, resource_type) == ("resources", "Microsoft.KeyVault/vaults/secrets"), (file, name, where)
        assert where[:3] == ("config", "properties", "value"), (file, name, where)


def test_app_settings_carry_no_key_material() -> None:
    # Given the app settings, When scanning their expressions, Then none reads a key and no literal looks like one.
    settings = app_setting_expressions()
    for name, expr in settings.items():
        assert not secret_function_calls(expr), name
        text = json.dumps(expr)
        if text.startswith('"@Microsoft.KeyVault('):
            continue
        assert not SECRET_LITERAL.search(text), name
        # The Application Insights connection string names the component only; with local auth off it grants nothing.
        if name != "APPLICATIONINSIGHTS_CONNECTION_STRING" and name not in SWITCHES:
            assert not secret_properties(expr), name


def test_settings_named_like_keys_are_switches() -> None:
    # Given the settings whose names only look like key material, When deployed, Then each is True or False.
    deployed = deployed_app_settings({"environmentName": "dev", "location": "westeurope"})
    for name in SWITCHES:
        assert deployed[name] in {"True", "False"}, name

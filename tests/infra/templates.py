"""Reads the Bicep templates in infra/ offline: parses them with pycep and evaluates what can be known before deploying.

pycep (the parser checkov uses) turns a template into JSON. It renders a string literal and an identifier the same
way (``'jobs'`` and ``jobs`` both become ``"jobs"``), so the evaluator treats a string as a reference when it names a
symbol in scope and as a literal otherwise. Values known only once Azure has created something (a resource's
endpoints, an identity's client id) evaluate to ``Opaque``.

pycep does not know Bicep's ``extension`` declarations (``extension microsoftGraphV1``, which the Microsoft Graph
resources need); :func:`parse` reads them itself, blanks their lines and hands pycep the rest, keeping the names under
``extensions``. checkov parses with pycep too, so tests/infra/test_checkov.py keeps those files out of its scan.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "app" / "function-app.bicep"

# Stand-ins for what ARM computes at deployment time; shaped like the real thing so the app's settings validate.
SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000001"
TENANT_ID = "00000000-0000-0000-0000-000000000002"
UNIQUE_STRING = "abcdefghijklm"
# environment() in the public cloud, as the Bicep reference (bicep-functions-deployment, environment) shows it.
ENVIRONMENT = {
    "resourceManager": "https://management.azure.com/",
    "name": "AzureCloud",
    "authentication": {"loginEndpoint": "https://login.microsoftonline.com/"},
}
# guid() is deterministic over its arguments; this stand-in is too (ARM's own values differ).
_GUID_NAMESPACE = uuid.UUID("00000000-0000-0000-0000-00000000b1ce")

_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")
_TOKEN_REPR = re.compile(r"Token\('STRING', '([^']*)'\)")
_EXTENSION = re.compile(r"^[ \t]*extension[ \t]+(\S+).*$", re.MULTILINE)


@dataclass(frozen=True)
class Opaque:
    """A value ARM knows only at deployment time, e.g. a storage account's endpoints; ``what`` says which."""

    what: str


class Unsupported(ValueError):
    """The evaluator does not implement this Bicep construct."""


def bicep_files() -> list[Path]:
    """Every ``.bicep`` file under infra/, sorted."""
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parser() -> BicepParser:
    return BicepParser()


@cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep JSON of one template, with the names of its ``extension`` declarations under ``extensions``;
    raises what pycep raises when the file does not parse."""
    text = path.read_text()
    names = [match.group(1).strip("'") for match in _EXTENSION.finditer(text)]
    blanked = _EXTENSION.sub("", text)  # the same lines, so pycep's line numbers still hold
    result: dict[str, Any] = dict(_parser().parse(text=blanked))
    result["extensions"] = names
    return result


def extensions(path: Path) -> list[str]:
    """The extensions a template declares (``extension NAME``), e.g. ``["microsoftGraphV1"]``."""
    names: list[str] = parse(path)["extensions"]
    return names


def symbols(path: Path, kind: str) -> dict[str, Any]:
    """One section of a template: ``parameters``, ``variables``, ``resources``, ``modules`` or ``outputs``."""
    section: dict[str, Any] = parse(path).get(kind, {})
    return section


def walk(node: Any, where: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every node of a pycep JSON tree with its path from ``node``, parents before children."""
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*where, index))


def unwrap(config: dict[str, Any]) -> dict[str, Any]:
    """The body of a resource or module, past an ``if (...)`` condition or a ``[for ...]`` loop."""
    if "loop_type" in config or ("condition" in config and "config" in config):
        inner: dict[str, Any] = config["config"]
        return inner
    return config


def resources_of_type(resource_type: str) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """``(file, symbolic name, resource)`` for each resource of ``resource_type`` infra/ declares (not ``existing``)."""
    for path in bicep_files():
        for name, resource in symbols(path, "resources").items():
            if resource["type"].lower() == resource_type.lower() and not resource.get("existing"):
                yield path, name, resource


def app_settings_resource() -> dict[str, Any]:
    """The body of the function app's ``appsettings`` config resource (its ``properties`` are the app settings)."""
    for name, resource in symbols(FUNCTION_APP, "resources").items():
        body = unwrap(resource["config"])
        if resource["type"] == "Microsoft.Web/sites/config" and body.get("name") == "appsettings":
            return body
        del name
    raise LookupError(f"{FUNCTION_APP.relative_to(REPO)} has no appsettings config resource")


def app_setting_expressions() -> dict[str, Any]:
    """The function app's settings, name to the (unevaluated) Bicep expression of its value."""
    properties: dict[str, Any] = app_settings_resource()["properties"]
    return properties


@dataclass(frozen=True)
class Frame:
    """One template being evaluated: its file, its parameter values, and the loop variables in scope."""

    path: Path
    arguments: Mapping[str, Any]
    local: Mapping[str, Any] = field(default_factory=dict)

    def with_local(self, **values: Any) -> Frame:
        """The same frame with more loop variables."""
        return Frame(self.path, self.arguments, {**self.local, **values})


def main_frame(parameters: Mapping[str, Any]) -> Frame:
    """The frame of main.bicep deployed with ``parameters`` (the others take their defaults)."""
    return Frame(MAIN, dict(parameters))


def module_frame(caller: Frame, module_name: str) -> Frame:
    """The frame of the module ``module_name`` that ``caller`` deploys, with its parameters evaluated."""
    module = symbols(caller.path, "modules")[module_name]
    if "loop_type" in module["config"]:
        raise Unsupported(f"module {module_name} is deployed in a loop")
    body = unwrap(module["config"])
    path = (caller.path.parent / module["detail"]["path"]).resolve()
    arguments = {name: evaluate(expr, caller) for name, expr in body.get("params", {}).items()}
    return Frame(path, arguments)


@dataclass(frozen=True)
class Deployment:
    """One deployment of a module: its frame, and its ``scope`` evaluated (``None`` when it names none)."""

    frame: Frame
    scope: Any


def module_deployments(caller: Frame, module_name: str) -> list[Deployment]:
    """Every deployment of the module ``module_name`` that ``caller`` makes: one per item of its loop (none when its
    condition is false), each with its parameters and scope evaluated."""
    module = symbols(caller.path, "modules")[module_name]
    path = (caller.path.parent / module["detail"]["path"]).resolve()
    config = module["config"]
    if "loop_type" in config:
        bodies = evaluate(config, caller)
        if isinstance(bodies, Opaque):
            raise Unsupported(f"module {module_name} loops over {bodies.what}")
    elif "condition" in config and "config" in config:
        condition = evaluate(config["condition"], caller)
        if isinstance(condition, Opaque):
            raise Unsupported(f"module {module_name} depends on {condition.what}")
        bodies = [evaluate(config["config"], caller)] if condition else []
    else:
        bodies = [evaluate(config, caller)]
    return [Deployment(Frame(path, body.get("params", {})), body.get("scope")) for body in bodies]


def frame_of(path: Path, parameters: Mapping[str, Any]) -> Frame:
    """The frame of ``path`` as main.bicep deploys it (directly, for modules called once from main.bicep)."""
    root = main_frame(parameters)
    if path == MAIN:
        return root
    for name, module in symbols(MAIN, "modules").items():
        if (MAIN.parent / module["detail"]["path"]).resolve() == path.resolve():
            return module_frame(root, name)
    raise LookupError(f"main.bicep does not deploy {path.relative_to(REPO)}")


def evaluate(expr: Any, frame: Frame) -> Any:
    """The value of a pycep expression in ``frame``; ``Opaque`` for what only the deployment knows."""
    if expr is None or isinstance(expr, bool | int | float):
        return expr
    if isinstance(expr, str):
        return _name_or_literal(expr, frame)
    if isinstance(expr, list):
        return [evaluate(item, frame) for item in expr]
    if isinstance(expr, dict):
        if "function" in expr and len(expr) == 1:
            return _function(expr["function"], frame)
        if "operator" in expr and len(expr) == 1:
            return _operator(expr["operator"], frame)
        if "loop_type" in expr:
            return _loop(expr, frame)
        return {_interpolate(_unquote(key), frame): evaluate(value, frame) for key, value in expr.items()}
    raise Unsupported(f"unexpected node {expr!r}")


def _name_or_literal(text: str, frame: Frame) -> Any:
    if text in frame.local:
        return frame.local[text]
    parameters = symbols(frame.path, "parameters")
    if text in parameters:
        if text in frame.arguments:
            return frame.arguments[text]
        default = parameters[text].get("default")
        if default is None:
            return Opaque(f"parameter {text} without a value")
        return evaluate(default, frame)
    variables = symbols(frame.path, "variables")
    if text in variables:
        return evaluate(variables[text]["value"], frame)
    if text in symbols(frame.path, "resources") or text in symbols(frame.path, "modules"):
        return Opaque(f"reference to {text}")
    return _interpolate(text, frame)


def _unquote(key: str) -> str:
    """An object key as ARM sees it: pycep keeps the quotes of quoted keys such as ``'azd-env-name'``."""
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def _interpolate(text: str, frame: Frame) -> Any:
    if "${" not in text:
        return text
    parts: list[str] = []
    position = 0
    for match in _INTERPOLATION.finditer(text):
        parts.append(text[position : match.start()])
        inner = parse_expression(match.group(1))
        value = evaluate(inner, frame)
        if isinstance(value, Opaque):
            return Opaque(f"'{text}' needs {value.what}")
        parts.append(_to_string(value))
        position = match.end()
    parts.append(text[position:])
    return "".join(parts)


@cache
def _parsed_expression(source: str) -> str:
    return json.dumps(_parser().parse(text=f"var expression = {source}\n")["variables"]["expression"]["value"])


def parse_expression(source: str) -> Any:
    """The pycep JSON of one Bicep expression, e.g. ``abbrs.webSitesFunctions``."""
    return json.loads(_parsed_expression(source))


def _to_string(value: Any) -> str:
    """ARM's ``string()``: strings as they are, booleans as True/False, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    return json.dumps(value, separators=(",", ":"))


def _opaque_in(value: Any) -> Opaque | None:
    for _, node in walk(value):
        if isinstance(node, Opaque):
            return node
    return None


def _function(call: dict[str, Any], frame: Frame) -> Any:
    kind = call["type"]
    arguments = call.get("parameters") or {}
    prop = call.get("property_name")
    if kind == "subscription":
        return _property({"subscriptionId": SUBSCRIPTION_ID, "id": f"/subscriptions/{SUBSCRIPTION_ID}"}, prop)
    if kind == "tenant":
        return _property({"tenantId": TENANT_ID}, prop)
    if kind == "environment":
        return _property(ENVIRONMENT, prop)
    if kind == "load_json_content":
        path = frame.path.parent / arguments["file_path"]
        return json.loads(path.read_text())
    if kind == "resource_group" and arguments:
        group = evaluate(arguments["resource_group_name"], frame)
        subscription_id = evaluate(arguments.get("subscription_id"), frame) or SUBSCRIPTION_ID
        return _opaque_in([group, subscription_id]) or {"subscriptionId": subscription_id, "resourceGroup": group}
    values = [evaluate(value, frame) for value in arguments.values() if value is not None]
    opaque = _opaque_in(values)
    if kind == "string":
        return opaque or _to_string(values[0])
    if opaque is not None:
        return opaque
    if kind == "guid":
        return str(uuid.uuid5(_GUID_NAMESPACE, "-".join(_to_string(value) for value in values)))
    if kind == "contains":
        container, item = values
        return item in container
    if kind == "split":
        parts = str(values[0]).split(str(values[1]))
        return parts if call.get("index") is None else parts[int(call["index"])]
    if kind == "last":
        return values[0][-1]
    if kind == "json":
        return json.loads(values[0])
    if kind == "union":
        merged: dict[str, Any] = {}
        for value in values:
            merged.update(value)
        return merged
    if kind == "empty":
        return len(values[0]) == 0
    if kind == "to_lower":
        return str(values[0]).lower()
    if kind == "take":
        return values[0][: values[1]]
    if kind == "unique_string":
        return UNIQUE_STRING
    return Opaque(f"{kind}()")


def _property(value: Any, name: Any) -> Any:
    if name is None:
        return value
    # Outside an interpolation pycep renders tenant().tenantId's property as the repr of its token list.
    path = _TOKEN_REPR.findall(str(name)) or [str(name)]
    return _descend(value, list(path))


def _operator(operator: dict[str, Any], frame: Frame) -> Any:
    kind = operator["type"]
    operands = operator["operands"]
    if kind == "property_accessor":
        return _access(operands, frame)
    if kind == "index_accessor":
        base = evaluate(operands["operand_1"], frame)
        index = evaluate(operands["operand_2"], frame)
        return _opaque_in([base, index]) or base[index]
    if kind == "conditional":
        condition = evaluate(operands["condition"], frame)
        if isinstance(condition, Opaque):
            return condition
        return evaluate(operands["true_value" if condition else "false_value"], frame)
    if kind == "not":
        value = evaluate(operands["bool_value"], frame)
        return value if isinstance(value, Opaque) else not value
    if kind in ("and", "or"):
        left, right = evaluate(operands["operand_1"], frame), evaluate(operands["operand_2"], frame)
        return _opaque_in([left, right]) or (left and right if kind == "and" else left or right)
    return Opaque(f"operator {kind}")


def property_path(operands: dict[str, Any]) -> list[Any]:
    """``a.b.c`` (pycep nests it to the right) as ``[a, b, c]``."""
    path = [operands["operand_1"]]
    rest = operands["operand_2"]
    while isinstance(rest, dict) and rest.get("operator", {}).get("type") == "property_accessor":
        path.append(rest["operator"]["operands"]["operand_1"])
        rest = rest["operator"]["operands"]["operand_2"]
    path.append(rest)
    return path


def _access(operands: dict[str, Any], frame: Frame) -> Any:
    head, *rest = property_path(operands)
    if isinstance(head, str) and head not in frame.local:
        modules = symbols(frame.path, "modules")
        resources = symbols(frame.path, "resources")
        if head in modules and rest[:1] == ["outputs"] and len(rest) >= 2:
            try:
                inner = module_frame(frame, head)
            except Unsupported as error:
                return Opaque(str(error))
            value = evaluate(symbols(inner.path, "outputs")[rest[1]]["value"], inner)
            return _descend(value, rest[2:])
        if head in resources:
            if rest == ["name"]:
                return evaluate(unwrap(resources[head]["config"])["name"], frame)
            return Opaque(f"{head}.{'.'.join(map(str, rest))}")
    return _descend(evaluate(head, frame), rest)


def _descend(value: Any, path: list[Any]) -> Any:
    for step in path:
        if isinstance(value, Opaque):
            return value
        if not isinstance(step, str | int):
            raise Unsupported(f"computed property {step!r}")
        value = value[step]
    return value


def _loop(expr: dict[str, Any], frame: Frame) -> Any:
    loop = expr["loop_type"]
    detail = loop["detail"]
    if loop["type"] == "object":
        # [for x in items(o): ...]: ARM's items() gives {key, value} pairs, sorted by key.
        mapping = evaluate(detail["object_name"], frame)
        if isinstance(mapping, Opaque):
            return mapping
        items = [{"key": key, "value": mapping[key]} for key in sorted(mapping)]
    elif loop["type"] in {"array", "array_index"}:
        items = evaluate(detail["array_name"], frame)
        if isinstance(items, Opaque):
            return items
    else:
        raise Unsupported(f"{loop['type']} loops")
    results = []
    for index, item in enumerate(items):
        scope = frame.with_local(**{detail["item_name"]: item})
        if loop["type"] == "array_index":
            scope = scope.with_local(**{detail["index_name"]: index})
        if expr.get("condition") is not None and not evaluate(expr["condition"], scope):
            continue
        results.append(evaluate(expr["config"], scope))
    return results


def deployed_app_settings(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The app settings a deployment with ``parameters`` gives the function app: strings, or ``Opaque``."""
    frame = frame_of(FUNCTION_APP, parameters)
    return {name: evaluate(expr, frame) for name, expr in app_setting_expressions().items()}

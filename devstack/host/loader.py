"""Load a Python v2 ``function_app.py`` and read each function's trigger and bindings from the app's metadata."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from azure.functions.decorators.function_app import Function, FunctionRegister

HTTP_TRIGGER = "httpTrigger"
SERVICEBUS_TRIGGER = "serviceBusTrigger"
TIMER_TRIGGER = "timerTrigger"
SUPPORTED_TRIGGERS = frozenset({HTTP_TRIGGER, SERVICEBUS_TRIGGER, TIMER_TRIGGER})
CONTEXT_PARAMETER = "context"

_module_counter = itertools.count(1)


class FunctionAppError(ValueError):
    """The function app cannot be loaded or uses something the local runner does not drive."""


@dataclass(frozen=True)
class FunctionMetadata:
    """One function as the host indexes it: its name, trigger binding, other bindings and the Python callable."""

    name: str
    trigger: Mapping[str, Any]
    bindings: tuple[Mapping[str, Any], ...]
    handler: Callable[..., Any] = field(repr=False)
    parameters: tuple[str, ...] = ()

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def trigger_parameter(self) -> str:
        """The Python parameter that receives the trigger payload."""
        return str(self.trigger["name"])

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)

    @property
    def wants_context(self) -> bool:
        return CONTEXT_PARAMETER in self.parameters

    def function_json(self) -> dict[str, Any]:
        """The ``function.json``-shaped view of this function (what the host's admin API lists)."""
        return {"name": self.name, "bindings": [dict(binding) for binding in self.bindings]}


@dataclass(frozen=True)
class LoadedApp:
    """A loaded app: its module (for tests to inspect), its FunctionApp and its functions by name."""

    module: ModuleType
    app: FunctionRegister
    functions: dict[str, FunctionMetadata]


def load_function_app(app_dir: Path, script: str = "function_app.py") -> LoadedApp:
    """Import ``app_dir/script`` as a fresh module and index its functions.

    ``app_dir`` is put on ``sys.path`` (as the host does with the script root) so the app's own packages import.
    Each call executes the script again under a new module name, so two runners never share app state.
    Raises FunctionAppError when the script has no FunctionApp, or a function uses a trigger or binding the
    runner does not drive, or a parameter has no binding.
    """
    path = (app_dir / script).resolve()
    if not path.is_file():
        raise FunctionAppError(f"no {script} in {app_dir}")
    root = str(path.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    module = _import_fresh(path)
    app = _find_app(module, script)
    functions: dict[str, FunctionMetadata] = {}
    for function in app.get_functions():
        metadata = _index(function)
        functions[metadata.name] = metadata
    return LoadedApp(module=module, app=app, functions=functions)


def _import_fresh(path: Path) -> ModuleType:
    name = f"_devstack_function_app_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FunctionAppError(f"cannot import {path.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(name, None)
        raise
    return module


def _find_app(module: ModuleType, script: str) -> FunctionRegister:
    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    unique = list({id(app): app for app in apps}.values())
    if len(unique) != 1:
        raise FunctionAppError(f"{script} must define exactly one FunctionApp; found {len(unique)}")
    return unique[0]


def _index(function: Function) -> FunctionMetadata:
    name = str(function.get_function_name())
    bindings = tuple(json.loads(raw) for raw in function.get_raw_bindings())
    trigger_object = function.get_trigger()
    trigger_name = trigger_object.name if trigger_object is not None else None
    trigger = next((binding for binding in bindings if binding["name"] == trigger_name), None)
    if trigger is None or trigger.get("type") not in SUPPORTED_TRIGGERS:
        found = trigger.get("type") if trigger else None
        raise FunctionAppError(
            f"function {name}: trigger {found!r} is not driven locally ({sorted(SUPPORTED_TRIGGERS)})"
        )
    for binding in bindings:
        if binding is trigger:
            continue
        if not (binding.get("type") == "http" and binding.get("name") == "$return"):
            raise FunctionAppError(
                f"function {name}: binding {binding.get('type')!r} ({binding.get('name')}) is not supported locally; "
                "use the Azure SDK from the function instead"
            )
    handler = function.get_user_function()
    parameters = tuple(inspect.signature(handler).parameters)
    for parameter in parameters:
        if parameter not in {trigger["name"], CONTEXT_PARAMETER}:
            raise FunctionAppError(f"function {name}: parameter {parameter!r} has no binding")
    if trigger["name"] not in parameters:
        raise FunctionAppError(f"function {name}: it has no parameter named {trigger['name']!r} for its trigger")
    return FunctionMetadata(name=name, trigger=trigger, bindings=bindings, handler=handler, parameters=parameters)

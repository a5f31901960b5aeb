"""A local stand-in for the Azure Functions host that drives a Python v2 ``function_app.py``'s triggers."""

from devstack.host.keys import HostKeys
from devstack.host.loader import FunctionAppError, FunctionMetadata, load_function_app
from devstack.host.runner import FunctionsRunner
from devstack.host.settings import SettingsError

__all__ = [
    "FunctionAppError",
    "FunctionMetadata",
    "FunctionsRunner",
    "HostKeys",
    "SettingsError",
    "load_function_app",
]

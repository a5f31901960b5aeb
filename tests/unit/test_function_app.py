"""The Functions app indexes cleanly, as the host does when it loads function_app.py."""

import importlib

import azure.functions as func


def test_function_app_imports_and_indexes_without_touching_the_network() -> None:
    module = importlib.import_module("function_app")
    assert isinstance(module.app, func.FunctionApp)
    for function in module.app.get_functions():
        assert function.get_function_name()
        assert function.get_trigger() is not None

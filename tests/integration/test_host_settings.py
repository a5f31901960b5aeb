"""App settings through the local Functions runner: local.settings.json, explicit settings and %Setting%."""

from __future__ import annotations

import os

import pytest
import requests

from devstack.host import FunctionAppError, SettingsError
from tests.fixtures.host import MakeRunner


def test_local_settings_values_reach_the_function_environment(make_runner: MakeRunner) -> None:
    # Given a value only in local.settings.json
    runner = make_runner(functions=["setting"], local_settings={"DEVSTACK_GREETING": "hello from file"})
    # Then the function reads it from os.environ, as in Azure
    response = requests.get(f"{runner.url}/settings/DEVSTACK_GREETING", timeout=10)
    assert response.text == "hello from file"


def test_explicit_settings_win_over_local_settings(make_runner: MakeRunner) -> None:
    runner = make_runner(
        functions=["setting"],
        settings={"DEVSTACK_GREETING": "explicit"},
        local_settings={"DEVSTACK_GREETING": "from file"},
    )
    assert requests.get(f"{runner.url}/settings/DEVSTACK_GREETING", timeout=10).text == "explicit"


def test_settings_are_removed_from_the_environment_on_stop(make_runner: MakeRunner) -> None:
    runner = make_runner(functions=["setting"], local_settings={"DEVSTACK_TEMPORARY": "x"})
    assert os.environ["DEVSTACK_TEMPORARY"] == "x"
    runner.stop()
    assert "DEVSTACK_TEMPORARY" not in os.environ


def test_a_schedule_setting_expression_is_resolved_from_local_settings(make_runner: MakeRunner) -> None:
    runner = make_runner(functions=["heartbeat"], local_settings={"HEARTBEAT_SCHEDULE": "0 0 0 1 1 *"})
    timer = runner.functions["heartbeat"]
    assert timer.trigger["schedule"] == "%HEARTBEAT_SCHEDULE%"
    runner.invoke_timer("heartbeat")


def test_a_missing_setting_expression_fails_start_up_and_names_the_function(make_runner: MakeRunner) -> None:
    with pytest.raises(SettingsError, match=r"heartbeat.*HEARTBEAT_SCHEDULE"):
        make_runner(functions=["heartbeat"])


def test_a_listed_function_the_app_lacks_fails_start_up(make_runner: MakeRunner) -> None:
    with pytest.raises(FunctionAppError, match="no_such_function"):
        make_runner(functions=["no_such_function"])

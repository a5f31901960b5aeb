"""local.settings.json, host.json, %Setting% expressions and Service Bus connection mapping."""

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from devstack.host.settings import AppSettings, HostOptions, LocalSettings, SettingsError, parse_timespan

EMULATOR = "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;"


@pytest.fixture
def clean_env() -> Iterator[None]:
    names = ["DEVSTACK_TEST_A", "DEVSTACK_TEST_B", "DEVSTACK_TEST_C"]
    saved = {name: os.environ.pop(name, None) for name in names}
    yield
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


def test_local_settings_values_and_port_are_read(tmp_path: Path) -> None:
    # Given a local.settings.json with values of several JSON types
    path = tmp_path / "local.settings.json"
    path.write_text(
        json.dumps({"IsEncrypted": False, "Values": {"A": "x", "B": 3, "C": True}, "Host": {"LocalHttpPort": 7072}})
    )
    # When it is loaded
    local = LocalSettings.load(path)
    # Then values are strings, as app settings always are
    assert local.values == {"A": "x", "B": "3", "C": "true"}
    assert local.local_http_port == 7072


def test_a_missing_local_settings_file_means_no_settings(tmp_path: Path) -> None:
    assert LocalSettings.load(tmp_path / "absent.json") == LocalSettings()


@pytest.mark.parametrize("text", ["{", "[]", '{"Values": []}', '{"IsEncrypted": true, "Values": {}}'])
def test_a_malformed_local_settings_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(text)
    with pytest.raises(SettingsError):
        LocalSettings.load(path)


@pytest.mark.usefixtures("clean_env")
def test_file_settings_fill_the_environment_without_clobbering_and_are_undone() -> None:
    # Given one variable already set, one from the file only, one passed explicitly
    os.environ["DEVSTACK_TEST_A"] = "from-env"
    settings = AppSettings(
        {"DEVSTACK_TEST_A": "file", "DEVSTACK_TEST_B": "file", "DEVSTACK_TEST_C": "file"},
        {"DEVSTACK_TEST_C": "explicit"},
    )
    # When applied
    settings.apply_to_environment()
    # Then the environment wins over the file, explicit wins over both
    assert os.environ["DEVSTACK_TEST_A"] == "from-env"
    assert os.environ["DEVSTACK_TEST_B"] == "file"
    assert os.environ["DEVSTACK_TEST_C"] == "explicit"
    # And restoring puts everything back
    settings.restore_environment()
    assert os.environ["DEVSTACK_TEST_A"] == "from-env"
    assert "DEVSTACK_TEST_B" not in os.environ
    assert "DEVSTACK_TEST_C" not in os.environ


def test_setting_expressions_are_resolved_inside_strings() -> None:
    settings = AppSettings({"QUEUE": "jobs", "ENV": "dev"})
    assert settings.resolve("%QUEUE%") == "jobs"
    assert settings.resolve("%ENV%-%QUEUE%-in") == "dev-jobs-in"
    assert settings.resolve("plain") == "plain"


def test_an_unset_setting_expression_is_an_error_naming_it() -> None:
    with pytest.raises(SettingsError, match="DEVSTACK_SURELY_UNSET"):
        AppSettings({}).resolve("%DEVSTACK_SURELY_UNSET%")


def test_a_connection_string_setting_is_used_as_given() -> None:
    settings = AppSettings({"Bus": "Endpoint=sb://other;"})
    assert settings.servicebus_connection_string("Bus", EMULATOR) == "Endpoint=sb://other;"


def test_an_identity_based_connection_maps_to_the_emulator() -> None:
    # Given only the identity form of the connection, as deployed to Azure
    settings = AppSettings({"Bus__fullyQualifiedNamespace": "ns.servicebus.windows.net"})
    # Then the runner uses the emulator's connection string
    assert settings.servicebus_connection_string("Bus", EMULATOR) == EMULATOR


def test_an_identity_based_connection_without_an_emulator_is_an_error() -> None:
    settings = AppSettings({"Bus__fullyQualifiedNamespace": "ns.servicebus.windows.net"})
    with pytest.raises(SettingsError, match="identity-based"):
        settings.servicebus_connection_string("Bus", None)


def test_an_empty_connection_name_means_azure_web_jobs_service_bus() -> None:
    settings = AppSettings({"AzureWebJobsServiceBus": "Endpoint=sb://default;"})
    assert settings.servicebus_connection_string("", None) == "Endpoint=sb://default;"


def test_a_connection_with_no_setting_at_all_is_an_error() -> None:
    with pytest.raises(SettingsError, match="NoSuchBus"):
        AppSettings({}).servicebus_connection_string("NoSuchBus", EMULATOR)


def test_host_json_defaults_are_the_hosts() -> None:
    options = HostOptions.from_document({"version": "2.0"})
    assert options.route_prefix == "api"
    assert options.servicebus.max_concurrent_calls == 16
    assert options.servicebus.max_auto_lock_renewal == timedelta(minutes=5)
    assert options.servicebus.auto_complete_messages is True
    assert options.functions is None


def test_host_json_options_are_read() -> None:
    options = HostOptions.from_document(
        {
            "extensions": {
                "http": {"routePrefix": ""},
                "serviceBus": {"maxConcurrentCalls": 2, "maxAutoLockRenewalDuration": "00:00:30"},
            },
            "functions": ["a", "b"],
        }
    )
    assert options.route_prefix == ""
    assert options.servicebus.max_concurrent_calls == 2
    assert options.servicebus.max_auto_lock_renewal == timedelta(seconds=30)
    assert options.functions == ("a", "b")


@pytest.mark.parametrize(
    "document",
    [[], {"extensions": []}, {"extensions": {"serviceBus": {"maxConcurrentCalls": 0}}}, {"functions": "a"}],
)
def test_a_malformed_host_json_is_refused(document: object) -> None:
    with pytest.raises(SettingsError):
        HostOptions.from_document(document)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:05:00", timedelta(minutes=5)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:00:00.5", timedelta(seconds=0.5)),
    ],
)
def test_timespans_are_parsed(text: str, expected: timedelta) -> None:
    assert parse_timespan(text) == expected


@pytest.mark.parametrize("text", ["5m", "", "00:05", "PT5M"])
def test_a_malformed_timespan_is_refused(text: str) -> None:
    with pytest.raises(SettingsError):
        parse_timespan(text)

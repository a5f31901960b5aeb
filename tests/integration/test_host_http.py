"""HTTP triggers through the local Functions runner: routes, methods, keys, and faithful request/response."""

from __future__ import annotations

import json

import pytest
import requests

from devstack.host import FunctionsRunner
from tests.fixtures.host import MakeRunner

HTTP_FUNCTIONS = [
    "echo",
    "get_job",
    "get_job_by_name",
    "files",
    "secret",
    "raw",
    "boom",
    "async_hello",
    "setting",
    "heartbeat",
]


@pytest.fixture
def runner(make_runner: MakeRunner) -> FunctionsRunner:
    return make_runner(
        functions=HTTP_FUNCTIONS,
        settings={"HEARTBEAT_SCHEDULE": "0 0 0 1 1 *", "AzureWebJobs.heartbeat.Disabled": "true"},
    )


def test_the_request_reaches_the_function_faithfully(runner: FunctionsRunner) -> None:
    # When a POST with a body, headers, a repeated query parameter and a route parameter arrives
    response = requests.post(
        f"{runner.url}/echo/42?a=1&a=2&b=x",
        data=b"payload \xe2\x9c\x93",
        headers={"X-Custom": "yes", "Content-Type": "text/plain"},
        timeout=10,
    )
    # Then the function saw each part as sent
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["url"] == f"{runner.url}/echo/42?a=1&a=2&b=x"
    assert seen["headers"]["x-custom"] == "yes"
    assert seen["params"] == {"a": "1,2", "b": "x"}
    assert seen["route_params"] == {"id": "42"}
    assert seen["body"] == "payload \u2713"
    assert seen["function"] == "echo"


def test_an_omitted_optional_route_parameter_is_absent(runner: FunctionsRunner) -> None:
    response = requests.get(f"{runner.url}/echo", timeout=10)
    assert response.json()["route_params"] == {}


def test_status_headers_and_mimetype_pass_through(runner: FunctionsRunner) -> None:
    response = requests.get(f"{runner.url}/echo?status=418", timeout=10)
    assert response.status_code == 418
    assert response.headers["X-Echo"] == "yes"
    assert response.headers["Content-Type"] == "application/json"


def test_binary_bodies_and_text_charsets_pass_through(runner: FunctionsRunner) -> None:
    raw = requests.get(f"{runner.url}/raw", timeout=10)
    assert raw.status_code == 201
    assert raw.content == bytes(range(256))
    assert raw.headers["Content-Type"] == "application/octet-stream"
    text = requests.get(f"{runner.url}/async/zoe", timeout=10)
    assert text.text == "hello zoe"
    assert text.headers["Content-Type"] == "text/html; charset=latin-1"


def test_a_catch_all_route_receives_the_rest_of_the_path(runner: FunctionsRunner) -> None:
    response = requests.get(f"{runner.url}/files/a/b/c.txt", timeout=10)
    assert response.text == "a/b/c.txt"
    assert response.headers["Set-Cookie"] == "a=1"


def test_a_constrained_route_wins_over_a_plain_one_when_it_matches(runner: FunctionsRunner) -> None:
    key = {"x-functions-key": runner.function_key}
    assert requests.get(f"{runner.url}/jobs/7", headers=key, timeout=10).text == "job 7"
    assert requests.get(f"{runner.url}/jobs/seven", headers=key, timeout=10).text == "named seven"


def test_a_method_the_function_does_not_accept_is_405(runner: FunctionsRunner) -> None:
    response = requests.delete(f"{runner.url}/echo/1", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_a_route_without_methods_accepts_every_method(runner: FunctionsRunner) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert requests.request(method, f"{runner.url}/files/x", timeout=10).status_code == 200


def test_an_unknown_path_is_404(runner: FunctionsRunner) -> None:
    assert requests.get(f"{runner.url}/nowhere", timeout=10).status_code == 404
    assert requests.get(f"{runner.host_url}/echo", timeout=10).status_code == 404


def test_a_function_level_route_needs_a_function_key(runner: FunctionsRunner) -> None:
    url = f"{runner.url}/jobs/1"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"x-functions-key": "wrong"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"x-functions-key": runner.function_key}, timeout=10).status_code == 200
    assert requests.get(url, params={"code": runner.function_key}, timeout=10).status_code == 200
    assert requests.get(url, headers={"x-functions-key": runner.master_key}, timeout=10).status_code == 200


def test_an_admin_level_route_needs_the_master_key(runner: FunctionsRunner) -> None:
    url = f"{runner.url}/secret"
    assert requests.get(url, headers={"x-functions-key": runner.function_key}, timeout=10).status_code == 401
    response = requests.get(url, headers={"x-functions-key": runner.master_key}, timeout=10)
    assert response.status_code == 200
    assert response.text == "admins only"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_the_keys_are_the_ones_in_the_keys_file(runner: FunctionsRunner) -> None:
    document = json.loads(runner.keys_file.read_text())
    assert document["masterKey"] == runner.master_key
    assert document["functionKeys"]["default"] == runner.function_key


def test_an_exception_in_the_function_is_a_500(runner: FunctionsRunner, caplog: pytest.LogCaptureFixture) -> None:
    response = requests.get(f"{runner.url}/boom", timeout=10)
    assert response.status_code == 500
    assert "this function always fails" in caplog.text


def test_a_disabled_function_is_not_routed(make_runner: MakeRunner) -> None:
    runner = make_runner(functions=["echo"], settings={"AzureWebJobs.echo.Disabled": "true"})
    assert requests.get(f"{runner.url}/echo", timeout=10).status_code == 404


def test_the_admin_api_lists_functions_with_the_master_key_only(runner: FunctionsRunner) -> None:
    url = f"{runner.host_url}/admin/functions"
    assert requests.get(url, headers={"x-functions-key": runner.function_key}, timeout=10).status_code == 401
    listed = requests.get(url, headers={"x-functions-key": runner.master_key}, timeout=10).json()
    assert {entry["name"] for entry in listed} == set(HTTP_FUNCTIONS)
    status = requests.get(
        f"{runner.host_url}/admin/host/status", headers={"x-functions-key": runner.master_key}, timeout=10
    )
    assert status.json()["state"] == "Running"
    assert requests.get(f"{runner.host_url}/admin/host/ping", timeout=10).status_code == 200


def test_the_admin_api_does_not_invoke_http_functions_or_unknown_ones(runner: FunctionsRunner) -> None:
    key = {"x-functions-key": runner.master_key}
    assert requests.post(f"{runner.host_url}/admin/functions/echo", json={}, headers=key, timeout=10).status_code == 400
    assert requests.post(f"{runner.host_url}/admin/functions/nope", json={}, headers=key, timeout=10).status_code == 404


def test_many_concurrent_requests_are_all_answered(runner: FunctionsRunner) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda n: requests.get(f"{runner.url}/echo/{n}", timeout=30).status_code, range(40)))
    assert statuses == [200] * 40

"""The HTTP API over real HTTP through the local Functions runner: keys, statuses, traversal, and schemathesis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from dispatcher.domain.jobs import Status
from tests.fixtures.stack import StackClient, simulated_stack
from tests.fixtures.waiting import wait_for

JSON_HEADERS = {"Content-Type": "application/json"}

# No 5xx, and every response matches the document. Not "schema-valid data is accepted": the spec's schema
# states the shape of a job, while validation also enforces ACI's cross-field limits (at least one
# container, at most 4 vCPU in total), so some schema-valid bodies are rightly refused with 400.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
ENDPOINTS = [
    ("POST", "/jobs"),
    ("GET", "/jobs"),
    ("GET", "/jobs/x"),
    ("DELETE", "/jobs/x"),
    ("GET", "/jobs/x/logs"),
    ("GET", "/jobs/x/outputs"),
    ("GET", "/jobs/x/outputs/a.txt"),
    ("POST", "/jobs/x/rerun"),
    ("GET", "/schedules"),
    ("PUT", "/schedules/x"),
    ("GET", "/schedules/x"),
    ("DELETE", "/schedules/x"),
    ("POST", "/schedules/x/trigger"),
    ("POST", "/schedules/x/suspend"),
    ("POST", "/schedules/x/resume"),
    ("GET", "/health"),
    ("GET", "/me"),
    ("GET", "/usage"),
    ("GET", "/pools"),
]


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    yield from simulated_stack(tmp_path_factory)


class Api:
    """Calls through the keyed routes with the function key (``key``), or the anonymous ones without it."""

    def __init__(self, client: StackClient) -> None:
        assert client.stack.runner is not None
        self.stack = client.stack
        self.base = client.stack.runner.url
        self.key = client.stack.runner.function_key
        self.session = requests.Session()

    def call(
        self, method: str, path: str, *, key: bool = True, keyed: bool | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"x-functions-key": self.key} if key else {}
        headers.update(kwargs.pop("headers", {}))
        prefix = "/keyed" if (key if keyed is None else keyed) else ""
        return self.session.request(method, self.base + prefix + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def http(api_stack: StackClient) -> Api:
    return Api(api_stack)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_refuses_a_request_without_a_token_or_a_key(http: Api, method: str, path: str) -> None:
    assert http.call(method, path, key=False).status_code == 401
    assert http.call(method, path, key=False, keyed=True).status_code == 401  # the host checks the keyed routes


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_function_key_on_an_anonymous_route_is_not_a_credential(http: Api, method: str, path: str) -> None:
    assert http.call(method, path, keyed=False).status_code == 401


@pytest.mark.parametrize(
    "name",
    [
        "",
        "index.html",
        "job.html",
        "pools.html",
        "schedules.html",
        "redirect.html",
        "app.js",
        "redirect.js",
        "style.css",
        "vendor/msal-browser.min.js",
        "vendor/msal-redirect-bridge.min.js",
    ],
)
def test_the_dashboards_files_are_served_to_anyone_with_a_strict_content_security_policy(http: Api, name: str) -> None:
    response = http.call("GET", f"/ui/{name}", key=False)
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert http.key not in response.text


@pytest.mark.parametrize(
    "name",
    [
        "../function_app.py",
        "nope.html",
        "%2e%2e/openapi.json",
        "layout.html",
        "job.body.html",
        "vendor/msal-browser.LICENSE.txt",
    ],
)
def test_nothing_but_the_dashboards_files_is_served_from_its_folder(http: Api, name: str) -> None:
    assert http.call("GET", f"/ui/{name}", key=False).status_code == 404


def test_the_document_is_served_to_anyone_and_holds_no_data(http: Api) -> None:
    response = http.call("GET", "/openapi.json", key=False)
    assert response.status_code == 200
    assert response.json()["components"]["securitySchemes"]["entraId"]["scheme"] == "bearer"


def test_the_key_is_accepted_in_the_code_query_parameter(http: Api) -> None:
    response = http.call("GET", f"/jobs?code={http.key}", key=False, keyed=True)
    assert response.status_code == 200


def test_submit_then_read_over_http(http: Api) -> None:
    submitted = http.call("POST", "/jobs", json={"id": "http-1", "image": "busybox", "command": ["true"]})
    assert submitted.status_code == 202
    assert submitted.headers["Location"] == "/api/jobs/http-1"
    job = http.call("GET", "/jobs/http-1")
    assert job.status_code == 200
    assert job.json()["status"] in ("Queued", "Launching", "Running", "Succeeded")
    assert http.call("POST", "/jobs", json={"id": "http-1", "image": "busybox", "command": ["true"]}).status_code == 202
    conflict = http.call("POST", "/jobs", json={"id": "http-1", "image": "busybox", "command": ["false"]})
    assert (conflict.status_code, conflict.headers["Content-Type"]) == (409, "application/problem+json")


def test_yaml_submissions_are_accepted(http: Api) -> None:
    response = http.call(
        "POST",
        "/jobs",
        data='id: http-yaml\nimage: busybox\ncommand: ["true"]\n',
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {"image": "busybox", "restartPolicy": "Always"}}, 400),
        ({"data": "x" * 300_000, "headers": {"Content-Type": "application/json"}}, 413),
        ({"data": "a,b", "headers": {"Content-Type": "text/csv"}}, 415),
    ],
    ids=["invalid", "too-large", "unsupported-type"],
)
def test_submission_errors_are_problem_json(http: Api, kwargs: dict[str, Any], status: int) -> None:
    response = http.call("POST", "/jobs", **kwargs)
    assert (response.status_code, response.headers["Content-Type"]) == (status, "application/problem+json")
    assert response.json()["status"] == status


def test_unknown_jobs_are_404_problems(http: Api) -> None:
    for method, path in [
        ("GET", "/jobs/nope"),
        ("DELETE", "/jobs/nope"),
        ("GET", "/jobs/nope/logs"),
        ("GET", "/jobs/nope/outputs"),
    ]:
        response = http.call(method, path)
        assert (response.status_code, response.json()["title"]) == (404, "Job not found")


@pytest.mark.parametrize("path", ["%2E%2E/%2E%2E/etc/passwd", "a/%2E%2E/%2E%2E/b", "%2Fetc%2Fpasswd"])
def test_output_paths_that_leave_the_workspace_are_refused(http: Api, path: str) -> None:
    http.call("POST", "/jobs", json={"id": "trav-1", "image": "busybox", "command": ["true"]})
    assert http.call("GET", f"/jobs/trav-1/outputs/{path}").status_code == 400


@pytest.fixture(scope="module")
def workspace_job(http: Api, api_stack: StackClient) -> str:
    """A launched job with a workspace holding a file, a folder, and a symbolic link to a folder outside it."""
    spec = {
        "id": "ws-inputs",
        "containers": [{"name": "main", "image": "busybox", "mounts": [{"volume": "out", "path": "/out"}]}],
        "volumes": {"out": {"kind": "workspace"}},
    }
    assert http.call("POST", "/jobs", json=spec).status_code == 202
    folder = wait_for(  # the scheduler launches it if older jobs wait
        lambda: (
            api_stack.reconcile()
            or ((f := api_stack.stack.files.share_folder("devstoreaccount1", "ws-ws-inputs")).is_dir() and f)
        ),
        what="the workspace share",
    )
    (folder / "a.txt").write_text("a")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "b.txt").write_text("b")
    (folder / "escape").symlink_to("/etc", target_is_directory=True)
    return "ws-inputs"


@pytest.mark.parametrize(
    "path",
    ["a%00b", "a%01b", "a:b", "a*b", "x" * 300, "/".join(["d"] * 10_000), "escape/passwd", "escape"],
    ids=["nul", "control", "colon", "star", "300-segment", "20000-path", "through-symlink", "symlink"],
)
def test_no_output_path_answers_5xx(http: Api, workspace_job: str, path: str) -> None:
    response = http.call("GET", f"/jobs/{workspace_job}/outputs/{path}")
    assert response.status_code in (400, 404, 414), response.text
    assert "root:" not in response.text


@pytest.mark.parametrize("folder", ["escape", "a%00", "sub", ""])
def test_no_folder_listing_answers_5xx_nor_follows_a_symlink(http: Api, workspace_job: str, folder: str) -> None:
    response = http.call("GET", f"/jobs/{workspace_job}/outputs?path={folder}")
    assert response.status_code in (200, 400, 404), response.text
    assert "passwd" not in response.text


@pytest.mark.parametrize(
    "query",
    [
        "since=9999-12-31T23:59:59-23:59",
        "until=0001-01-01T00:00:00%2B23:59",
        "continuation=[]",
        "continuation={}",
        "continuation=1",
        "continuation=%22x%22",
        "limit=%C2%B2",
    ],
)
def test_job_list_inputs_that_used_to_fail_are_400(http: Api, query: str) -> None:
    response = http.call("GET", f"/jobs?{query}")
    assert (response.status_code, response.headers["Content-Type"]) == (400, "application/problem+json"), query


@pytest.mark.parametrize("query", ["tail=%C2%B2", "tail=-1", "container=%00"])
def test_log_inputs_that_used_to_fail_are_4xx(http: Api, workspace_job: str, query: str) -> None:
    assert http.call("GET", f"/jobs/{workspace_job}/logs?{query}").status_code in (400, 404)


def test_an_outputs_continuation_token_of_the_wrong_shape_is_400(http: Api, workspace_job: str) -> None:
    for token in ("[]", "{}", "%00"):
        response = http.call("GET", f"/jobs/{workspace_job}/outputs?continuation={token}")
        assert response.status_code == 400, (token, response.text)


def test_a_label_with_a_lone_surrogate_is_rejected_naming_it_not_dead_lettered(
    http: Api, api_stack: StackClient
) -> None:
    api_stack.send('{"id": "surrogate-1", "image": "busybox", "labels": {"k": "\\ud800"}}', "m-surrogate-1")
    record = api_stack.wait_status("m-surrogate-1", Status.REJECTED)  # the document is unreadable: its message id
    assert [e.loc for e in record.errors] == ["labels.k"]
    posted = http.call("POST", "/jobs", data='{"image": "busybox", "labels": {"k": "\\ud800"}}', headers=JSON_HEADERS)
    assert posted.status_code == 400
    assert posted.json()["errors"][0]["loc"] == "labels.k"


def test_health_reports_every_dependency_ok(http: Api) -> None:
    response = http.call("GET", "/health")
    assert response.status_code == 200
    assert {name: check["status"] for name, check in response.json()["checks"].items()} == {
        "store": "ok",
        "serviceBus": "ok",
        "arm:local": "ok",
    }


def test_the_api_matches_its_openapi_document_and_never_answers_5xx(http: Api) -> None:
    """schemathesis generates requests for every operation from the document the API serves."""
    bearer = {"Authorization": f"Bearer {http.stack.token('admin')}"}
    schema = schemathesis.openapi.from_url(f"{http.base}/openapi.json", headers=bearer)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= len(ENDPOINTS) - 1  # schemathesis leaves out the document's own endpoint
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, suppress_health_check=list(HealthCheck), deadline=None)
        def check(case: Any) -> None:
            case.call_and_validate(headers=bearer, checks=CHECKS, timeout=30)

        check()

"""The CLI's API client and commands against a small in-process HTTP server that answers like the API.

The server here is a test double of the HTTP API (not the API itself): it serves canned job documents
built from the real response models, records what it was sent, and checks the function key.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from devstack.server import ServerThread
from dispatcher.domain.errors import InvalidJob
from dispatcher.domain.jobs import Status
from dispatcher.domain.tasks import TaskStatus
from dispatcher.entrypoints.api_models import (
    Accepted,
    AttemptOut,
    FieldProblem,
    JobList,
    JobOut,
    LogGapOut,
    LogLineOut,
    LogPageOut,
    OutputEntryOut,
    OutputList,
    Problem,
    TaskOut,
    links,
)
from dispatcher.entrypoints.cli import app
from dispatcher.entrypoints.client import DispatcherClient, UnsafeOutputPath, safe_destination
from dispatcher.entrypoints.client_config import ConfigurationError, resolve_config
from dispatcher.entrypoints.submission import prepare_submission

KEY = "unit-test-function-key-5c2e"
NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
runner = CliRunner()


def job(job_id: str, status: Status, *, exit_code: int | None = None, attempts: int = 1) -> JobOut:
    ended = status.terminal
    return JobOut(
        id=job_id,
        name="unit",
        status=status,
        submitted_at=NOW,
        updated_at=NOW,
        attempts=[
            AttemptOut(
                number=n,
                group=f"{job_id}-a{n}",
                pool="local",
                location="westeurope",
                launched_at=NOW,
                started_at=NOW + dt.timedelta(seconds=1),
                finished_at=NOW + dt.timedelta(seconds=4) if ended else None,
                outcome=status if ended else None,
                exit_codes={"main": exit_code},
            )
            for n in range(1, attempts + 1)
        ],
        cost=0.00012,
        links=links(job_id),
    )


def problem(status: int, title: str, detail: str | None = None, **errors: str) -> Response:
    problems = [FieldProblem(loc=loc, message=message) for loc, message in errors.items()]
    body = Problem(title=title, status=status, detail=detail, errors=problems)
    return Response(
        body.model_dump_json(by_alias=True, exclude_none=True), status, media_type="application/problem+json"
    )


@dataclass
class FakeApi:
    """What the test double serves and what it was sent."""

    jobs: dict[str, list[JobOut]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    pages: dict[str, list[LogPageOut]] = field(default_factory=dict)
    tasks: dict[tuple[str, int], list[TaskOut]] = field(default_factory=dict)
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    listed_files: dict[str, list[str]] = field(default_factory=dict)
    page_size: int = 2
    submit_problem: Response | None = None
    received: list[dict[str, Any]] = field(default_factory=list)

    def current(self, job_id: str) -> JobOut | None:
        """Each read moves a job one state along its script, staying on the last."""
        states = self.jobs.get(job_id)
        if not states:
            return None
        return states.pop(0) if len(states) > 1 else states[0]


def build_app(api: FakeApi) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("x-functions-key") == KEY

    async def submit(request: Request) -> Response:
        body = await request.body()
        api.received.append({"content_type": request.headers.get("content-type"), "body": body})
        if not authorized(request):
            return problem(401, "Unauthorized")
        if api.submit_problem is not None:
            return api.submit_problem
        data = yaml.safe_load(body)
        job_id = data.get("id") or "generated-id"
        api.jobs.setdefault(job_id, [job(job_id, Status.QUEUED)])
        accepted = Accepted(id=job_id, status=Status.QUEUED, location=f"/api/jobs/{job_id}")
        return Response(accepted.model_dump_json(by_alias=True), 202, media_type="application/json")

    async def list_jobs(request: Request) -> Response:
        if not authorized(request):
            return problem(401, "Unauthorized")
        api.received.append({"query": dict(request.query_params)})
        everything = [api.jobs[k][-1] for k in sorted(api.jobs)]
        start = int(request.query_params.get("continuation") or 0)
        items = everything[start : start + api.page_size]
        token = str(start + api.page_size) if start + api.page_size < len(everything) else None
        page = JobList(items=items, continuation_token=token)
        return Response(page.model_dump_json(by_alias=True), media_type="application/json")

    async def get_job(request: Request) -> Response:
        if not authorized(request):
            return problem(401, "Unauthorized")
        found = api.current(request.path_params["id"])
        if found is None:
            return problem(404, "Job not found", f"there is no job {request.path_params['id']!r}")
        return Response(found.model_dump_json(by_alias=True), media_type="application/json")

    async def cancel(request: Request) -> Response:
        job_id = request.path_params["id"]
        api.jobs[job_id] = [job(job_id, Status.CANCELLED)]
        return Response(api.jobs[job_id][0].model_dump_json(by_alias=True), 202, media_type="application/json")

    async def logs(request: Request) -> Response:
        api.received.append({"logs": dict(request.query_params)})
        if "after" in request.query_params:
            pages = api.pages[request.path_params["id"]]
            return Response(pages.pop(0).model_dump_json(by_alias=True), media_type="application/json")
        texts = api.logs.get(request.path_params["id"], [""])
        return PlainTextResponse(texts.pop(0) if len(texts) > 1 else texts[0])

    async def get_task(request: Request) -> Response:
        states = api.tasks[(request.path_params["id"], request.path_params["index"])]
        found = states.pop(0) if len(states) > 1 else states[0]
        return Response(found.model_dump_json(by_alias=True), media_type="application/json")

    async def outputs(request: Request) -> Response:
        job_id = request.path_params["id"]
        folder = request.query_params.get("path", "")
        names = api.listed_files.get(job_id, sorted(api.files.get(job_id, {})))
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, OutputEntryOut] = {}
        for name in names:
            if not name.startswith(prefix):
                continue
            head, sep, _ = name[len(prefix) :].partition("/")
            kind = "directory" if sep and not name.startswith("..") else "file"
            path = prefix + head if kind == "directory" else name
            entries[path] = OutputEntryOut(path=path, kind=kind, size=len(api.files.get(job_id, {}).get(name, b"")))
        listing = OutputList(job_id=job_id, workspace=f"ws-{job_id}", path=folder, entries=list(entries.values()))
        return Response(listing.model_dump_json(by_alias=True), media_type="application/json")

    async def output_file(request: Request) -> Response:
        data = api.files.get(request.path_params["id"], {}).get(request.path_params["path"])
        if data is None:
            return problem(404, "Output not found")
        return Response(data, media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/api/keyed/jobs", submit, methods=["POST"]),
            Route("/api/keyed/jobs", list_jobs, methods=["GET"]),
            Route("/api/keyed/jobs/moved", lambda _: RedirectResponse("http://elsewhere.example/api/keyed/jobs/moved")),
            Route("/api/keyed/jobs/{id}", get_job, methods=["GET"]),
            Route("/api/keyed/jobs/{id}", cancel, methods=["DELETE"]),
            Route("/api/keyed/jobs/{id}/logs", logs, methods=["GET"]),
            Route("/api/keyed/jobs/{id}/tasks/{index:int}", get_task, methods=["GET"]),
            Route("/api/keyed/jobs/{id}/outputs", outputs, methods=["GET"]),
            Route("/api/keyed/jobs/{id}/outputs/{path:path}", output_file, methods=["GET"]),
            # the anonymous routes: without a bearer token, the app answers 401
            Route("/api/{rest:path}", lambda _: problem(401, "Unauthorized"), methods=["GET", "POST", "DELETE"]),
        ]
    )


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real configuration leaks in: an empty home, no DISPATCHER_* variables."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("DISPATCHER_URL", "DISPATCHER_KEY", "DISPATCHER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_api() -> Iterator[tuple[FakeApi, str]]:
    api = FakeApi()
    with ServerThread(build_app(api), port=0, name="fake-api") as server:
        yield api, f"{server.url}/api"


def cli(url: str, *args: str, key: str | None = KEY) -> Any:
    options = ["--url", url] + (["--key", key] if key else [])
    return runner.invoke(app, [*args, *options])


def spec_file(
    tmp_path: Path, text: str = "image: busybox\ncommand: [sh, -c, 'echo hi']\n", name: str = "job.yaml"
) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- configuration ------------------------------------------------------------------------------------------


def test_a_flag_wins_over_the_environment_which_wins_over_the_config_file(tmp_path: Path) -> None:
    # Given a URL and key in all three places
    config = tmp_path / "config.toml"
    config.write_text('url = "https://file.example/api"\nkey = "file-key"\n')
    environ = {
        "DISPATCHER_CONFIG": str(config),
        "DISPATCHER_URL": "https://env.example/api",
        "DISPATCHER_KEY": "env-key",
    }
    # When each is resolved with and without a flag
    with_flags = resolve_config("https://flag.example/api", "flag-key", environ)
    from_env = resolve_config(None, None, environ)
    from_file = resolve_config(None, None, {"DISPATCHER_CONFIG": str(config)})
    # Then the most specific source wins, field by field
    assert (with_flags.url, with_flags.key) == ("https://flag.example/api", "flag-key")
    assert (from_env.url, from_env.key) == ("https://env.example/api", "env-key")
    assert (from_file.url, from_file.key) == ("https://file.example/api", "file-key")


def test_the_config_file_fills_only_what_flags_and_environment_leave_unset(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('url = "https://file.example/api/"\nkey = "file-key"\n')
    resolved = resolve_config("https://flag.example/api/", None, {"DISPATCHER_CONFIG": str(config)})
    assert (resolved.url, resolved.key) == ("https://flag.example/api", "file-key")


def test_the_default_config_file_lives_under_the_home_folder(tmp_path: Path) -> None:
    folder = tmp_path / "home" / ".config" / "aci-dispatcher"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text('url = "https://home.example/api"\n')
    assert resolve_config(None, None, {}).url == "https://home.example/api"


def test_the_key_never_shows_in_the_config_repr() -> None:
    assert "s3cret" not in repr(resolve_config("https://x.example/api", "s3cret", {}))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no API URL"),
        ("url = [", "not valid TOML"),
        ("url = 3", "url must be a string"),
        ('url = "ftp://x"', "http"),
    ],
)
def test_a_missing_or_bad_configuration_is_refused_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        resolve_config(None, None, {"DISPATCHER_CONFIG": str(config)})


def test_the_key_is_never_sent_in_clear_text_except_to_loopback() -> None:
    with pytest.raises(ConfigurationError, match="clear text"):
        resolve_config("http://dispatcher.example/api", "k", {})
    assert resolve_config("http://127.0.0.1:7071/api", "k", {}).key == "k"
    assert resolve_config("http://dispatcher.example/api", None, {}).key is None


def test_a_named_config_file_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve_config(None, None, {"DISPATCHER_CONFIG": str(tmp_path / "missing.toml")})


def test_no_url_anywhere_is_a_usage_error_with_exit_code_2() -> None:
    result = runner.invoke(app, ["status", "some-job"])
    assert result.exit_code == 2
    assert "no API URL" in result.output


# --- submit -------------------------------------------------------------------------------------------------


def test_submit_sends_the_document_as_written_with_its_content_type(
    fake_api: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake_api
    path = spec_file(tmp_path, "id: kept-as-yaml\nimage: busybox\n")
    result = cli(url, "submit", str(path))
    assert result.exit_code == 0, result.output
    assert "kept-as-yaml" in result.output
    assert api.received[0] == {"content_type": "application/yaml", "body": path.read_bytes()}


def test_submit_with_id_sends_json_carrying_that_id(fake_api: tuple[FakeApi, str], tmp_path: Path) -> None:
    api, url = fake_api
    result = cli(url, "submit", str(spec_file(tmp_path, "id: old-id\nimage: busybox\n")), "--id", "new-id", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "id": "new-id",
        "status": "Queued",
        "location": "/api/jobs/new-id",
        "duplicate": False,
        "updatedAt": None,
    }
    assert api.received[0]["content_type"] == "application/json"
    assert json.loads(api.received[0]["body"])["id"] == "new-id"


def test_an_invalid_spec_is_refused_locally_with_exit_2_and_nothing_is_sent(
    fake_api: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake_api
    path = spec_file(tmp_path, "containers:\n  - {name: a, image: busybox, cpu: 9}\nrestartPolicy: Always\n")
    result = cli(url, "submit", str(path))
    assert result.exit_code == 2
    assert "containers[0].cpu: 9 is above the 4 vCPU" in result.output
    assert api.received == []


def test_a_problem_from_the_api_is_printed_with_its_field_errors_and_exit_3(
    fake_api: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake_api
    api.submit_problem = problem(400, "Policy violation", "not allowed", **{"containers[0].image": "registry refused"})
    result = cli(url, "submit", str(spec_file(tmp_path)))
    assert result.exit_code == 3
    assert "400 Policy violation: not allowed" in result.output
    assert "containers[0].image: registry refused" in result.output


def test_without_the_key_the_api_refuses_and_the_key_is_never_printed(
    fake_api: tuple[FakeApi, str], tmp_path: Path
) -> None:
    _, url = fake_api
    refused = cli(url, "submit", str(spec_file(tmp_path)), key=None)
    accepted = cli(url, "submit", str(spec_file(tmp_path)), "--json")
    assert refused.exit_code == 3
    assert "401 Unauthorized" in refused.output
    assert accepted.exit_code == 0
    assert KEY not in refused.output + accepted.output


def test_submit_wait_exits_1_when_the_job_fails(fake_api: tuple[FakeApi, str], tmp_path: Path) -> None:
    # Given a job that runs, then fails with exit code 3
    api, url = fake_api
    api.jobs["doomed"] = [
        job("doomed", Status.QUEUED),
        job("doomed", Status.RUNNING),
        job("doomed", Status.FAILED, exit_code=3),
    ]
    # When it is submitted with --wait
    result = cli(url, "submit", str(spec_file(tmp_path, "id: doomed\nimage: busybox\n")), "--wait", "--interval", "0.1")
    # Then the CLI waits for the end, shows the exit code, and exits 1
    assert result.exit_code == 1, result.output
    assert "Failed" in result.stdout
    assert "doomed-a1" in result.stdout


def test_submit_wait_exits_0_when_the_job_succeeds_and_json_is_the_final_job(
    fake_api: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake_api
    api.jobs["fine"] = [job("fine", Status.RUNNING), job("fine", Status.SUCCEEDED, exit_code=0)]
    result = cli(
        url, "submit", str(spec_file(tmp_path, "id: fine\nimage: busybox\n")), "--wait", "--json", "--interval", "0.1"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "Succeeded"


def log_page(
    job_id: str,
    attempt: int,
    *lines: str,
    containers: tuple[str, ...] = ("main",),
    gaps: tuple[LogGapOut, ...] = (),
    complete: bool = False,
    more: bool = True,
) -> LogPageOut:
    """A page of the API's log cursor; a line ``"side:text"`` is container side's, any other main's."""
    split = [line.partition(":") if ":" in line else ("main", "", line) for line in lines]
    return LogPageOut(
        job_id=job_id,
        attempt=attempt,
        containers=list(containers),
        lines=[LogLineOut(container=name, text=text) for name, _, text in split],
        gaps=list(gaps),
        next=f"cursor-{attempt}-{len(lines)}",
        complete=complete,
        more=more,
    )


def test_submit_follow_walks_the_apis_cursor_and_prints_each_line_once(
    fake_api: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake_api
    api.jobs["chatty"] = [job("chatty", Status.RUNNING), job("chatty", Status.FAILED, exit_code=3, attempts=2)]
    api.pages["chatty"] = [
        log_page("chatty", 1, "same", "same"),
        log_page("chatty", 1),
        log_page("chatty", 1, "same", complete=True),  # handed on: the next page is read at once
        log_page("chatty", 2, "second try"),
        log_page("chatty", 2, "bye", complete=True, more=False),
    ]
    result = cli(
        url, "submit", str(spec_file(tmp_path, "id: chatty\nimage: busybox\n")), "--follow", "--interval", "0.1"
    )
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[:5] == ["same", "same", "same", "second try", "bye"]
    assert "── attempt 2 ──" in result.stderr
    afters = [r["logs"]["after"] for r in api.received if "logs" in r]
    assert afters == ["", "cursor-1-2", "cursor-1-0", "cursor-1-1", "cursor-2-1"]


def test_logs_follow_names_containers_and_says_where_acis_window_lost_lines(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    api.jobs["two"] = [job("two", Status.SUCCEEDED, exit_code=0)]
    gap = LogGapOut(container="side", after="2026-01-01T00:00:01.000000000Z", before="2026-01-01T00:09:00.000000000Z")
    api.pages["two"] = [
        log_page("two", 1, "main:m1", "side:s1", containers=("main", "side")),
        log_page("two", 1, "side:s9", containers=("main", "side"), gaps=(gap,), complete=True, more=False),
    ]
    result = cli(url, "logs", "two", "-f", "--tail", "5", "--interval", "0.1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["[main] m1", "[side] s1", "[side] s9"]
    assert "[side] lines between 2026-01-01T00:00:01.000000000Z and 2026-01-01T00:09:00.000000000Z are gone" in (
        " ".join(result.stderr.split())
    )
    assert [r["logs"].get("tail") for r in api.received if "logs" in r] == ["5", "5"]


def test_logs_follow_of_a_task_walks_each_of_its_runs_and_exits_1_when_it_failed(
    fake_api: tuple[FakeApi, str],
) -> None:
    api, url = fake_api
    running = TaskOut(index=7, status=TaskStatus.RUNNING, runs=1, group="arr-g1")
    retrying = TaskOut(index=7, status=TaskStatus.PENDING, runs=1, attempts=1, group="arr-g1")
    again = TaskOut(index=7, status=TaskStatus.RUNNING, runs=2, attempts=1, group="arr-g4")
    failed = TaskOut(index=7, status=TaskStatus.FAILED, runs=2, attempts=2, group="arr-g4", exit_code=3)
    api.tasks[("arr", 7)] = [running, retrying, again, failed]
    api.pages["arr-g1"] = [log_page("arr-g1", 1, "first"), log_page("arr-g1", 1, "bye 1", complete=True, more=False)]
    api.pages["arr-g4"] = [log_page("arr-g4", 1, "second"), log_page("arr-g4", 1, "bye 2", complete=True, more=False)]
    result = cli(url, "logs", "arr", "--task", "7", "-f", "--tail", "50", "--interval", "0.1")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == ["first", "bye 1", "second", "bye 2"]
    assert "── run 2 ──" in result.stderr
    assert "task 7: Failed" in result.stderr
    walked = [r["logs"] for r in api.received if "logs" in r]
    assert [(w["after"], w.get("container"), w.get("tail")) for w in walked] == [
        ("", "task-7", "50"),
        ("cursor-1-1", "task-7", "50"),  # the API takes the tail only to begin
        ("", "task-7", None),  # a later run from its start
        ("cursor-1-1", "task-7", None),
    ]


# --- reading ------------------------------------------------------------------------------------------------


def test_status_json_is_the_apis_document(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    api.jobs["done"] = [job("done", Status.SUCCEEDED, exit_code=0)]
    result = cli(url, "status", "done", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(api.jobs["done"][0].model_dump_json(by_alias=True))


def test_status_summary_shows_attempts_exit_codes_and_cost(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    api.jobs["retried"] = [job("retried", Status.SUCCEEDED, exit_code=0, attempts=2)]
    result = cli(url, "status", "retried")
    assert result.exit_code == 0, result.output
    assert "retried-a1" in result.stdout
    assert "retried-a2" in result.stdout
    assert "0.00012 USD" in result.stdout
    assert "3.0s" in result.stdout


def test_an_unknown_job_exits_4(fake_api: tuple[FakeApi, str]) -> None:
    _, url = fake_api
    result = cli(url, "status", "nope")
    assert result.exit_code == 4
    assert "404 Job not found" in result.output


def test_a_redirect_is_not_followed_so_the_key_stays_with_the_api(fake_api: tuple[FakeApi, str]) -> None:
    _, url = fake_api
    result = cli(url, "status", "moved")
    assert result.exit_code == 3
    assert "307 Redirect not followed" in result.output


def test_an_unreachable_api_exits_3_with_a_clear_message() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli(f"http://127.0.0.1:{port}/api", "status", "anything")
    assert result.exit_code == 3
    assert f"cannot connect to http://127.0.0.1:{port}/api" in result.output


def test_list_all_follows_continuation_tokens_and_sends_filters(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    for name in ("a", "b", "c", "d", "e"):
        api.jobs[name] = [job(name, Status.SUCCEEDED, exit_code=0)]
    result = cli(url, "list", "--all", "--json", "--status", "Succeeded", "--label", "team=finance", "--label", "k=v")
    assert result.exit_code == 0, result.output
    assert [item["id"] for item in json.loads(result.stdout)["items"]] == ["a", "b", "c", "d", "e"]
    queries = [r["query"] for r in api.received if "query" in r]
    assert len(queries) == 3
    assert queries[0]["label"] == "team=finance,k=v"
    assert queries[0]["status"] == "Succeeded"


def test_list_without_all_shows_one_page_and_the_next_token(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    for name in ("a", "b", "c"):
        api.jobs[name] = [job(name, Status.RUNNING)]
    result = cli(url, "list")
    assert result.exit_code == 0, result.output
    assert "More jobs: --all, or --continuation 2" in result.output
    assert "c " not in result.stdout


def test_a_bad_label_filter_is_a_usage_error(fake_api: tuple[FakeApi, str]) -> None:
    _, url = fake_api
    assert cli(url, "list", "--label", "nolabel").exit_code == 2


def test_logs_passes_container_and_tail(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    api.jobs["j"] = [job("j", Status.SUCCEEDED, exit_code=0)]
    api.logs["j"] = ["last line\n"]
    result = cli(url, "logs", "j", "--container", "main", "--tail", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout == "last line\n"
    assert {"logs": {"container": "main", "tail": "5"}} in api.received


def test_cancel_reports_the_new_status(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    api.jobs["q"] = [job("q", Status.QUEUED)]
    result = cli(url, "cancel", "q")
    assert result.exit_code == 0, result.output
    assert "Cancelled" in result.stdout


# --- outputs ------------------------------------------------------------------------------------------------


def test_download_fetches_every_output_keeping_subfolders(fake_api: tuple[FakeApi, str], tmp_path: Path) -> None:
    api, url = fake_api
    api.files["r"] = {"report.txt": b"total 42\n", "charts/a b.csv": b"x,y\n"}
    result = cli(url, "outputs", "r", "--download", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "report.txt").read_bytes() == b"total 42\n"
    assert (tmp_path / "out" / "charts" / "a b.csv").read_bytes() == b"x,y\n"


def test_download_refuses_a_path_escaping_the_folder_and_writes_nothing(
    fake_api: tuple[FakeApi, str], tmp_path: Path
) -> None:
    # Given a server that lists a file outside the workspace next to a legitimate one
    api, url = fake_api
    api.files["evil"] = {"ok.txt": b"fine", "../escaped.txt": b"gotcha"}
    api.listed_files["evil"] = ["ok.txt", "../escaped.txt"]
    # When the outputs are downloaded
    result = cli(url, "outputs", "evil", "--download", str(tmp_path / "out"))
    # Then the CLI refuses, exits 3, and writes nothing at all
    assert result.exit_code == 3
    assert "refusing output path '../escaped.txt'" in result.output
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "ok.txt").exists()


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "a/./b", "a\\..\\b", "", "a//b", "x\x00y"])
def test_safe_destination_refuses_anything_but_a_plain_relative_path(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeOutputPath):
        safe_destination(tmp_path, name)


def test_safe_destination_refuses_a_path_through_a_symlink_that_leaves_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafeOutputPath, match="leads outside"):
        safe_destination(folder, "link/x.txt")


def test_safe_destination_keeps_subfolders_inside(tmp_path: Path) -> None:
    assert safe_destination(tmp_path, "a/b.txt") == tmp_path.resolve() / "a" / "b.txt"


# --- pure helpers -------------------------------------------------------------------------------------------


def test_prepare_submission_rejects_an_invalid_document_with_every_error() -> None:
    with pytest.raises(InvalidJob) as caught:
        prepare_submission(b"containers: 3\nrestartPolicy: Always\n", "job.yaml")
    assert {e.loc for e in caught.value.errors} >= {"containers"}


def test_prepare_submission_leaves_a_json_document_as_json() -> None:
    submission = prepare_submission(b'{"image": "busybox"}', "job.json")
    assert (submission.content_type, submission.job_id) == ("application/json", None)


def test_the_client_is_usable_directly(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    api.jobs["direct"] = [job("direct", Status.RUNNING), job("direct", Status.SUCCEEDED, exit_code=0)]
    seen: list[Status] = []
    with DispatcherClient(url, KEY) as client:
        final = client.wait("direct", interval=0.05, on_poll=lambda j: seen.append(j.status))
    assert final.status is Status.SUCCEEDED
    assert seen == [Status.RUNNING, Status.SUCCEEDED]

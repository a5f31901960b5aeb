"""The CLI's conventions: one exit-code contract with JSON errors under --json, --version, case-insensitive
choices, relative and zoned times, a client that rides out the network, and hints for a wrong URL or key."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from devstack.server import ServerThread
from dispatcher import __version__
from dispatcher.domain.jobs import Status
from dispatcher.entrypoints import client_transport
from dispatcher.entrypoints.api_models import Accepted
from dispatcher.entrypoints.cli import app
from tests.unit.test_cli_client import KEY, FakeApi, cli, fake_api, isolated_config, job, problem, spec_file

__all__ = ["fake_api", "isolated_config"]  # fixtures used here
runner = CliRunner()


def test_an_invalid_spec_exits_2_from_validate_as_from_submit(tmp_path: Path) -> None:
    bad = spec_file(tmp_path, "image: busybox\ncpu: lots\n")
    assert runner.invoke(app, ["validate", str(bad)]).exit_code == 2
    assert runner.invoke(app, ["submit", str(bad), "--url", "http://127.0.0.1:9/api", "--key", KEY]).exit_code == 2


def test_json_errors_go_to_stdout_as_json(fake_api: tuple[FakeApi, str]) -> None:
    _, url = fake_api
    result = cli(url, "status", "nope", "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["status"] == 404


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_choices_are_case_insensitive(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    result = cli(url, "list", "--status", "failed")
    assert result.exit_code == 0, result.output
    assert api.received[-1]["query"]["status"] == "Failed"


def test_since_takes_relative_times_and_refuses_a_time_without_a_zone(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    before = dt.datetime.now(dt.UTC)
    assert cli(url, "list", "--since", "90m").exit_code == 0
    since = dt.datetime.fromisoformat(api.received[-1]["query"]["since"])
    assert abs((before - dt.timedelta(minutes=90) - since).total_seconds()) < 60
    assert cli(url, "list", "--since", "2026-11-22T10:00+01:00").exit_code == 0
    assert api.received[-1]["query"]["since"] == "2026-11-22T09:00:00+00:00"
    naive = cli(url, "list", "--since", "2026-11-22T10:00")
    assert naive.exit_code == 2
    assert "zone" in naive.output


def unavailable(status: int = 503) -> Response:
    return problem(status, "Too many requests" if status == 429 else "Dependency unavailable")


@pytest.fixture
def flaky_api() -> Iterator[tuple[dict[str, int], list[bytes], str]]:
    """An API whose job reads fail with ``failures["status"]`` (503) ``failures["get"]`` times and whose
    submissions fail ``failures["post"]`` times, then answer."""
    failures = {"get": 0, "post": 0, "status": 503}
    posted: list[bytes] = []
    reads = {"n": 0}

    async def submit(request: Request) -> Response:
        body = await request.body()
        posted.append(body)
        if failures["post"] > 0:
            failures["post"] -= 1
            return unavailable()
        job_id = yaml.safe_load(body)["id"]
        accepted = Accepted(id=job_id, status=Status.QUEUED, location=f"/api/jobs/{job_id}")
        return Response(accepted.model_dump_json(by_alias=True), 202, media_type="application/json")

    async def get_job(request: Request) -> Response:
        if failures["get"] > 0:
            failures["get"] -= 1
            return unavailable(failures["status"])
        reads["n"] += 1
        status = Status.RUNNING if reads["n"] < 2 else Status.SUCCEEDED
        found = job(request.path_params["id"], status, exit_code=0)
        return Response(found.model_dump_json(by_alias=True), media_type="application/json")

    app_ = Starlette(
        routes=[Route("/api/keyed/jobs", submit, methods=["POST"]), Route("/api/keyed/jobs/{id}", get_job)]
    )
    with ServerThread(app_, port=0, name="flaky-api") as server:
        yield failures, posted, f"{server.url}/api"


def test_wait_rides_out_an_outage_longer_than_one_calls_retries(
    flaky_api: tuple[dict[str, int], list[bytes], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the retries' own backoff is urllib3's, not under test
    monkeypatch.setattr(client_transport, "BACKOFF_FACTOR", 0.0)
    failures, _, url = flaky_api
    path = spec_file(tmp_path, "id: ride-out\nimage: busybox\n")
    failures["get"] = 6  # one more than a call's own retries
    result = cli(url, "submit", str(path), "--wait", "--interval", "0.1")
    assert result.exit_code == 0, result.output
    assert "still waiting" in result.stderr


def test_a_throttled_read_is_retried_after_the_servers_wait(
    flaky_api: tuple[dict[str, int], list[bytes], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the Functions host answers 429 when it sheds load (host.json maxOutstandingRequests)
    monkeypatch.setattr(client_transport, "BACKOFF_FACTOR", 0.0)
    failures, _, url = flaky_api
    failures.update(get=2, status=429)
    result = cli(url, "status", "throttled")
    assert result.exit_code == 0, result.output
    assert failures["get"] == 0


def test_submit_gives_a_spec_without_an_id_one_so_a_retried_post_is_the_same_job(
    flaky_api: tuple[dict[str, int], list[bytes], str], tmp_path: Path
) -> None:
    failures, posted, url = flaky_api
    failures["post"] = 1
    result = cli(url, "submit", str(spec_file(tmp_path)), "--json")
    assert result.exit_code == 0, result.output
    ids = [yaml.safe_load(body)["id"] for body in posted]
    assert len(ids) == 2
    assert ids[0] == ids[1] == json.loads(result.stdout)["id"]


def test_a_wrong_key_and_a_url_without_api_say_where_to_look(fake_api: tuple[FakeApi, str]) -> None:
    _, url = fake_api
    wrong_key = cli(url, "status", "x", key="not-the-key")
    assert wrong_key.exit_code == 3
    assert "DISPATCHER_KEY" in wrong_key.stderr
    no_api = cli(url.removesuffix("/api"), "status", "x")
    assert "/api" in no_api.stderr


@pytest.mark.parametrize(
    "command", [["submit"], ["list"], ["logs"], ["rerun"], ["dlq", "list"], ["schedule", "delete"]]
)
def test_flags_are_shown_as_flags_not_as_bool_values(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    shown = [line for line in result.stdout.splitlines() if "<bool>" in line and "Show this message" not in line]
    assert shown == []  # typer itself still shows its own --help so


def test_the_wait_line_of_a_job_waiting_for_its_retry_says_how_the_attempt_ended_and_when_the_next_is_due() -> None:
    import datetime as dt

    from dispatcher.entrypoints.api_models import AttemptOut, JobOut, Links
    from dispatcher.entrypoints.cli_watch import progress_text

    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    failed = AttemptOut(number=1, group="j-a1", pool="p", location="l", outcome="Failed", exit_codes={"main": 3})
    job = JobOut(
        id="j",
        status="Queued",
        submitted_at=now,
        updated_at=now,
        not_before=now + dt.timedelta(seconds=30),
        attempts=[failed],
        links=Links(self="/", logs="/", outputs="/"),
    )
    text = progress_text(job)
    assert "attempt 1 Failed (exit 3); retry at 12:00:30" in text

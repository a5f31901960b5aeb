"""Every route answers any input with a 2xx or a 4xx problem, never a 5xx: generated text for every path parameter
and query value, through the handlers over the fakes (the HTTP layer's own decoding is the e2e suite's)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.entrypoints import http as api
from dispatcher.entrypoints import http_runs
from dispatcher.service import schedules
from dispatcher.service.submit import accept_message
from tests.fakes import make_world
from tests.fixtures.callers import ADMIN_CALLER

WORLD = make_world()
SPEC = {
    "id": "ws-1",
    "containers": [{"name": "main", "image": "busybox", "mounts": [{"volume": "out", "path": "/out"}]}],
    "volumes": {"out": {"kind": "workspace"}},
}
accept_message(WORLD.services, json.dumps(SPEC).encode(), "ws-1", "application/json")
WORLD.shares.put("ws-ws-1", "a.txt", b"a")
WORLD.shares.put("ws-ws-1", "sub/b.txt", b"b")
schedules.apply(
    WORLD.services, {"schedule": {"name": "nightly", "cron": "0 3 * * *"}, "job": {"image": "busybox"}}, "nightly"
)

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=300) | st.sampled_from(
    ["", "\x00", "%01", "a:b", "*", "x" * 300, "/".join(["d"] * 10_000), "..", "../x", "²", "[]", "{}", "\ud800"]
)
JOB = st.sampled_from(["ws-1", "nope"]) | TEXT
QUERY_NAMES = ["since", "until", "tail", "container", "continuation", "status", "label", "limit", "path"]
QUERY = st.dictionaries(st.sampled_from(QUERY_NAMES), TEXT, max_size=4)


def assert_answered(response: api.Response) -> None:
    assert response.status < 500, (response.status, response.body[:300])
    if response.status >= 400:
        assert response.content_type == "application/problem+json"


@given(job=JOB, query=QUERY)
def test_reads_of_a_job_never_answer_5xx(job: str, query: dict[str, str]) -> None:
    request = api.Request(caller=ADMIN_CALLER, query=query)
    assert_answered(api.get_job(WORLD.services, job, api.Request(caller=ADMIN_CALLER)))
    assert_answered(api.logs(WORLD.services, job, request))
    assert_answered(api.outputs(WORLD.services, job, request))


@given(job=JOB, path=TEXT)
def test_output_files_never_answer_5xx(job: str, path: str) -> None:
    assert_answered(api.output_file(WORLD.services, job, path, api.Request(caller=ADMIN_CALLER)))


@given(query=QUERY)
def test_job_lists_never_answer_5xx(query: dict[str, str]) -> None:
    assert_answered(api.list_jobs(WORLD.services, api.Request(caller=ADMIN_CALLER, query=query)))


@given(job=TEXT)
def test_cancels_of_unknown_jobs_never_answer_5xx(job: str) -> None:
    assert_answered(api.cancel(WORLD.services, job if job != "ws-1" else "ws-2", api.Request(caller=ADMIN_CALLER)))


@given(body=st.binary(max_size=2000) | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_submissions_never_answer_5xx(body: bytes) -> None:
    assert_answered(
        api.submit(
            WORLD.services, api.Request(caller=ADMIN_CALLER, body=body, headers={"content-type": "application/json"})
        )
    )


BODY = st.binary(max_size=2000) | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
HEADERS = st.fixed_dictionaries(
    {}, optional={"content-type": st.sampled_from(["application/json", "text/csv", ""]) | TEXT, "idempotency-key": TEXT}
)
NAME = st.sampled_from(["nightly", "nope"]) | TEXT


@given(job=JOB, body=BODY, headers=HEADERS)
def test_reruns_never_answer_5xx(job: str, body: bytes, headers: dict[str, str]) -> None:
    assert_answered(http_runs.rerun(WORLD.services, job, api.Request(caller=ADMIN_CALLER, body=body, headers=headers)))


@given(name=NAME, body=BODY, headers=HEADERS, query=st.dictionaries(st.just("cancelActive"), TEXT, max_size=1))
def test_schedule_routes_never_answer_5xx(
    name: str, body: bytes, headers: dict[str, str], query: dict[str, str]
) -> None:
    request = api.Request(caller=ADMIN_CALLER, body=body, headers=headers, query=query)
    assert_answered(http_runs.get_schedule(WORLD.services, name, api.Request(caller=ADMIN_CALLER)))
    assert_answered(http_runs.put_schedule(WORLD.services, name if name != "nightly" else "other", request))
    for action in ("trigger", "suspend", "resume", "explode"):
        assert_answered(http_runs.schedule_action(WORLD.services, name, action, request))
    assert_answered(http_runs.delete_schedule(WORLD.services, name if name != "nightly" else "gone", request))
    assert_answered(http_runs.list_schedules(WORLD.services, api.Request(caller=ADMIN_CALLER)))

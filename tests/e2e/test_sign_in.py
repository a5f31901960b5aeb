"""Sign-in through the local Functions runner with devstack's issuer: tokens of two teams and an admin on every
route, tokens the API must refuse, forged principal headers, owners and teams on records, tags on the groups."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.mgmt.containerinstance import ContainerInstanceManagementClient

from devstack.identity import API_CLIENT_ID, DEV_USERS, IdentityIssuer
from devstack.stack import RESOURCE_GROUP, SUBSCRIPTION
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.domain.identity import READ, SCHEDULES, SUBMIT, may_see
from dispatcher.domain.identity import Caller as Caller_
from tests.fixtures.stack import StackClient, simulated_stack

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    yield from simulated_stack(tmp_path_factory)


class Caller:
    """Requests to the anonymous routes with one development user's token (or a given one)."""

    def __init__(self, stack: StackClient, token: str | None) -> None:
        assert stack.stack.runner is not None
        self.base = stack.stack.runner.url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kwargs)


def as_user(stack: StackClient, name: str) -> Caller:
    return Caller(stack, stack.stack.token(name))


def submit(caller: Caller, job_id: str, headers: dict[str, str] | None = None, **extra: Any) -> requests.Response:
    spec = {"id": job_id, "image": "busybox", "command": ["true"], **extra}
    return caller("POST", "/jobs", json=spec, headers=headers or {})


@pytest.fixture(scope="module")
def ml_job(stack: StackClient) -> str:
    response = submit(as_user(stack, "alice"), "ml-job")
    assert response.status_code == 202, response.text
    return "ml-job"


def test_a_job_records_its_submitter_and_team_from_the_token_and_labels_the_team(
    stack: StackClient, ml_job: str
) -> None:
    job = as_user(stack, "alice")("GET", f"/jobs/{ml_job}").json()
    alice = DEV_USERS["alice"]
    assert job["team"] == "ml"
    assert job["owner"] == {"id": alice.object_id, "name": alice.display_name, "via": "token"}
    assert job["labels"]["team"] == "ml"


JOB_ROUTES = [
    ("GET", "/jobs/{id}"),
    ("DELETE", "/jobs/{id}"),
    ("GET", "/jobs/{id}/logs"),
    ("GET", "/jobs/{id}/outputs"),
    ("GET", "/jobs/{id}/outputs/a.txt"),
    ("POST", "/jobs/{id}/rerun"),
    ("GET", "/jobs/{id}/tasks"),
    ("GET", "/jobs/{id}/tasks/0"),
]


@pytest.mark.parametrize(("method", "path"), JOB_ROUTES)
def test_another_teams_job_is_not_found_on_every_route(stack: StackClient, ml_job: str, method: str, path: str) -> None:
    kwargs: dict[str, Any] = {"data": b"{}", "headers": JSON} if method == "POST" else {}
    response = as_user(stack, "bob")(method, path.format(id=ml_job), **kwargs)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    record = stack.record(ml_job)
    assert record is not None
    assert not record.cancel_requested


def test_listings_show_the_callers_teams_and_an_admin_everything(stack: StackClient, ml_job: str) -> None:
    assert submit(as_user(stack, "bob"), "web-job").status_code == 202

    def listed(user: str) -> set[str]:
        return {j["id"] for j in as_user(stack, user)("GET", "/jobs?limit=200").json()["items"]}

    alice, bob = listed("alice"), listed("bob")
    assert ml_job in alice
    assert "web-job" not in alice
    assert "web-job" in bob
    assert ml_job not in bob
    assert {ml_job, "web-job"} <= listed("admin")
    assert {ml_job, "web-job"} <= listed("carol")  # in both teams


def test_a_reader_reads_its_teams_jobs_but_may_not_submit_or_cancel(stack: StackClient, ml_job: str) -> None:
    dana = as_user(stack, "dana")
    assert dana("GET", f"/jobs/{ml_job}").status_code == 200
    refused = submit(dana, "dana-job")
    assert refused.status_code == 403
    assert "Jobs.Submit" in refused.json()["detail"]
    assert dana("DELETE", f"/jobs/{ml_job}").status_code == 403


def test_a_caller_in_two_teams_names_one_and_may_not_name_anothers(stack: StackClient) -> None:
    carol = as_user(stack, "carol")
    unnamed = submit(carol, "carol-job")
    assert unnamed.status_code == 400
    assert [e["loc"] for e in unnamed.json()["errors"]] == ["team"]
    named = submit(carol, "carol-job", headers={"X-Dispatcher-Team": "web"})
    assert named.status_code == 202, named.text
    assert carol("GET", "/jobs/carol-job").json()["team"] == "web"
    other = submit(as_user(stack, "alice"), "alice-as-web", headers={"X-Dispatcher-Team": "web"})
    assert other.status_code == 400
    written = submit(as_user(stack, "alice"), "alice-label", labels={"team": "web"})
    assert [e["loc"] for e in written.json()["errors"]] == ["labels.team"]


def test_a_cancel_records_who_asked_and_the_admin_may_cancel_any_team(stack: StackClient) -> None:
    assert submit(as_user(stack, "alice"), "to-cancel").status_code == 202
    assert as_user(stack, "admin")("DELETE", "/jobs/to-cancel").status_code == 202
    record = stack.record("to-cancel")
    assert record is not None
    assert record.cancelled_by is not None
    assert record.cancelled_by.id == DEV_USERS["admin"].object_id


def test_usage_shows_a_caller_its_teams_and_an_admin_every_team(stack: StackClient) -> None:
    assert submit(as_user(stack, "alice"), "usage-ml").status_code == 202
    assert as_user(stack, "admin")("DELETE", "/jobs/usage-ml").status_code == 202  # ended: its usage is recorded
    stack.reconcile()  # folds it into the day's total

    def teams(user: str) -> set[str]:
        response = as_user(stack, user)("GET", "/usage")
        assert response.status_code == 200, response.text
        return {item["key"] for item in response.json()["items"]}

    assert teams("bob") <= {"web"}
    assert "ml" in teams("alice")
    assert "web" not in teams("alice")
    assert "ml" in teams("admin")


def test_another_teams_schedule_is_not_found_and_its_jobs_count_against_the_schedules_team(stack: StackClient) -> None:
    document = {"schedule": {"cron": "0 3 * * *"}, "job": {"image": "busybox", "command": ["true"]}}
    assert as_user(stack, "alice")("PUT", "/schedules/ml-nightly", json=document).status_code == 201
    assert as_user(stack, "bob")("GET", "/schedules/ml-nightly").status_code == 404
    assert "ml-nightly" not in {
        s["schedule"]["name"] for s in as_user(stack, "bob")("GET", "/schedules").json()["items"]
    }
    assert as_user(stack, "dana")("GET", "/schedules/ml-nightly").json()["team"] == "ml"
    assert as_user(stack, "bob")("POST", "/schedules/ml-nightly/trigger").status_code == 403  # no Schedules.Manage
    fired = as_user(stack, "alice")("POST", "/schedules/ml-nightly/trigger", headers={"Idempotency-Key": "k1"})
    assert fired.status_code == 202, fired.text
    job = as_user(stack, "alice")("GET", f"/jobs/{fired.json()['id']}").json()
    assert (job["team"], job["owner"]["via"]) == ("ml", "schedule")


def test_whoami_shows_roles_and_teams(stack: StackClient) -> None:
    me = as_user(stack, "carol")("GET", "/me").json()
    assert (me["name"], me["via"], me["teams"]) == (DEV_USERS["carol"].display_name, "token", ["ml", "web"])
    assert me["roles"] == ["Jobs.Read", "Jobs.Submit"]


def _issuer(stack: StackClient) -> IdentityIssuer:
    return stack.stack.identity


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lifetime": -600},
        {"issued_at": 4_000_000_000.0},
        {"audience": "00000000-0000-0000-0000-00000000beef"},
        {"issuer": "https://login.microsoftonline.com/00000000-0000-0000-0000-0000000000e1/v2.0"},
        {"foreign_key": True},
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "foreign-key"],
)
def test_tokens_the_api_must_not_accept_are_401(stack: StackClient, kwargs: dict[str, Any]) -> None:
    token = _issuer(stack).token("admin", **kwargs)
    response = Caller(stack, token)("GET", "/jobs")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert Caller(stack, None)("GET", "/jobs").headers["www-authenticate"] == "Bearer"  # no token: no error code
    assert token not in response.text


def test_principal_headers_a_client_forges_are_not_credentials(stack: StackClient) -> None:
    """App Service Authentication's headers mean nothing here: the app validates tokens itself."""
    principal = {"auth_typ": "aad", "claims": [{"typ": "roles", "val": "Jobs.Admin"}]}
    forged = {
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
        "X-MS-CLIENT-PRINCIPAL-ID": DEV_USERS["admin"].object_id,
        "X-MS-CLIENT-PRINCIPAL-NAME": "admin",
    }
    assert Caller(stack, None)("GET", "/jobs", headers=forged).status_code == 401
    assert Caller(stack, "not-a-jwt")("GET", "/jobs").status_code == 401


def test_the_group_carries_the_jobs_labels_as_tags(stack: StackClient) -> None:
    assert submit(as_user(stack, "bob"), "tagged", labels={"project": "atlas"}).status_code == 202
    stack.reconcile()  # the jobs before it are in line first
    record = stack.wait_launched("tagged")
    assert record.current is not None
    with ContainerInstanceManagementClient(
        DevstackCredential(), SUBSCRIPTION, base_url=stack.stack.aci.url, connection_verify=str(stack.stack.tls.ca)
    ) as client:
        group = client.container_groups.get(RESOURCE_GROUP, record.current.group)
    assert group.tags is not None
    assert (group.tags["team"], group.tags["project"], group.tags["dispatcher-job"]) == ("web", "atlas", "tagged")


def test_the_cli_signs_in_as_a_development_user(stack: StackClient, tmp_path: Any) -> None:
    assert stack.stack.runner is not None
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "DISPATCHER_URL": stack.stack.runner.url,
        "DISPATCHER_SCOPE": f"api://{API_CLIENT_ID}/.default",
        "DISPATCHER_AUTHORITY": _issuer(stack).authority,
        "DISPATCHER_CA_BUNDLE": str(stack.stack.tls.ca),
        "DISPATCHER_DEV_USER": "bob",
    }
    env.pop("DISPATCHER_KEY", None)
    cli = [sys.executable, "-m", "dispatcher.entrypoints.cli"]
    me = subprocess.run([*cli, "whoami", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert me.returncode == 0, me.stderr
    assert json.loads(me.stdout)["teams"] == ["web"]
    listed = subprocess.run([*cli, "list", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "ml-job" not in listed.stdout


ROUTES = [
    ("GET", "/jobs", None),
    ("GET", "/jobs/matrix-job", None),
    ("GET", "/jobs/matrix-job/logs", None),
    ("GET", "/jobs/matrix-job/outputs", None),
    ("GET", "/jobs/matrix-job/tasks", None),
    ("POST", "/jobs/matrix-job/rerun", b"{}"),
    ("DELETE", "/jobs/matrix-job", None),
    ("GET", "/schedules", None),
    ("GET", "/schedules/matrix-schedule", None),
    ("PUT", "/schedules/matrix-schedule", b'{"schedule": {"cron": "0 4 * * *"}, "job": {"image": "busybox"}}'),
    ("POST", "/schedules/matrix-schedule/suspend", None),
    ("GET", "/policy", None),
    ("GET", "/usage", None),
    ("GET", "/pools", None),
    ("GET", "/health", None),
    ("GET", "/me", None),
    ("POST", "/jobs", b'{"id": "matrix-new-{user}", "image": "busybox"}'),
]
ROLES = {user.name: frozenset(user.roles) for user in DEV_USERS.values()}
TEAMS_OF = {"alice": ("ml",), "bob": ("web",), "carol": ("ml", "web"), "dana": ("ml",), "admin": ()}


def expected(user: str, method: str, path: str) -> int | None:
    """What ``user`` gets: 403 without the route's role, 404 for another team's job or schedule (``matrix-*`` are
    team ml's), 400 naming ``team`` for a submission by a caller in several teams who names none, else a 2xx
    (``None``)."""
    caller = Caller_(id=user, name=user, roles=ROLES[user], teams=TEAMS_OF[user], via="token")
    if path in ("/health", "/me"):
        role = None
    elif path.startswith("/schedules") and method != "GET":
        role = SCHEDULES
    else:
        role = READ if method == "GET" else SUBMIT
    if role is not None and not caller.has(role):
        return 403
    if path.startswith(("/jobs/matrix-job", "/schedules/matrix-schedule")) and not may_see(caller, "ml"):
        return 404
    if (method, path) == ("POST", "/jobs") and len(caller.teams) > 1:
        return 400
    return None


@pytest.fixture(scope="module")
def matrix(stack: StackClient) -> None:
    """A job and a schedule of team ml (alice's), for every user to try every route on."""
    alice = as_user(stack, "alice")
    assert submit(alice, "matrix-job", tasks={"count": 2}).status_code == 202
    document = {"schedule": {"cron": "0 3 * * *"}, "job": {"image": "busybox"}}
    assert alice("PUT", "/schedules/matrix-schedule", json=document).status_code == 201


@pytest.mark.parametrize("user", ["alice", "bob", "carol", "dana", "admin"])
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_route_for_each_team_and_the_admin(
    stack: StackClient, matrix: None, *, user: str, method: str, path: str, body: bytes | None
) -> None:
    """2xx where the role and the team allow it; 403 without the role; 404 for another team's job or schedule."""
    data = body.replace(b"{user}", user.encode()) if body else None
    response = as_user(stack, user)(method, path, data=data, headers=JSON if data else {})
    wanted = expected(user, method, path)
    if wanted is None:
        assert response.status_code < 300, (user, method, path, response.text)
    else:
        assert response.status_code == wanted, (user, method, path, response.text)

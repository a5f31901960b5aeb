"""Tenancy: the authorization decisions, teams from callers and queues, per-job identities, labels as ARM tags."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.adapters.azure.mapping import label_tags
from dispatcher.domain.errors import PolicyViolation
from dispatcher.domain.identity import (
    ADMIN,
    READ,
    SCHEDULES,
    SUBMIT,
    Caller,
    caller_from_claims,
    may_see,
    team_for,
)
from dispatcher.entrypoints import http as api
from dispatcher.entrypoints.routes import ROUTES, Unauthenticated, authenticate
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick
from dispatcher.settings import DispatcherSettings
from tests.fakes import POOL, make_world
from tests.fixtures.callers import ALICE, BOB

TEAMS: dict[str, Any] = {
    "ml": {"groups": ["g-ml"], "identities": {"reader": "/subscriptions/s/resourceGroups/r/providers/x/ml-reader"}},
    "web": {"groups": ["g-web"]},
}
CAROL = Caller(id="carol", name="Carol", roles=frozenset({READ, SUBMIT}), teams=("ml", "web"), via="token")
ADMIN_ONLY = Caller(id="root", name="Root", roles=frozenset({ADMIN}), teams=(), via="token")


@pytest.mark.parametrize(
    ("caller", "requested", "expected"),
    [
        (ALICE, None, "ml"),
        (ALICE, "ml", "ml"),
        (ALICE, "web", "not a member"),
        (CAROL, None, "several teams"),
        (CAROL, "web", "web"),
        (ADMIN_ONLY, None, None),
        (ADMIN_ONLY, "web", "web"),
        (ADMIN_ONLY, "nope", "not a configured team"),
        (Caller(id="x", name="X", roles=frozenset({SUBMIT}), teams=(), via="token"), None, "in no configured team"),
    ],
)
def test_the_team_a_submission_counts_against(caller: Caller, requested: str | None, expected: str | None) -> None:
    if expected in (None, "ml", "web"):
        assert team_for(caller, requested, TEAMS) == expected
        return
    with pytest.raises(PolicyViolation) as raised:
        team_for(caller, requested, TEAMS)
    assert raised.value.errors[0].loc == "team"
    assert expected in raised.value.errors[0].message


@pytest.mark.parametrize(
    ("caller", "team", "seen"),
    [(ALICE, "ml", True), (ALICE, "web", False), (ALICE, None, False), (ADMIN_ONLY, "web", True), (CAROL, "web", True)],
)
def test_who_sees_a_job(caller: Caller, team: str | None, seen: bool) -> None:
    assert may_see(caller, team) is seen


@pytest.mark.parametrize(
    ("roles", "role", "held"),
    [
        ({READ}, READ, True),
        ({READ}, SUBMIT, False),
        ({SUBMIT}, READ, True),
        ({ADMIN}, SUBMIT, True),
        ({ADMIN}, SCHEDULES, False),
        ({SCHEDULES}, READ, False),
    ],
)
def test_roles_imply_the_lesser_job_roles(roles: set[str], role: str, held: bool) -> None:
    assert Caller(id="c", name="C", roles=frozenset(roles), teams=(), via="token").has(role) is held


def test_a_token_maps_to_its_groups_teams_and_an_overflowing_groups_claim_to_none() -> None:
    claims = {"oid": "o1", "name": "Alice", "roles": ["Jobs.Read"], "groups": ["g-ml", "g-other"]}
    caller = caller_from_claims(claims, {name: team["groups"] for name, team in TEAMS.items()})
    assert (caller.id, caller.name, caller.roles, caller.teams) == ("o1", "Alice", frozenset({READ}), ("ml",))
    overage = {"oid": "o2", "azp": "app-id", "_claim_names": {"groups": "src1"}}
    app = caller_from_claims(overage, {"ml": ["g-ml"]})
    assert (app.name, app.teams, app.roles) == ("app-id", (), frozenset())


def test_every_route_needs_a_credential_and_the_keyed_ones_act_as_the_configured_caller() -> None:
    world = make_world(key_caller={"name": "nightly-ci", "team": "web", "roles": ["Jobs.Submit"]}, teams=TEAMS)
    with pytest.raises(Unauthenticated):
        authenticate(world.services, api.Request())
    with pytest.raises(Unauthenticated, match="no bearer tokens"):
        authenticate(world.services, api.Request(headers={"authorization": "Bearer abc"}))
    keyed = authenticate(world.services, api.Request(keyed=True))
    assert (keyed.id, keyed.teams, keyed.roles, keyed.via) == ("key:nightly-ci", ("web",), frozenset({SUBMIT}), "key")
    off = make_world(function_keys=False)
    with pytest.raises(Unauthenticated, match="turned off"):
        authenticate(off.services, api.Request(keyed=True))
    assert {r.role for r in ROUTES if r.method != "GET"} <= {SUBMIT, SCHEDULES}


def submit(world: Any, caller: Caller, spec: dict[str, Any], team: str | None = None) -> Any:
    headers = {"content-type": "application/json", **({"x-dispatcher-team": team} if team else {})}
    return api.submit(world.services, api.Request(body=json.dumps(spec).encode(), headers=headers, caller=caller))


def test_a_job_runs_as_an_identity_its_team_may_use_and_no_other() -> None:
    world = make_world(teams=TEAMS)
    spec = {"id": "ident-1", "image": "busybox", "identity": "reader"}
    assert submit(world, ALICE, spec).status == 202
    run_tick(world.services)
    record = world.services.records.get("ident-1")
    assert record is not None
    assert record.value.current is not None
    group = world.groups.created[(POOL.name, record.value.current.group)]
    assert list(group.identity.user_assigned_identities) == [TEAMS["ml"]["identities"]["reader"]]
    refused = submit(world, BOB, {**spec, "id": "ident-2"})
    assert refused.status == 400
    assert [e["loc"] for e in json.loads(refused.body)["errors"]] == ["identity"]


def test_a_service_bus_submission_counts_against_its_queues_team() -> None:
    world = make_world(teams=TEAMS, queue_teams={"jobs": "web"})
    result = accept_message(world.services, b'{"id": "sb-1", "image": "busybox"}', "m-1", "application/json")
    assert result.record is not None
    assert (result.record.team, result.record.labels["team"]) == ("web", "web")
    assert result.record.owner is not None
    assert (result.record.owner.via, result.record.owner.name) == ("queue", "jobs")
    queued = next(e.data for e in world.events.published if e.kind == "queued")
    assert (queued["team"], queued["actor"]["via"], queued["owner"]["name"]) == ("web", "queue", "jobs")


def test_labels_become_tags_within_arms_rules() -> None:
    own = {"dispatcher-job": "j", "dispatcher-attempt": "1"}
    labels = {"team": "ml", "a/b": "x", "Dispatcher-Job": "clash", "empty": "", "long": "v" * 300}
    tags = label_tags(labels, own)
    assert tags == {"a_b": "x", "long": "v" * 256, "team": "ml"}
    many = label_tags({f"k{i:02}": "v" for i in range(60)}, own)
    assert len(many) + len(own) == 50


def test_a_queue_or_key_caller_of_a_team_that_is_not_configured_is_refused_when_settings_are_read() -> None:
    """Their jobs would wait in a queue no scheduler reads."""
    with pytest.raises(ValueError, match="not in DISPATCHER_TEAMS"):
        DispatcherSettings(teams=TEAMS, queue_teams={"jobs": "nope"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in DISPATCHER_TEAMS"):
        DispatcherSettings(key_caller={"team": "nope"})  # type: ignore[arg-type]

"""Who calls, and what they may do: callers, their roles and teams, and the authorization decisions. Pure.

A caller is authenticated outside this module (a validated Entra ID token, a function key, or the Service Bus
queue a submission came through); here it is only what it is entitled to. The decisions:

- a route needs a role (:data:`ROUTE_ROLES`); ``Jobs.Admin`` holds every job role, ``Jobs.Submit`` holds
  ``Jobs.Read``;
- a caller sees the jobs of its teams only, unless it is an admin; another team's job is *not found* to it, so
  that ids do not leak;
- a job's team comes from the caller, never from what the caller writes: a caller in one team submits as it, one in
  several names one of them, an admin may name any configured team or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from dispatcher.domain.errors import FieldError, PolicyViolation

READ = "Jobs.Read"
SUBMIT = "Jobs.Submit"
ADMIN = "Jobs.Admin"
SCHEDULES = "Schedules.Manage"

TEAM_LABEL = "team"
"""The label the dispatcher sets to the job's team: Cost Management groups the container groups' tags by it."""

_IMPLIED: dict[str, frozenset[str]] = {
    READ: frozenset({READ, SUBMIT, ADMIN}),
    SUBMIT: frozenset({SUBMIT, ADMIN}),
    SCHEDULES: frozenset({SCHEDULES}),
    ADMIN: frozenset({ADMIN}),
}
"""For each role, the roles that grant it."""

Via = Literal["token", "key", "queue", "schedule", "dispatcher"]


class Actor(BaseModel):
    """Who caused a change, as records and events keep it: an Entra object id and display name, or what stands
    for a caller without one (a function key, a queue, a schedule)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    via: Via


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: who it is, its app roles, and the teams its groups map to."""

    id: str
    name: str
    roles: frozenset[str]
    teams: tuple[str, ...]
    via: Via

    @property
    def actor(self) -> Actor:
        return Actor(id=self.id, name=self.name, via=self.via)

    @property
    def admin(self) -> bool:
        return ADMIN in self.roles

    def has(self, role: str) -> bool:
        """Whether the caller holds ``role``, directly or through a role that implies it."""
        return bool(self.roles & _IMPLIED.get(role, frozenset({role})))


class Denied(Exception):
    """The caller may not do this: answered 403 with ``reason``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def require(caller: Caller, role: str) -> None:
    """Raise :class:`Denied` unless ``caller`` holds ``role``."""
    if not caller.has(role):
        held = ", ".join(sorted(caller.roles)) or "none"
        raise Denied(f"this needs the app role {role}; {caller.name} holds {held}")


def teams_of(groups: Iterable[str], teams: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """The teams (by name, sorted) whose groups include one of ``groups``."""
    held = set(groups)
    return tuple(sorted(name for name, members in teams.items() if held.intersection(members)))


def may_see(caller: Caller, team: str | None) -> bool:
    """Whether ``caller`` may see (and act on) a job or schedule of ``team``: an admin sees all, anyone else only
    its teams' (a job of no team is an admin's)."""
    return caller.admin or (team is not None and team in caller.teams)


def visible_teams(caller: Caller) -> tuple[str, ...] | None:
    """The teams whose jobs a listing shows ``caller``, or ``None`` for all."""
    return None if caller.admin else caller.teams


def team_for(caller: Caller, requested: str | None, known: Iterable[str]) -> str | None:
    """The team a submission by ``caller`` counts against. ``requested`` is the team the caller names (the
    ``X-Dispatcher-Team`` header, ``--team``); raises :class:`PolicyViolation` naming ``team`` when it is not one
    of the caller's, or when a caller in several teams names none."""
    configured = set(known)
    if requested is not None:
        if requested not in configured:
            raise PolicyViolation([FieldError("team", f"{ascii(requested)[:70]} is not a configured team")])
        if not caller.admin and requested not in caller.teams:
            raise PolicyViolation([FieldError("team", f"{caller.name} is not a member of team {requested!r}")])
        return requested
    if caller.admin and not caller.teams:
        return None
    if len(caller.teams) == 1:
        return caller.teams[0]
    if not caller.teams:
        raise PolicyViolation([FieldError("team", f"{caller.name} is in no configured team; ask an admin")])
    names = ", ".join(caller.teams)
    raise PolicyViolation([FieldError("team", f"{caller.name} is in several teams ({names}); name one of them")])


def team_labels(labels: Mapping[str, str], team: str | None) -> dict[str, str]:
    """``labels`` with the dispatcher's ``team`` label; raises :class:`PolicyViolation` naming ``labels.team`` when
    the caller wrote a different team there (a job's team is never taken from what its caller writes)."""
    written = labels.get(TEAM_LABEL)
    if written is not None and written != team:
        raise PolicyViolation(
            [FieldError(f"labels.{TEAM_LABEL}", "is set by the dispatcher to the submitter's team; leave it out")]
        )
    out = {k: v for k, v in labels.items() if k != TEAM_LABEL}
    if team is not None:
        out[TEAM_LABEL] = team
    return out


def caller_from_claims(claims: Mapping[str, Any], teams: Mapping[str, Iterable[str]]) -> Caller:
    """The caller a validated Entra ID access token stands for: its object id, a name to show (the user's, or the
    application's id for an app-only token), its app roles, and the teams its ``groups`` claim maps to. A token
    whose groups overflowed (``_claim_names``: more than 200 groups) maps to no team: assign the app role to
    the team's groups, or give the caller fewer groups."""
    roles = claims.get("roles")
    groups = claims.get("groups")
    name = claims.get("name") or claims.get("preferred_username") or claims.get("azp") or claims.get("appid")
    return Caller(
        id=str(claims["oid"]),
        name=str(name or claims["oid"])[:200],
        roles=frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset(),
        teams=teams_of([str(g) for g in groups] if isinstance(groups, list) else [], teams),
        via="token",
    )


def key_caller(name: str, team: str | None, roles: Iterable[str]) -> Caller:
    """The caller a function key stands for, as the operator configured it."""
    return Caller(id=f"key:{name}", name=name, roles=frozenset(roles), teams=(team,) if team else (), via="key")


def queue_actor(queue: str) -> Actor:
    """Who a Service Bus submission counts as: the queue it came through."""
    return Actor(id=f"queue:{queue}", name=queue, via="queue")

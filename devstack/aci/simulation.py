"""Simulate mode: containers do not execute; their states are computed from timestamps when read.

A simulated group holds a few numbers (deploy time, provisioning latency, each container's duration and exit
code) and no thread, so thousands of groups cost almost nothing. Restart policies repeat a container's run:
a container that restarts has run ``floor(elapsed / duration)`` times.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from devstack.aci.config import SimulatedContainer, SimulatedOutcome, SimulationRules
from devstack.aci.runtime import failed_provisioning_view
from devstack.aci.spec import ContainerSpec, GroupSpec
from devstack.aci.state import (
    ContainerState,
    ContainerView,
    Event,
    GroupView,
    ProvisioningFailure,
    restarts,
    terminal_group_state,
)

KILLED_EXIT_CODE = 137
MIN_RESTART_PERIOD = 1.0


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def decide_outcome(rules: SimulationRules, group: GroupSpec, container: ContainerSpec) -> SimulatedOutcome:
    """The outcome of ``container``: the first matching rule, else its DEVSTACK_SIM_* env or tags, else defaults."""
    seen = SimulatedContainer(
        group=group.name,
        name=container.name,
        command=container.command,
        environment=dict(container.plain_environment),
        tags=dict(group.tags),
    )
    for rule in rules.rules:
        outcome = rule(seen)
        if outcome is not None:
            return outcome

    def setting(name: str) -> str | None:
        return container.plain_environment.get(name, group.tags.get(name))

    duration = _float(setting("DEVSTACK_SIM_DURATION"))
    exit_code = _float(setting("DEVSTACK_SIM_EXIT_CODE"))
    return SimulatedOutcome(
        duration_seconds=rules.default_duration_seconds if duration is None else max(0.0, duration),
        exit_code=rules.default_exit_code if exit_code is None else int(exit_code),
        log=setting("DEVSTACK_SIM_LOG") or "",
    )


def _main_phase_state(stopped: bool, running: bool, exit_codes: list[int]) -> str:
    if stopped:
        return "Stopped"
    return "Running" if running else terminal_group_state(exit_codes)


@dataclass
class _Run:
    deployed_at: float
    latency: float
    stopped_at: float | None = None
    restart_base: int = 0


class SimulatedGroup:
    """A container group whose states are a pure function of time. Implements ``GroupRuntime``."""

    def __init__(
        self,
        spec: GroupSpec,
        rules: SimulationRules,
        rng: random.Random,
        now: float,
        failure: ProvisioningFailure | None = None,
    ) -> None:
        self._spec = spec
        self._rules = rules
        self._rng = rng
        self._failure = failure
        self._init = [(c, decide_outcome(rules, spec, c)) for c in spec.init_containers]
        self._main = [(c, decide_outcome(rules, spec, c)) for c in spec.containers]
        self._run = _Run(deployed_at=now, latency=rules.latency(rng))

    def view(self, now: float) -> GroupView:
        """The state at ``now`` (or at the stop time of a stopped group)."""
        run = self._run
        moment = now if run.stopped_at is None else min(now, run.stopped_at)
        ready = run.deployed_at + run.latency
        if self._failure is not None and moment >= ready:
            return failed_provisioning_view(self._spec, self._failure, run.deployed_at, ready)
        if moment < ready:
            phase = "Pending" if moment < run.deployed_at + run.latency / 2 else "Creating"
            state = "Stopped" if run.stopped_at is not None else "Pending"
            return GroupView(provisioning_state=phase, state=state, containers=self._waiting(run.deployed_at))
        cursor = ready
        init_views: dict[str, ContainerView] = {}
        for container, outcome in self._init:
            pulled = self._pull_events(container, run.deployed_at, ready)
            end = cursor + outcome.duration_seconds
            if moment < end:
                init_views[container.name] = ContainerView(
                    current=ContainerState("Running", start_time=cursor, detail_status=""),
                    events=(*pulled, Event("Started", "Started container", cursor, cursor)),
                )
                return self._in_init(init_views, moment, run)
            init_views[container.name] = ContainerView(
                current=ContainerState("Terminated", cursor, end, outcome.exit_code, "Completed"),
                events=(*pulled, Event("Started", "Started container", cursor, cursor)),
            )
            if outcome.exit_code != 0:
                return GroupView(
                    provisioning_state="Succeeded",
                    state="Stopped" if run.stopped_at is not None else "Failed",
                    containers=self._waiting(run.deployed_at),
                    init_containers=init_views,
                )
            cursor = end
        views: dict[str, ContainerView] = {}
        running = False
        exit_codes: list[int] = []
        for container, outcome in self._main:
            view, is_running, exit_code = self._main_view(container, outcome, cursor, moment, run)
            views[container.name] = view
            running = running or is_running
            if exit_code is not None:
                exit_codes.append(exit_code)
        state = _main_phase_state(run.stopped_at is not None, running, exit_codes)
        return GroupView(provisioning_state="Succeeded", state=state, containers=views, init_containers=init_views)

    def _in_init(self, init_views: dict[str, ContainerView], moment: float, run: _Run) -> GroupView:
        for container, _ in self._init:
            init_views.setdefault(container.name, ContainerView(current=ContainerState("Waiting")))
        return GroupView(
            provisioning_state="Creating",
            state="Stopped" if run.stopped_at is not None else "Pending",
            containers=self._waiting(run.deployed_at),
            init_containers=init_views,
        )

    def _waiting(self, deployed_at: float) -> dict[str, ContainerView]:
        return {
            c.name: ContainerView(
                current=ContainerState("Waiting"),
                events=(Event("Pulling", f'pulling image "{c.image}"', deployed_at, deployed_at),),
            )
            for c, _ in self._main
        }

    @staticmethod
    def _pull_events(container: ContainerSpec, deployed_at: float, ready: float) -> tuple[Event, ...]:
        return (
            Event("Pulling", f'pulling image "{container.image}"', deployed_at, deployed_at),
            Event("Pulled", f'Successfully pulled image "{container.image}"', ready, ready),
        )

    def _main_view(
        self, container: ContainerSpec, outcome: SimulatedOutcome, started: float, moment: float, run: _Run
    ) -> tuple[ContainerView, bool, int | None]:
        pulled = self._pull_events(container, run.deployed_at, run.deployed_at + run.latency)
        stopped = run.stopped_at is not None and moment >= run.stopped_at
        duration = outcome.duration_seconds
        if restarts(self._spec.restart_policy, outcome.exit_code):
            period = max(duration, MIN_RESTART_PERIOD)
            runs = math.floor((moment - started) / period)
            current_start = started + runs * period
            previous = (
                ContainerState(
                    "Terminated",
                    current_start - period,
                    current_start - period + duration,
                    outcome.exit_code,
                    "Completed" if outcome.exit_code == 0 else "Error",
                )
                if runs > 0
                else None
            )
            events = (*pulled, Event("Started", "Started container", started, current_start, count=runs + 1))
            current = (
                ContainerState("Terminated", current_start, moment, KILLED_EXIT_CODE, "Killed")
                if stopped
                else ContainerState("Running", start_time=current_start)
            )
            view = ContainerView(run.restart_base + runs, current, previous, events)
            return view, not stopped, None
        end = started + duration
        events = (*pulled, Event("Started", "Started container", started, started))
        if moment < end:
            if stopped:
                killed = ContainerState("Terminated", started, moment, KILLED_EXIT_CODE, "Killed")
                return ContainerView(run.restart_base, killed, None, events), False, KILLED_EXIT_CODE
            running = ContainerState("Running", start_time=started)
            return ContainerView(run.restart_base, running, None, events), True, None
        detail = "Completed" if outcome.exit_code == 0 else "Error"
        done = ContainerState("Terminated", started, end, outcome.exit_code, detail)
        return ContainerView(run.restart_base, done, None, events), False, outcome.exit_code

    def logs(self, container: str, now: float) -> list[tuple[float, str]]:
        """The configured log text of a container that has started, one entry per line."""
        view = self.view(now)
        state = view.containers.get(container) or view.init_containers.get(container)
        if state is None or state.current is None or state.current.start_time is None:
            return []
        for spec, outcome in (*self._init, *self._main):
            if spec.name == container and outcome.log:
                return [(state.current.start_time, line) for line in outcome.log.splitlines(keepends=True)]
        return []

    def stop(self, now: float) -> None:
        """Freeze the simulated state at ``now``; the group shows Stopped."""
        if self._run.stopped_at is None:
            self._run.stopped_at = now

    def start(self, now: float) -> None:
        """Deploy again from now, with a fresh provisioning latency."""
        self._run = _Run(deployed_at=now, latency=self._rules.latency(self._rng))

    def restart(self, now: float) -> None:
        """Run the containers again from now; restart counts carry on."""
        base = self._run.restart_base + 1
        self._run = _Run(deployed_at=now, latency=0.0, restart_base=base)

    def terminate(self) -> None:
        """Nothing runs and nothing is held, so deleting a simulated group releases nothing."""

"""A deployment driven through crashes and faults, and the invariants it must keep.

The real service code (``accept_message``, ``submit_http``, ``cancel``, ``run_tick``) runs over ports that an
:class:`Injector` wraps. The injector sees every call: it fails reads and writes during an outage of the service
behind them, fails a call before it is applied, answers one that was applied with an error (a lost response), or
kills the process right after a write (:class:`Crash`, which no ``except Exception`` catches, as no handler
survives a process that died). The driver then recovers as Azure does: Service Bus delivers an unfinished message
again (and dead-letters it after ``max_deliveries``), a client whose request got no answer sends it again, and the
next timer run starts from what is stored.

The Service Bus of the driver is a model (:class:`Bus`): deliveries, redelivery, dead-lettering and duplicate
detection by message id. The other ports are either the fakes with :class:`SimAci` (containers that run for the
``DEVSTACK_SIM_DURATION`` of their spec and exit with its ``DEVSTACK_SIM_EXIT_CODE``, as the ACI emulator's
simulation mode reads them) or the Azure adapters over the emulators.

:meth:`Sim.tally` checks the invariants: every accepted submission ends in exactly the terminal status its plan
implies (lost, misreported), one terminal event id per job (duplicate events), no attempt's group created again
while it exists and never two groups of one job at once (duplicate runs), no group or reservation left (orphaned),
and no pool over its limits (over-commit).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatcher.adapters.azure.mapping import build_container_group
from dispatcher.domain.errors import CloudError, JobError
from dispatcher.domain.events import EVENT_KINDS
from dispatcher.domain.jobs import Status
from dispatcher.domain.naming import JOB_ID_PROPERTY, replay_message_id
from dispatcher.domain.observed import ContainerView, GroupSummary, GroupView
from dispatcher.domain.placement import RegionUsage
from dispatcher.ports import CreateResult, GroupRequest, JobQuery
from dispatcher.service import schedules
from dispatcher.service.cancel import cancel
from dispatcher.service.services import Services
from dispatcher.service.submit import accept_message, submit_http
from dispatcher.service.tick import run_tick
from dispatcher.settings import DispatcherSettings, Pool
from tests.fakes import FakeClock, make_world

TERMINAL_KINDS = frozenset(EVENT_KINDS[s] for s in Status if s.terminal)


class Crash(BaseException):
    """The process died right after a side effect."""


# --- which calls change something, and which service each port is ---------------------------------------------

WRITES: Mapping[str, frozenset[str]] = {
    "records": frozenset({"insert", "replace", "add_conflict", "write_array"}),
    "retention": frozenset({"purge", "forget", "postpone"}),
    "schedules": frozenset({"insert", "replace", "delete"}),
    "dependencies": frozenset(),
    "outbox": frozenset({"clear"}),
    "ledger": frozenset({"reserve", "release", "mark", "saturate"}),
    "groups": frozenset({"create", "delete", "stop"}),
    "job_secrets": frozenset({"set", "delete"}),
    "secrets": frozenset(),
    "events": frozenset({"publish"}),
    "logs": frozenset({"put", "delete_job"}),
    "shares": frozenset({"ensure", "ensure_folder", "delete"}),
    "jobs_queue": frozenset({"send"}),
    "queue": frozenset(),
    "intents": frozenset(),
    "usage": frozenset({"fold"}),
    "waker": frozenset({"wake_at"}),
}
SERVICE: Mapping[str, str] = {
    "records": "tables",
    "queue": "tables",
    "intents": "tables",
    "outbox": "tables",
    "retention": "tables",
    "ledger": "tables",
    "schedules": "tables",
    "dependencies": "tables",
    "groups": "arm",
    "secrets": "keyvault",
    "job_secrets": "keyvault",
    "events": "servicebus",
    "jobs_queue": "servicebus",
    "shares": "files",
    "logs": "blobs",
    "usage": "tables",
    "waker": "servicebus",
}
SERVICES = ("tables", "servicebus", "files", "keyvault", "arm", "blobs")


@dataclass(frozen=True)
class Call:
    role: str
    method: str
    args: tuple[Any, ...]

    @property
    def name(self) -> str:
        return f"{self.role}.{self.method}"


class Plan:
    """What goes wrong: nothing, by default. Subclasses decide per call."""

    def before(self, call: Call, write: bool) -> Exception | None:
        """An error raised before the call is made (it is not applied)."""
        return None

    def after(self, call: Call) -> BaseException | None:
        """Raised after a write was applied: a :class:`Crash`, or an error the caller takes for a failure."""
        return None


class CrashAfter(Plan):
    """Crash right after the ``n``-th write (1-based) of the flow, once; or, with ``lost_answer``, answer that
    applied write with a transient error, as a response lost on the way back would."""

    def __init__(self, n: int, *, lost_answer: bool = False) -> None:
        self.n = n
        self.lost_answer = lost_answer
        self.writes = 0
        self.crashed: Call | None = None

    def after(self, call: Call) -> BaseException | None:
        self.writes += 1
        if self.writes == self.n and self.crashed is None:
            self.crashed = call
            if self.lost_answer:
                return CloudError(f"injected: {call.name} applied, the answer lost", status=503, transient=True)
            return Crash(call.name)
        return None


class RandomFaults(Plan):
    """Each call fails with probability ``rate``, split evenly between: an error before it (every call), a write
    applied and answered with an error, and a crash right after a write."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()

    def before(self, call: Call, write: bool) -> Exception | None:
        if self.rng.random() < self.rate / 3:
            self.counts["error before"] += 1
            return CloudError(f"injected: {call.name} failed", status=503, transient=True)
        return None

    def after(self, call: Call) -> BaseException | None:
        roll = self.rng.random()
        if roll < self.rate / 3:
            self.counts["applied, answered with an error"] += 1
            return CloudError(f"injected: {call.name} applied, the answer lost", status=503, transient=True)
        if roll < 2 * self.rate / 3:
            self.counts["crash after"] += 1
            return Crash(call.name)
        return None


@dataclass
class Outage:
    service: str
    start: dt.datetime
    end: dt.datetime


class Injector:
    """Every port call goes through :meth:`call`: outages first, then the plan. ``writes`` lists the writes that
    were applied, in order; ``live`` the groups created and not deleted (by name), to catch a create of a group
    that exists (which restarts its containers: the attempt would run twice)."""

    def __init__(self, clock: Any, plan: Plan | None = None) -> None:
        self.clock = clock
        self.plan = plan or Plan()
        self.outages: list[Outage] = []
        self.writes: list[Call] = []
        self.live: dict[str, str] = {}
        """Group name → job id, for groups a create made and no delete removed."""
        self.violations: list[str] = []
        self.published: list[Any] = []
        self.armed = True

    def down(self, service: str) -> bool:
        now = self.clock.now()
        return any(o.service == service and o.start <= now < o.end for o in self.outages)

    def call(self, role: str, method: str, target: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
        call = Call(role, method, args)
        write = method in WRITES.get(role, frozenset())
        if self.armed and self.down(SERVICE[role]):
            raise CloudError(f"{SERVICE[role]} is unreachable", status=503, transient=True)
        error = self.plan.before(call, write) if self.armed else None
        if error is not None:
            raise error
        if role == "groups" and method == "create":
            name, request = args[1], args[2]
            if name in self.live:
                self.violations.append(f"group {name} was created again while it existed: its containers restart")
            others = [g for g, job in self.live.items() if job == request.job_id and g != name]
            if others:
                self.violations.append(f"job {request.job_id}: {name} created while {others} exist")
        result = target(*args, **kwargs)
        if not write:
            return result
        if role == "groups" and method == "create":
            self.live[args[1]] = args[2].job_id
        elif role == "groups" and method == "delete":
            self.live.pop(args[1], None)
        elif role == "events":
            self.published.append(args[0])
        self.writes.append(call)
        after = self.plan.after(call) if self.armed else None
        if after is not None:
            raise after
        return result


class Proxy:
    """A port whose every public method goes through the injector."""

    def __init__(self, target: Any, role: str, injector: Injector) -> None:
        self._target = target
        self._role = role
        self._injector = injector

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._injector.call(self._role, name, attr, args, kwargs)

        return call


def wrapped(services: Services, injector: Injector) -> Services:
    """``services`` with every port behind the injector."""
    ports = {role: Proxy(getattr(services, role), role, injector) for role in SERVICE}
    return dataclasses.replace(services, **ports)


# --- ACI, simulated ---------------------------------------------------------------------------------------------


def behaviour(spec: Any) -> tuple[float, int]:
    """The run time and exit code the first container's environment asks of the simulation."""
    env = spec.containers[0].env if spec.containers else {}
    return float(env.get("DEVSTACK_SIM_DURATION", "60")), int(env.get("DEVSTACK_SIM_EXIT_CODE", "0"))


@dataclass
class SimGroup:
    job_id: str
    pool: str
    cores: float
    tags: dict[str, str]
    containers: tuple[str, ...]
    created: dt.datetime
    seconds: float
    exit_code: int
    stopped_at: dt.datetime | None = None
    restarts: int = 0
    evicted_at: dt.datetime | None = None
    codes: tuple[int, ...] = ()
    """Each container's exit code; an array job's failing tasks exit 1 (``DEVSTACK_SIM_FAIL_TASKS``)."""


class SimAci:
    """The ContainerGroups port on simulated time: a group's containers run ``seconds`` from its create and exit
    with ``exit_code``; a stop kills them (137). Every create checks the pool's group and core limits."""

    def __init__(self, settings: DispatcherSettings, clock: FakeClock) -> None:
        self.settings = settings
        self.clock = clock
        self.groups: dict[tuple[str, str], SimGroup] = {}
        self.over_commits: list[str] = []
        self.creates = 0

    def create(self, pool: Pool, name: str, request: GroupRequest) -> CreateResult:
        body = build_container_group(request, self.settings)
        now = self.clock.now()
        key = (pool.name, name)
        existing = self.groups.get(key)
        if existing is not None:  # ACI restarts the containers of a group PUT again
            existing.created, existing.stopped_at, existing.restarts = now, None, existing.restarts + 1
            return CreateResult("Succeeded")
        cores = sum(c.resources.requests.cpu for c in body.containers)
        mine = [g for (p, _), g in self.groups.items() if p == pool.name]
        if len(mine) + 1 > pool.max_groups or sum(g.cores for g in mine) + cores > pool.max_cores + 1e-9:
            self.over_commits.append(f"{name}: pool {pool.name} would hold {len(mine) + 1} groups")
        seconds, code = behaviour(request.spec)
        failing = {t for t in request.spec.containers[0].env.get("DEVSTACK_SIM_FAIL_TASKS", "").split(",") if t}
        codes = tuple(1 if c.env.get("TASK_INDEX") in failing else code for c in request.spec.containers)
        self.creates += 1
        self.groups[key] = SimGroup(
            request.job_id,
            pool.name,
            cores,
            dict(body.tags or {}),
            tuple(c.name for c in body.containers),
            now,
            seconds,
            code,
            codes=codes,
        )
        return CreateResult("Succeeded")

    def delete(self, pool: Pool, name: str) -> None:
        self.groups.pop((pool.name, name), None)

    def list(self, pool: Pool) -> dict[str, GroupSummary]:
        return {n: GroupSummary(n, "Succeeded", dict(g.tags)) for (p, n), g in self.groups.items() if p == pool.name}

    def get(self, pool: Pool, name: str) -> GroupView | None:
        group = self.groups.get((pool.name, name))
        return None if group is None else self._view(name, group)

    def _view(self, name: str, group: SimGroup) -> GroupView:
        now = self.clock.now()
        restarts = 1 if group.evicted_at is not None else 0
        if group.stopped_at is not None:
            at = group.stopped_at
            containers = tuple(ContainerView(c, "Terminated", 137, group.created, at) for c in group.containers)
            return GroupView(name, "Succeeded", "Stopped", dict(group.tags), containers)
        end = group.created + dt.timedelta(seconds=group.seconds)
        if now < end:
            containers = tuple(
                ContainerView(c, "Running", start_time=group.created, restart_count=restarts) for c in group.containers
            )
            return GroupView(name, "Succeeded", "Running", dict(group.tags), containers)
        codes = group.codes or (group.exit_code,) * len(group.containers)
        containers = tuple(
            ContainerView(c, "Terminated", code, group.created, end, restart_count=restarts)
            for c, code in zip(group.containers, codes, strict=True)
        )
        state = "Succeeded" if not any(codes) else "Failed"
        return GroupView(name, "Succeeded", state, dict(group.tags), containers)

    def usage(self, pool: Pool) -> RegionUsage | None:
        """ACI's usage in the region: the simulated groups of the pool's subscription and location only."""
        mine = [g for g in self.groups.values() if g.pool == pool.name]
        return RegionUsage(len(mine), 10**6, float(sum(g.cores for g in mine)), 1e6)  # nothing else runs there

    def stop(self, pool: Pool, name: str) -> None:
        group = self.groups.get((pool.name, name))
        if group is not None and group.stopped_at is None:
            group.stopped_at = self.clock.now()

    def logs(self, pool: Pool, name: str, container: str, tail: int | None = None, *, timestamps: bool = False) -> str:
        group = self.groups.get((pool.name, name))
        stamp = f"{self.clock.now():%Y-%m-%dT%H:%M:%S.%fZ} " if timestamps else ""
        return "" if group is None else f"{stamp}{name} {container} ran\n"

    def evict(self, name: str) -> None:
        """A Spot eviction: ACI restarts the group, so its containers run again from now."""
        for (_, n), group in self.groups.items():
            if n == name and group.stopped_at is None:
                group.created, group.evicted_at = self.clock.now(), self.clock.now()


# --- Service Bus, modelled --------------------------------------------------------------------------------------


@dataclass
class Message:
    body: bytes
    message_id: str
    content_type: str
    properties: dict[str, str] = field(default_factory=dict)
    deliveries: int = 0
    sequence: int = 0


class Bus:
    """The jobs queue: duplicate detection by message id (the window outlasts any run here), delivery until the
    handler returns, dead-lettering after ``max_deliveries``."""

    def __init__(self, max_deliveries: int) -> None:
        self.max_deliveries = max_deliveries
        self.pending: list[Message] = []
        self.dead: list[Message] = []
        self.seen: set[str] = set()
        self.sequence = 0
        self.dropped = 0

    def send(
        self, body: bytes, message_id: str, content_type: str, properties: Mapping[str, str] | None = None
    ) -> None:
        if message_id in self.seen:
            self.dropped += 1
            return
        self.seen.add(message_id)
        self.sequence += 1
        self.pending.append(Message(body, message_id, content_type, dict(properties or {}), sequence=self.sequence))

    def probe(self) -> None:
        return None

    def dead_letter_count(self, limit: int) -> int:
        return min(len(self.dead), limit)

    def replay_dead_letters(self) -> int:
        """What ``dispatcher dlq replay --all`` does: each dead letter again under its replay id, with its job id."""
        letters, self.dead = self.dead, []
        for letter in letters:
            job_id = letter.properties.get(JOB_ID_PROPERTY) or letter.message_id
            self.send(
                letter.body,
                replay_message_id(letter.message_id, letter.sequence),
                letter.content_type,
                {JOB_ID_PROPERTY: job_id},
            )
        return len(letters)


# --- plans of jobs ----------------------------------------------------------------------------------------------


@dataclass
class JobPlan:
    """One job of a scenario and the outcome it must end in."""

    id: str
    seconds: float = 60.0
    exit_code: int = 0
    timeout: int = 3600
    retries: int = 0
    cpu: float = 1.0
    via: str = "bus"
    cancel_after: float | None = None
    spot: bool = False
    evict_after: float | None = None
    inline_secret: bool = False
    workspace: bool = False
    depends_on: tuple[str, ...] = ()
    tasks: int = 0
    """An array job of this many tasks, three to a group."""
    failing_tasks: tuple[int, ...] = ()
    outcome: Status | None = None
    """The outcome when it is not this job's own (a dependency that failed fails it)."""

    @property
    def expected(self) -> Status:
        if self.outcome is not None:
            return self.outcome
        if self.cancel_after is not None:
            return Status.CANCELLED
        if self.seconds >= self.timeout and not self.tasks:
            return Status.TIMED_OUT
        return Status.SUCCEEDED if self.exit_code == 0 and not self.failing_tasks else Status.FAILED

    def spec(self) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": "main",
            "image": "busybox",
            "command": ["run-batch"],
            "cpu": self.cpu,
            "memoryGB": 1.0,
            "env": {"DEVSTACK_SIM_DURATION": f"{self.seconds:g}", "DEVSTACK_SIM_EXIT_CODE": str(self.exit_code)},
        }
        if self.inline_secret:
            container["secretEnv"] = {"TOKEN": {"value": f"value-of-{self.id}"}}
        spec: dict[str, Any] = {
            "id": self.id,
            "containers": [container],
            "timeoutSeconds": self.timeout,
            "retries": {"count": self.retries, "backoffSeconds": 10},
        }
        if self.spot:
            spec["priority"] = "Spot"
        if self.depends_on:
            spec["dependsOn"] = list(self.depends_on)
        if self.workspace:
            container["mounts"] = [{"volume": "out", "path": "/out"}]
            spec["volumes"] = {"out": {"kind": "workspace"}}
        if self.tasks:
            spec["tasks"] = {"count": self.tasks, "packing": {"tasksPerGroup": 3}}
            container["env"]["DEVSTACK_SIM_FAIL_TASKS"] = ",".join(map(str, self.failing_tasks))
        return spec


@dataclass
class Tally:
    """The invariants' counts; every one must be 0."""

    jobs: int = 0
    lost: list[str] = field(default_factory=list)
    misreported: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    over_commit: list[str] = field(default_factory=list)
    dead_lettered: int = 0
    replayed: int = 0
    steps: int = 0
    simulated_seconds: float = 0.0

    def problems(self) -> list[str]:
        return [*self.lost, *self.misreported, *self.duplicate, *self.orphaned, *self.over_commit]

    def counts(self) -> dict[str, int]:
        return {
            "jobs": self.jobs,
            "lost": len(self.lost),
            "duplicate": len(self.duplicate),
            "orphaned": len(self.orphaned),
            "misreported": len(self.misreported),
            "over_commit": len(self.over_commit),
            "dead_lettered": self.dead_lettered,
            "replayed": self.replayed,
        }


# --- the driver -------------------------------------------------------------------------------------------------


POOL = Pool(
    name="p1",
    subscription_id="sub",
    resource_group="rg-jobs",
    location="westeurope",
    max_groups=4,
    max_cores=8,
    creates_per_5min=10_000,
    creates_per_hour=100_000,
)


def fakes(pools: Sequence[Pool] = (POOL,), **settings: Any) -> tuple[Services, FakeClock, SimAci]:
    """Services over the fakes with :class:`SimAci` as ACI, inline secrets allowed."""
    world = make_world(*pools, **{"allow_inline_secrets": True, **settings})
    aci = SimAci(world.services.settings, world.clock)
    return dataclasses.replace(world.services, groups=aci), world.clock, aci  # type: ignore[arg-type]


class Sim:
    """Submit plans, step time, recover from whatever the plan breaks, and tally the invariants."""

    def __init__(
        self,
        services: Services,
        clock: Any,
        *,
        plan: Plan | None = None,
        tick_seconds: float = 30.0,
        max_deliveries: int = 10,
        evict: Callable[[str], None] | None = None,
    ) -> None:
        self.bus = Bus(max_deliveries)
        self.clock = clock
        self.injector = Injector(clock, plan)
        self.services = wrapped(dataclasses.replace(services, jobs_queue=self.bus), self.injector)
        self.raw = services
        self.tick_seconds = tick_seconds
        self.plans: dict[str, JobPlan] = {}
        self.accepted: set[str] = set()
        self.calls: list[tuple[str, Callable[[], Any]]] = []
        """Client calls not yet answered (HTTP submissions, cancels): sent again each step, as a client does."""
        self.timers: list[tuple[dt.datetime, str, Callable[[], None]]] = []
        self.evict = evict
        self.observe: Callable[[], list[str]] | None = None
        """Checked after every step: over-commits seen from outside the dispatcher (the emulator's counts)."""
        self.unfinished: set[str] = set()
        self.schedules: dict[str, set[str]] = {}
        """Each applied schedule's expected job ids."""
        self.steps = 0
        self.start = clock.now()
        self.tally = Tally()

    # -- what users and the platform do

    def submit(self, plan: JobPlan) -> None:
        self.plans[plan.id] = plan
        self.unfinished.add(plan.id)
        body = json.dumps(plan.spec()).encode()
        if plan.via == "http":
            self.calls.append((plan.id, lambda: submit_http(self.services, body, plan.id)))
        else:
            self.bus.send(body, f"m-{plan.id}", "application/json")
            self.accepted.add(plan.id)
        now = self.clock.now()
        if plan.cancel_after is not None:
            self.timers.append((now + dt.timedelta(seconds=plan.cancel_after), plan.id, lambda: self._cancel(plan.id)))
        if plan.evict_after is not None and self.evict is not None:
            self.timers.append((now + dt.timedelta(seconds=plan.evict_after), plan.id, lambda: self._evict(plan.id)))

    def schedule(self, document: dict[str, Any], fires: Sequence[JobPlan]) -> None:
        """Apply a schedule, as a client that retries until answered; ``fires`` are the jobs it must start, each
        exactly once (a job of the schedule that is not one of them is a duplicate)."""
        name = document["schedule"]["name"]
        self.calls.append((f"schedule {name}", lambda: schedules.apply(self.services, document, name)))
        self.schedules[name] = {plan.id for plan in fires}
        for plan in fires:
            self.plans[plan.id] = plan
            self.unfinished.add(plan.id)
            self.accepted.add(plan.id)  # the schedule is the submitter: accepted once the schedule is

    def _cancel(self, job_id: str) -> None:
        def request() -> None:
            if cancel(self.services, job_id).record is None:  # not recorded yet: the user asks again later
                raise LookupError(job_id)

        self.calls.append((f"cancel {job_id}", request))

    def _evict(self, job_id: str) -> None:
        record = self.raw.records.get(job_id)
        if record is not None and record.value.current is not None and self.evict is not None:
            self.evict(record.value.current.group)

    # -- one step of the world

    def deliver(self) -> None:
        """Deliver every pending message once, as the trigger's concurrent invocations would."""
        if self.injector.down("servicebus"):
            return
        batch, self.bus.pending = self.bus.pending, []
        start, waited = self.clock.now(), dt.timedelta(0)
        for message in batch:
            if isinstance(self.clock, FakeClock):  # the invocations run at once: none waits for another's backoff
                waited = max(waited, self.clock.current - start)
                self.clock.current = start
            message.deliveries += 1
            try:
                job_id = message.properties.get(JOB_ID_PROPERTY)
                accept_message(self.services, message.body, message.message_id, message.content_type, job_id)
            except (Exception, Crash):
                if message.deliveries >= self.bus.max_deliveries:
                    self.bus.dead.append(message)
                    self.tally.dead_lettered += 1
                else:
                    self.bus.pending.append(message)
        if isinstance(self.clock, FakeClock):
            self.clock.current = max(self.clock.current, start + waited)

    def answer_clients(self) -> None:
        calls, self.calls = self.calls, []
        for name, call in calls:
            try:
                call()
            except JobError as exc:  # the API refused it at the door: the scenario is wrong, not the dispatcher
                self.unfinished.discard(name)
                self.plans.pop(name, None)
                self.tally.misreported.append(f"{name}: refused at submission: {exc}")
                continue
            except (Exception, Crash):
                self.calls.append((name, call))
                continue
            if name in self.plans:
                self.accepted.add(name)

    def step(self) -> None:
        now = self.clock.now()
        due = [t for t in self.timers if t[0] <= now]
        self.timers = [t for t in self.timers if t[0] > now]
        for _, _, action in due:
            action()
        self.answer_clients()
        self.deliver()
        with contextlib.suppress(Crash):  # the timer's next run starts from what is stored
            run_tick(self.services, budget_seconds=600)
        self.clock.sleep(self.tick_seconds)
        self.steps += 1
        if self.observe is not None:
            self.tally.over_commit.extend(self.observe())

    def quiet(self) -> bool:
        """Nothing left to do: every job ended, every message and call answered, nothing held or in flight."""
        if self.bus.pending or self.calls or self.timers:
            return False
        for job_id in sorted(self.unfinished):
            found = self.raw.records.get(job_id)
            if found is None or not found.value.status.terminal:
                return False
            self.unfinished.discard(job_id)
        if self.raw.outbox.pending(1):
            return False
        return not any(self._held(pool) for pool in self.raw.settings.pools)

    def _tasks_misreported(self, plan: JobPlan, record: Any) -> list[str]:
        """Every task of an array job ended once, as its plan says, and its job's counts agree."""
        rows = self.raw.records.tasks(plan.id, 0, 10_000)
        failed = sorted(t.index for t in rows if t.status.value != "Succeeded")
        problems = []
        if [t.index for t in rows] != list(range(plan.tasks)) or failed != sorted(plan.failing_tasks):
            problems.append(f"{plan.id}: tasks {[(t.index, t.status.value) for t in rows]}")
        if record.array is None or record.array.failed_indexes != failed or record.array.ended != plan.tasks:
            problems.append(f"{plan.id}: counts {record.array}")
        return problems

    def raw_job_ids(self) -> list[str]:
        records, _ = self.raw.records.list(JobQuery(limit=10_000))
        return [r.id for r in records]

    def _held(self, pool: Pool) -> list[str]:
        _, held = self.raw.ledger.active(pool)
        return [r.group for r in held] + list(self.raw.groups.list(pool))

    def run(self, plans: Sequence[JobPlan], per_step: int, max_steps: int = 100_000) -> Tally:
        """Submit ``per_step`` plans before each step until all are in, then settle."""
        for first in range(0, len(plans), per_step):
            for plan in plans[first : first + per_step]:
                self.submit(plan)
            self.step()
        return self.settle(max_steps)

    def settle(self, max_steps: int = 2000) -> Tally:
        """Step until quiet; then replay the dead letters (as an operator would) and step until quiet again."""
        for _ in range(max_steps):
            if self.bus.dead and not self.bus.pending and not any(map(self.injector.down, SERVICES)):
                self.tally.replayed += self.bus.replay_dead_letters()  # the operator, once the outage is over
            elif self.quiet():
                break
            self.step()
        return self.check()

    # -- the invariants

    def check(self) -> Tally:
        tally = self.tally
        tally.jobs = len(self.plans)
        tally.steps = self.steps
        tally.simulated_seconds = (self.clock.now() - self.start).total_seconds()
        for job_id, plan in self.plans.items():
            if job_id not in self.accepted:
                tally.lost.append(f"{job_id}: its submission was never answered")
                continue
            found = self.raw.records.get(job_id)
            if found is None:
                tally.lost.append(f"{job_id}: no record")
                continue
            record = found.value
            if not record.status.terminal:
                tally.lost.append(f"{job_id}: still {record.status.value}")
            elif record.status is not plan.expected:
                tally.misreported.append(
                    f"{job_id}: {record.status.value} ({record.reason}), not {plan.expected.value}"
                )
            elif plan.tasks:
                tally.misreported.extend(self._tasks_misreported(plan, record))
        terminal: dict[str, set[str]] = defaultdict(set)
        for event in self.injector.published:
            if event.kind in TERMINAL_KINDS:
                terminal[event.job_id].add(event.id)
        for job_id in self.plans:
            ids = terminal.get(job_id, set())
            if len(ids) != 1 and job_id in self.accepted:
                tally.duplicate.append(f"{job_id}: {len(ids)} terminal events")
        tally.duplicate.extend(self.injector.violations)
        for name, expected in self.schedules.items():
            started = {job_id for job_id in self.raw_job_ids() if job_id.startswith(f"{name}-")}
            tally.duplicate.extend(f"{name}: started {job_id}, not a due time" for job_id in sorted(started - expected))
        for pool in self.raw.settings.pools:
            tally.orphaned.extend(f"{pool.name}: {name} left" for name in self._held(pool))
        groups = self.raw.groups
        if isinstance(groups, SimAci):
            tally.over_commit.extend(groups.over_commits)
        return tally


def mixed(count: int, seed: int, *, prefix: str = "j") -> list[JobPlan]:
    """A workload of every kind of job: most succeed; some fail, retry, time out, are cancelled or evicted, carry
    an inline secret or a workspace, or come through the HTTP API."""
    rng = random.Random(seed)
    plans: list[JobPlan] = []
    for n in range(count):
        roll = rng.random()
        plan = JobPlan(f"{prefix}{n}", seconds=rng.choice((30.0, 60.0, 120.0, 240.0)), cpu=rng.choice((1.0, 2.0)))
        if roll < 0.05:
            plan.exit_code = 1
        elif roll < 0.10:
            plan.exit_code, plan.retries = 1, 1
        elif roll < 0.13:
            plan.seconds, plan.timeout = 10_000.0, 90
        elif roll < 0.16:
            plan.seconds, plan.timeout, plan.cancel_after = 100_000.0, 86_400, rng.choice((1.0, 60.0, 200.0))
        elif roll < 0.20:
            plan.spot, plan.evict_after = True, rng.choice((20.0, 45.0))
            plan.seconds = 120.0
        plan.inline_secret = rng.random() < 0.1
        plan.workspace = rng.random() < 0.1
        plan.via = "http" if rng.random() < 0.2 else "bus"
        plans.append(plan)
    return plans

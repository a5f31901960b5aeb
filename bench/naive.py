"""The naive baseline: create a group the moment a message arrives, poll every group with ``get``, delete the finished.

It has no admission control and no job store. A create that ACI refuses (quota or throttling) is kept in
memory and tried again on the next poll, in arrival order, until the first refusal of that poll: the least
a dispatcher must do not to lose jobs. It deletes a group whose containers have all ended, or that has run
past its job's timeout. It speaks to the same ACI emulator through the same SDK, on the same clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    EnvironmentVariable,
    ResourceRequests,
    ResourceRequirements,
)
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from bench.environment import NAIVE_SUBSCRIPTION, Environment
from bench.measures import Sample, SystemRun, TickCost, diff_counters
from bench.workload import COMMAND, IMAGE, Job
from devstack.stack import JOBS_QUEUE
from dispatcher.adapters.azure.credential import DevstackCredential
from dispatcher.settings import Pool

FINISHED = frozenset({"Succeeded", "Failed", "Stopped"})


@dataclass
class _Live:
    job: Job
    pool: Pool
    name: str
    created: float


class NaiveDispatcher:
    """The baseline, on the environment's naive subscription (its own quota), one pool per region."""

    def __init__(self, env: Environment, *, interval: float = 30.0) -> None:
        self.env = env
        self.poll_interval = interval
        self.pools = env.naive_pools
        self._client = ContainerInstanceManagementClient(
            DevstackCredential(),
            NAIVE_SUBSCRIPTION,
            base_url=env.aci_url,
            connection_verify=env.ca_bundle,
            retry_total=0,
        )
        self._bus = ServiceBusClient.from_connection_string(env.stack.servicebus.connection_string)
        self._turn = 0
        self._start = 0.0

    def close(self) -> None:
        self._client.close()
        self._bus.close()

    def _group(self, job: Job, pool: Pool) -> ContainerGroup:
        env = {"DEVSTACK_SIM_DURATION": f"{job.duration:g}", "DEVSTACK_SIM_EXIT_CODE": str(job.exit_code)}
        return ContainerGroup(
            location=pool.location,
            os_type="Linux",
            restart_policy="Never",
            tags={"naive-job": job.id},
            containers=[
                Container(
                    name="main",
                    image=IMAGE,
                    command=COMMAND,
                    resources=ResourceRequirements(requests=ResourceRequests(cpu=job.cpu, memory_in_gb=job.memory_gb)),
                    environment_variables=[EnvironmentVariable(name=k, value=v) for k, v in env.items()],
                )
            ],
        )

    def _create(self, job: Job, live: dict[str, _Live], run: SystemRun) -> bool:
        """Try to create ``job``'s group in the next pool, round robin; ``False`` if ACI refused."""
        pool = self.pools[self._turn % len(self.pools)]
        self._turn += 1
        name = f"{job.id}-naive"
        try:
            self._client.container_groups.begin_create_or_update(
                pool.resource_group, name, self._group(job, pool), polling=False
            ).result()
        except HttpResponseError as error:
            if error.status_code in (409, 429):
                return False
            raise
        live[name] = _Live(job, pool, name, self.env.clock.now())
        run.attempts += 1
        run.launched_s.setdefault(job.id, self.env.clock.now() - self._start)
        return True

    def run(self, jobs: Sequence[Job], *, horizon: float | None = None, max_seconds: float) -> SystemRun:
        """Deliver each job at its arrival, poll every ``poll_interval``, until every job's group is deleted."""
        run = SystemRun(system="naive", jobs=len(jobs), horizon_s=horizon)
        counters0 = self.env.stack.aci.counters()
        wall0 = time.perf_counter()
        start = self._start = self.env.clock.now()
        pending = sorted(jobs, key=lambda j: j.arrival)
        arrived: dict[str, float] = {}
        backlog: deque[Job] = deque()
        live: dict[str, _Live] = {}
        done = 0
        cursor = 0
        limit = horizon if horizon is not None else max_seconds
        next_poll = self.poll_interval
        last_end = 0.0
        with (
            self._bus.get_queue_sender(JOBS_QUEUE) as sender,
            self._bus.get_queue_receiver(JOBS_QUEUE, prefetch_count=100) as receiver,
        ):
            while True:
                due = []
                while cursor < len(pending) and pending[cursor].arrival < next_poll:
                    due.append(pending[cursor])
                    cursor += 1
                by_id = {f"naive-{job.id}": job for job in due}
                for first in range(0, len(due), 100):
                    batch = sender.create_message_batch()
                    for job in due[first : first + 100]:
                        batch.add_message(ServiceBusMessage(job.body(), message_id=f"naive-{job.id}"))
                    sender.send_messages(batch)
                received = 0
                while received < len(due):
                    messages = receiver.receive_messages(max_message_count=100, max_wait_time=5)
                    if not messages:
                        raise RuntimeError(
                            f"only {received} of {len(due)} messages arrived from the Service Bus emulator"
                        )
                    for message in messages:
                        job = by_id[str(message.message_id)]
                        self.env.clock.advance_to(start + job.arrival)
                        arrived[job.id] = start + job.arrival
                        cpu0 = time.thread_time()
                        if backlog or not self._create(job, live, run):
                            backlog.append(job)
                        run.intake_cpu_ms.append((time.thread_time() - cpu0) * 1000)
                        receiver.complete_message(message)
                        received += 1
                self.env.clock.advance_to(start + next_poll)
                now = self.env.clock.now()
                wall, cpu = time.perf_counter(), time.thread_time()
                reads = 0
                active = len(live)
                for name, item in list(live.items()):
                    reads += 1
                    try:
                        group = self._client.container_groups.get(item.pool.resource_group, name)
                    except ResourceNotFoundError:
                        del live[name]
                        continue
                    except HttpResponseError as error:
                        if error.status_code == 429:
                            break
                        raise
                    state: str | None = getattr(group.instance_view, "state", None)  # read-only, typed None in the SDK
                    overdue = now - item.created >= item.job.timeout_seconds
                    if state in FINISHED or overdue:
                        container = group.containers[0].instance_view if group.containers else None
                        current = container.current_state if container else None
                        try:
                            self._client.container_groups.begin_delete(
                                item.pool.resource_group, name, polling=False
                            ).result()
                        except HttpResponseError as error:
                            if error.status_code in (409, 429):
                                continue  # the delete quota or throttling: try again next poll
                            raise
                        del live[name]
                        done += 1
                        last_end = now - start
                        status = "TimedOut" if overdue and state not in FINISHED else str(state)
                        run.statuses[status] = run.statuses.get(status, 0) + 1
                        started_at = getattr(current, "start_time", None)
                        finished_at = getattr(current, "finish_time", None)
                        if started_at is not None:
                            began = started_at.timestamp()
                            if item.created - arrived[item.job.id] < 1e-3:
                                run.start_latency_s.append(began - arrived[item.job.id])
                            run.queue_wait_s.append(item.created - arrived[item.job.id])
                        if state in FINISHED and finished_at is not None:
                            run.exit_to_deleted_s.append(now - finished_at.timestamp())
                launched = 0
                while backlog and self._create(backlog[0], live, run):
                    backlog.popleft()
                    launched += 1
                run.ticks.append(
                    TickCost(
                        t=next_poll,
                        wall_ms=(time.perf_counter() - wall) * 1000,
                        cpu_ms=(time.thread_time() - cpu) * 1000,
                        reads=reads,
                        active=active,
                        launched=launched,
                    )
                )
                run.timeline.append(self._sample(now - start, len(backlog), done, len(live)))
                next_poll += self.poll_interval
                if cursor >= len(pending) and not backlog and not live:
                    break
                if next_poll > limit:
                    if horizon is None:
                        run.notes.append(f"stopped at the safety limit of {max_seconds:g} emulated seconds")
                    break
        run.wall_s = time.perf_counter() - wall0
        run.arm = diff_counters(self.env.stack.aci.counters(), counters0)
        run.makespan_s = last_end if horizon is None else float(horizon)
        run.timeouts = run.statuses.get("TimedOut", 0)
        run.groups_left = self.env.groups_in(NAIVE_SUBSCRIPTION)
        return run

    def _sample(self, t: float, queue: int, completed: int, running: int) -> Sample:
        return Sample(
            t=t,
            groups=self.env.groups_in(NAIVE_SUBSCRIPTION),
            queue=queue,
            completed=completed,
            running=running,
            **self.env.windows(NAIVE_SUBSCRIPTION, self.pools),
        )

    def poll_cost(self, names: Sequence[tuple[Pool, str]]) -> TickCost:
        """One poll of ``names`` with ``get``: what the baseline pays per interval for that many live groups."""
        wall, cpu = time.perf_counter(), time.thread_time()
        for pool, name in names:
            self._client.container_groups.get(pool.resource_group, name)
        return TickCost(
            t=self.env.clock.elapsed(),
            wall_ms=(time.perf_counter() - wall) * 1000,
            cpu_ms=(time.thread_time() - cpu) * 1000,
            reads=len(names),
            active=len(names),
            launched=0,
        )

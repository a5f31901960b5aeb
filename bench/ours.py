"""Drive the real dispatcher: jobs through Service Bus into ``accept_message``, and ``run_tick`` on a fixed interval."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import heapq
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiver, ServiceBusSender
from pyinstrument import Profiler

from bench.environment import OURS_SUBSCRIPTION, Environment
from bench.measures import Sample, SystemRun, TickCost, diff_counters
from bench.workload import ArrayJob, Job
from devstack.stack import JOBS_QUEUE
from dispatcher.adapters.azure.servicebus import wake_slot
from dispatcher.domain.jobs import JobRecord, Status
from dispatcher.ports import JobQuery
from dispatcher.service.launch import Outcome
from dispatcher.service.submit import accept_message
from dispatcher.service.tick import run_tick

log = logging.getLogger(__name__)

SEND_BATCH = 100
PROFILE = "BENCH_PROFILE"
"""A folder: when set, intake and the reconciler runs are profiled with pyinstrument (``--profile``), and each
profile's call tree written there as ``{scenario}-intake.txt`` and ``{scenario}-tick.txt``."""


class Profiles:
    """The two pyinstrument profiles of one run (intake and ticks), each resumed around every call it measures."""

    def __init__(self) -> None:
        self._profilers: dict[str, Profiler] = {}

    @property
    def folder(self) -> Path | None:
        folder = os.environ.get(PROFILE)
        return Path(folder) if folder else None

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        if self.folder is None:
            yield
            return
        profiler = self._profilers.setdefault(name, Profiler(interval=0.0005))
        profiler.start()
        try:
            yield
        finally:
            profiler.stop()

    def write(self, scenario: str) -> None:
        """Write each profile of ``scenario`` and start afresh."""
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            for name, profiler in self._profilers.items():
                tree = profiler.output_text(unicode=True, show_all=False)
                flat = profiler.output_text(unicode=True, flat=True, show_all=True)
                (self.folder / f"{scenario}-{name}.txt").write_text(f"{tree}\n\nBy own time:\n{flat}")
        self._profilers.clear()


profiles = Profiles()
"""This process's profiles: scenarios run one at a time in a process."""


class BenchWaker:
    """The Waker port as the benchmark models it: each request, rounded up to the wake queue's slot as the
    Service Bus adapter rounds it, becomes a reconciler run at that emulated moment (what the wake trigger does)."""

    def __init__(self, slot_seconds: float) -> None:
        self.slot = max(slot_seconds, 1.0)
        self._due: list[float] = []

    def wake_at(self, when: dt.datetime) -> None:
        moment = wake_slot(when, self.slot)[1].timestamp()
        if moment not in self._due:
            heapq.heappush(self._due, moment)

    def next_due(self) -> float | None:
        return self._due[0] if self._due else None

    def take(self, until: float) -> None:
        """Forget the requests a run at ``until`` (epoch seconds) answered."""
        while self._due and self._due[0] <= until:
            heapq.heappop(self._due)


class DispatcherDriver:
    """Runs one workload through the dispatcher on the environment's stepped clock and measures it."""

    def __init__(self, env: Environment, *, interval: float = 30.0) -> None:
        self.profiles = profiles
        self.env = env
        self.tick_interval = interval
        """The reconciler's timer period; while work is active, its wake-ups run it sooner."""
        self.waker = BenchWaker(env.services.settings.reconcile_interval_seconds)
        self.services = dataclasses.replace(env.services, waker=self.waker)
        self._bus = ServiceBusClient.from_connection_string(env.stack.servicebus.connection_string)

    def close(self) -> None:
        self._bus.close()

    def _deliver(
        self,
        jobs: Sequence[Job | ArrayJob],
        start: float,
        run: SystemRun,
        sender: ServiceBusSender,
        receiver: ServiceBusReceiver,
    ) -> None:
        """Send ``jobs`` (single or array jobs) to the queue, receive them, and accept each at its arrival time."""
        arrival = {job.id: job for job in jobs}
        for first in range(0, len(jobs), SEND_BATCH):
            batch = sender.create_message_batch()
            for job in jobs[first : first + SEND_BATCH]:
                batch.add_message(ServiceBusMessage(job.body(), message_id=job.id, content_type="application/json"))
            sender.send_messages(batch)
        received = 0
        while received < len(jobs):
            messages = receiver.receive_messages(max_message_count=100, max_wait_time=5)
            if not messages:
                raise RuntimeError(f"only {received} of {len(jobs)} messages arrived from the Service Bus emulator")
            for message in messages:
                arriving = arrival.get(str(message.message_id))
                if arriving is not None:
                    self.env.clock.advance_to(start + arriving.arrival)
                body = b"".join(message.body)
                cpu0 = time.thread_time()
                with self.profiles.measure("intake"):
                    submitted = accept_message(self.services, body, message.message_id, message.content_type)
                spent = (time.thread_time() - cpu0) * 1000
                run.intake_cpu_ms.append(spent)
                if submitted.launch is not None and submitted.launch.outcome is not Outcome.LAUNCHED:
                    run.recorded_cpu_ms.append(spent)
                receiver.complete_message(message)
                received += 1

    def _step(self, start: float, t: float, timer: float) -> float:
        """The next moment to look at after ``t`` (seconds from ``start``): the timer's next run, a requested
        wake-up, or one wake slot on (arrivals in between may launch and ask for wake-ups of their own)."""
        wake = self.waker.next_due()
        candidates = [timer, t + self.waker.slot]
        if wake is not None:
            candidates.append(max(wake - start, t))
        return min(candidates)

    def _run_due(self, start: float, t: float, timer: float) -> bool:
        """Move the clock to ``t``; whether the reconciler runs then (its timer, or a wake-up, is due)."""
        self.env.clock.advance_to(start + t)
        wake = self.waker.next_due()
        due = t >= timer or (wake is not None and wake <= start + t)
        if due:
            self.waker.take(start + t)
        return due

    def _tick(self, run: SystemRun, t: float) -> None:
        """One reconciler run at benchmark time ``t``, its wall and CPU time and reads kept in ``run``."""
        active = self.env.groups_in(OURS_SUBSCRIPTION)
        wall, cpu = time.perf_counter(), time.thread_time()
        with self.profiles.measure("tick"):
            report = run_tick(self.services)
        run.ticks.append(
            TickCost(
                t=t,
                wall_ms=(time.perf_counter() - wall) * 1000,
                cpu_ms=(time.thread_time() - cpu) * 1000,
                reads=report.reads,
                active=active,
                launched=report.launched,
            )
        )
        if report.errors:
            run.notes.extend(f"t={t:g}s: {e}" for e in report.errors[:3])

    def _sample(self, start: float, delivered: int, counters0: dict[str, dict[str, int]]) -> Sample:
        """Groups held, jobs waiting (delivered minus groups created: the workload has no retries), creates and
        deletes."""
        now = self.env.clock.now()
        created = diff_counters(self.env.stack.aci.counters(), counters0).get("create", {}).get("201", 0)
        queue = delivered - created
        groups = sum(self.env.groups_in(OURS_SUBSCRIPTION, p.location) for p in self.env.pools)
        return Sample(t=now - start, groups=groups, queue=queue, **self.env.windows(OURS_SUBSCRIPTION, self.env.pools))

    def _idle(self) -> bool:
        if self.env.groups_in(OURS_SUBSCRIPTION) > 0 or self.services.queue.queued(1):
            return False
        return all(not self.services.ledger.active(p)[1] for p in self.env.pools)

    def run(self, jobs: Sequence[Job], *, horizon: float | None = None, max_seconds: float) -> SystemRun:
        """Deliver every job at its arrival, tick every ``tick_interval`` emulated seconds until all are done
        (or until ``horizon`` emulated seconds have passed), then read every record."""
        run = SystemRun(system="dispatcher", jobs=len(jobs), horizon_s=horizon)
        counters0 = self.env.stack.aci.counters()
        wall0 = time.perf_counter()
        start = self.env.clock.now()
        pending = sorted(jobs, key=lambda j: j.arrival)
        cursor = 0
        tick_times: list[float] = []
        limit = horizon if horizon is not None else max_seconds
        with (
            self._bus.get_queue_sender(JOBS_QUEUE) as sender,
            self._bus.get_queue_receiver(JOBS_QUEUE, prefetch_count=100) as receiver,
        ):
            timer = self.tick_interval
            t = 0.0
            while True:
                t = self._step(start, t, timer)
                due = []
                while cursor < len(pending) and pending[cursor].arrival < t:
                    due.append(pending[cursor])
                    cursor += 1
                if due:
                    self._deliver(due, start, run, sender, receiver)
                if not self._run_due(start, t, timer):
                    continue
                while timer <= t:
                    timer += self.tick_interval
                self._tick(run, t)
                tick_times.append(t)
                run.timeline.append(self._sample(start, cursor, counters0))
                if cursor >= len(pending) and self._idle():
                    break
                if t > limit:
                    if horizon is None:
                        run.notes.append(f"stopped at the safety limit of {max_seconds:g} emulated seconds")
                    break
        run.wall_s = time.perf_counter() - wall0
        run.arm = diff_counters(self.env.stack.aci.counters(), counters0)
        self._collect(run, jobs, start, tick_times)
        run.groups_left = self.env.groups_in(OURS_SUBSCRIPTION)
        return run

    def _collect(self, run: SystemRun, jobs: Sequence[Job], start: float, tick_times: list[float]) -> None:
        """Latencies and statuses from the job records, the one source of truth."""
        last_end = 0.0
        deleted = self.env.deletions(OURS_SUBSCRIPTION)
        records = self._records()
        for job in jobs:
            record = records.get(job.id)
            if record is None:
                run.notes.append(f"job {job.id} has no record")
                continue
            run.attempts += len(record.attempts)
            if not record.status.terminal:
                continue
            run.statuses[record.status.value] = run.statuses.get(record.status.value, 0) + 1
            group = record.attempts[-1].group if record.attempts else ""
            ended = deleted.get(group, _seconds(record.updated_at))
            last_end = max(last_end, ended - start)
            self._latencies(run, record, start + job.arrival, tick_times, start=start, deleted=ended)
        run.timeouts = run.statuses.get(Status.TIMED_OUT.value, 0)
        run.makespan_s = last_end if run.horizon_s is None else float(run.horizon_s)

    def _records(self) -> dict[str, JobRecord]:
        """Every job record, a thousand per query: reading each one took about 40 s of the run at 5,000 jobs."""
        records: dict[str, JobRecord] = {}
        query = JobQuery(limit=1000)
        while True:
            page, token = self.services.records.list(query)
            records.update((record.id, record) for record in page)
            if token is None:
                return records
            query = JobQuery(limit=1000, continuation=token)

    @staticmethod
    def _latencies(
        run: SystemRun, record: JobRecord, arrived: float, tick_times: list[float], *, start: float, deleted: float
    ) -> None:
        attempt = record.attempts[0] if record.attempts else None
        if attempt is None or attempt.launched_at is None:
            return
        launched = _seconds(attempt.launched_at)
        run.launched_s[record.id] = launched - start
        run.queue_wait_s.append(max(0.0, launched - arrived))
        free = launched - arrived < 1e-3  # launched by intake itself: capacity was free
        if free and attempt.started_at is not None:
            began = _seconds(attempt.started_at)
            run.start_latency_s.append(began - arrived)
            seen = next((start + t for t in tick_times if start + t >= began), None)
            if seen is not None:
                run.running_seen_s.append(seen - arrived)
        if record.status in (Status.SUCCEEDED, Status.FAILED) and attempt.containers:
            finish = attempt.containers[0].finish_time
            if finish is not None:
                run.exit_to_deleted_s.append(deleted - _seconds(finish))


def _seconds(moment: dt.datetime) -> float:
    return moment.timestamp()

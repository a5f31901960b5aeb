"""Timer triggers: NCRONTAB schedules, ``runOnStartup``, ``IsPastDue`` and one run at a time per function.

Schedules are the host's 6-field NCRONTAB ``{second} {minute} {hour} {day} {month} {day-of-week}`` (a
5-field expression is read as whole minutes) or a TimeSpan ``hh:mm:ss`` interval. Like NCrontab, a day of
month and a day of week that are both restricted must both match. Times are UTC unless the app sets
``WEBSITE_TIME_ZONE`` (an IANA name), as on Linux plans.

A listener awaits each run before scheduling the next, so ticks that fall inside a run are skipped; a manual
run (``invoke_timer`` or the admin API) waits for a run in progress and vice versa. ``past_due`` is set when
a run starts later than scheduled by more than ``past_due_margin``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from azure.functions.timer import TimerRequest
from croniter import croniter

from devstack.host.loader import FunctionMetadata
from devstack.host.settings import AppSettings, SettingsError, parse_timespan
from devstack.host.singleton import LISTENER_LOCK_SECONDS, RECOVERY_POLL_SECONDS, ListenerLock

logger = logging.getLogger("devstack.host")

Submit = Callable[[FunctionMetadata, Any, str], concurrent.futures.Future[Any]]
DEFAULT_PAST_DUE_MARGIN = datetime.timedelta(seconds=1)
DEFAULT_HOST_ID = "devstack"


@dataclass(frozen=True)
class TimerSchedule:
    """A parsed schedule that answers "when is the next occurrence strictly after this moment?"."""

    expression: str
    timezone: datetime.tzinfo = datetime.UTC

    def __post_init__(self) -> None:
        self._validate()

    @property
    def is_interval(self) -> bool:
        return ":" in self.expression

    def _validate(self) -> None:
        if self.is_interval:
            if parse_timespan(self.expression, "schedule") <= datetime.timedelta(0):
                raise SettingsError(f"schedule {self.expression!r}: the interval must be positive")
            return
        fields = self.expression.split()
        if len(fields) not in (5, 6) or not croniter.is_valid(self.expression, second_at_beginning=len(fields) == 6):
            raise SettingsError(
                f"schedule {self.expression!r} is not NCRONTAB '{{second}} {{minute}} {{hour}} {{day}} {{month}} "
                "{day-of-week}'"
            )

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first occurrence strictly after ``moment`` (an aware datetime), returned in UTC."""
        if self.is_interval:
            return (moment + parse_timespan(self.expression, "schedule")).astimezone(datetime.UTC)
        six_fields = len(self.expression.split()) == 6
        iterator = croniter(
            self.expression,
            moment.astimezone(self.timezone),
            second_at_beginning=six_fields,
            day_or=False,
        )
        following: datetime.datetime = iterator.get_next(datetime.datetime)
        return following.astimezone(datetime.UTC)


def timezone_of(settings: AppSettings) -> datetime.tzinfo:
    """The zone schedules are read in: ``WEBSITE_TIME_ZONE`` if set (IANA name), else UTC."""
    name = settings.get("WEBSITE_TIME_ZONE")
    if not name:
        return datetime.UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as error:
        raise SettingsError(f"WEBSITE_TIME_ZONE={name!r} is not an IANA time zone") from error


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class TimerListener:
    """Fires one timer function on its schedule; ``fire`` also serves manual runs."""

    def __init__(
        self,
        function: FunctionMetadata,
        schedule: TimerSchedule,
        submit: Submit,
        *,
        run_on_startup: bool = False,
        past_due_margin: datetime.timedelta = DEFAULT_PAST_DUE_MARGIN,
        lock: ListenerLock | None = None,
        recovery_poll: float = RECOVERY_POLL_SECONDS,
    ) -> None:
        self.function = function
        self.lock = lock
        self._recovery_poll = recovery_poll
        self.schedule = schedule
        self._submit = submit
        self._run_on_startup = run_on_startup
        self._margin = past_due_margin
        self._stopping = asyncio.Event()
        self._running = asyncio.Lock()
        self._last: datetime.datetime | None = None
        self.runs = 0

    @classmethod
    def resolve(cls, function: FunctionMetadata, settings: AppSettings, submit: Submit) -> TimerListener:
        """Build a listener from the function's trigger, resolving ``%Setting%`` in the schedule; with an
        ``AzureWebJobsStorage`` account, the listener runs only while it holds the singleton lock
        (:mod:`devstack.host.singleton`). ``DEVSTACK_LISTENER_LOCK_SECONDS`` and
        ``DEVSTACK_LISTENER_LOCK_RECOVERY_SECONDS`` shorten the host's 60 s lease and 1 minute retry for tests."""
        try:
            expression = settings.resolve(str(function.trigger["schedule"]))
            schedule = TimerSchedule(expression, timezone_of(settings))
            period = float(settings.get("DEVSTACK_LISTENER_LOCK_SECONDS") or LISTENER_LOCK_SECONDS)
            recovery = float(settings.get("DEVSTACK_LISTENER_LOCK_RECOVERY_SECONDS") or RECOVERY_POLL_SECONDS)
        except (SettingsError, ValueError) as error:
            raise SettingsError(f"function {function.name}: {error}") from error
        storage = settings.get("AzureWebJobsStorage")
        lock = None
        if storage and storage != "UseDevelopmentStorage=true":
            host_id = settings.get("AzureFunctionsWebHost__hostid") or DEFAULT_HOST_ID
            try:
                lock = ListenerLock(storage, host_id, function.name, period=period)
            except ValueError as error:
                raise SettingsError(f"function {function.name}: {error}") from error
        return cls(
            function,
            schedule,
            submit,
            run_on_startup=bool(function.trigger.get("runOnStartup")),
            lock=lock,
            recovery_poll=recovery,
        )

    def request_stop(self) -> None:
        """Schedule no further runs (call on the worker loop); a run in progress finishes."""
        self._stopping.set()

    async def run(self) -> None:
        """Fire on schedule until stopped; with a lock, only while this instance holds it."""
        if self.lock is None:
            await self._on_schedule(self._stopping)
            return
        lock = self.lock
        try:
            while not self._stopping.is_set():
                if await asyncio.to_thread(lock.acquire):
                    logger.info("timer %s: instance %s holds the listener lock", self.function.name, lock.instance)
                    lost = asyncio.Event()
                    keeper = asyncio.create_task(self._keep(lock, lost))
                    try:
                        await self._on_schedule(lost)
                    finally:
                        keeper.cancel()
                    if self._stopping.is_set():
                        break
                if await self._stopped_within(self._recovery_poll):
                    break
        finally:
            await asyncio.to_thread(lock.release)
            lock.close()

    async def _keep(self, lock: ListenerLock, lost: asyncio.Event) -> None:
        """Renew the lease a third of its period apart; set ``lost`` when it is gone (or stopping)."""
        while not await self._stopped_within(lock.period / 3):
            if not await asyncio.to_thread(lock.renew):
                lost.set()
                return
        lost.set()

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _on_schedule(self, until: asyncio.Event) -> None:
        if self._run_on_startup and not until.is_set():
            await self._fire_logged(_now(), "Timer fired at startup (runOnStartup).")
        cursor = _now()
        while not until.is_set() and not self._stopping.is_set():
            due = self.schedule.next_after(cursor)
            delay = (due - _now()).total_seconds()
            if delay > 0:
                try:
                    await asyncio.wait_for(until.wait(), delay)
                    return
                except TimeoutError:
                    pass
            if self._stopping.is_set():
                return
            await self._fire_logged(due, "Timer fired on schedule.")
            cursor = max(_now(), due)

    async def _fire_logged(self, scheduled: datetime.datetime, reason: str) -> None:
        with contextlib.suppress(Exception):  # the invoker has logged the failure; the schedule goes on
            await self.fire(scheduled, reason)

    async def fire(self, scheduled: datetime.datetime, reason: str) -> None:
        """Run the function once for the occurrence ``scheduled``, after any run in progress; re-raises its error."""
        async with self._running:
            started = _now()
            past_due = started - scheduled > self._margin
            request = TimerRequest(
                past_due=past_due,
                schedule_status={
                    "Last": (self._last or started).isoformat(),
                    "Next": self.schedule.next_after(max(started, scheduled)).isoformat(),
                    "LastUpdated": started.isoformat(),
                },
                schedule={"AdjustForDST": True},
            )
            self._last = started
            self.runs += 1
            await asyncio.wrap_future(self._submit(self.function, request, reason))

"""A client of the dispatcher's HTTP API.

Every call has a timeout; every failure is a :class:`ClientError`: the service could not be reached, it
answered with a problem (``application/problem+json``), or it answered something this client cannot read.
A caller signs in with an Entra ID bearer token (``token``: a function returning a current one, asked before each
request so that an expiring token is renewed by whoever issued it), or sends a function key to the keyed routes
(``/api/keyed/...``). Either travels only in its header and is never part of a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from dispatcher.domain.errors import DispatcherError
from dispatcher.domain.policy import Policy
from dispatcher.entrypoints.api_models import (
    Accepted,
    DryRun,
    Health,
    JobList,
    JobOut,
    LogPageOut,
    Me,
    OutputList,
    Problem,
    ScheduleDeleted,
    ScheduleList,
    ScheduleOut,
    TaskList,
    TaskOut,
    UsageReport,
)
from dispatcher.entrypoints.client_transport import KEYED, problem_from, reason_of, retrying_session

KEY_HEADER = "x-functions-key"
TEAM_HEADER = "X-Dispatcher-Team"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
USER_AGENT = "aci-dispatcher-cli/0.1"

KEYED_ROUTES = "keyed"
"""Where the API serves its routes to function-key callers: the Functions host checks the key there."""

M = TypeVar("M", bound=BaseModel)


class BearerAuth(requests.auth.AuthBase):
    """Puts a current bearer token on each request (retries included), from ``token``."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token()}"
        return request


class ClientError(DispatcherError):
    """Base of the errors the API client raises."""


class ServiceUnreachable(ClientError):
    """The API could not be reached: refused connection, unknown host, TLS failure or timeout."""


class ApiError(ClientError):
    """The API answered with an error status; ``problem`` is its RFC 9457 problem details."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(f"{problem.status} {problem.title}" + (f": {problem.detail}" if problem.detail else ""))

    @property
    def status(self) -> int:
        return self.problem.status


class NotFound(ApiError):
    """The API answered 404: no such job, container or output."""


class UnsafeOutputPath(ClientError):
    """An output's path would land outside the folder it is downloaded into."""


# --- outputs ------------------------------------------------------------------------------------------------


def safe_destination(folder: Path, name: str) -> Path:
    """Where the output ``name`` goes inside ``folder``; raises :class:`UnsafeOutputPath` if it would leave it.

    Refused: empty names, absolute paths, backslashes, NUL, ``.``/``..`` segments, and paths that resolve
    outside ``folder`` through a symbolic link already there.
    """
    pure = PurePosixPath(name)
    parts = name.split("/")
    if (
        not name
        or pure.is_absolute()
        or "\\" in name
        or "\x00" in name
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise UnsafeOutputPath(f"refusing output path {name!r}: it is not a plain relative path")
    root = folder.resolve()
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root):
        raise UnsafeOutputPath(f"refusing output path {name!r}: it leads outside {folder}")
    return target


# --- the client ---------------------------------------------------------------------------------------------


class DispatcherClient:
    """The dispatcher's HTTP API. ``base_url`` is the API root, such as ``https://app.azurewebsites.net/api``."""

    def __init__(
        self,
        base_url: str,
        key: str | None = None,
        *,
        token: Callable[[], str] | None = None,
        team: str | None = None,
        timeout: float = READ_TIMEOUT,
        verify: bool | str = True,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._routes = self.base_url if token is not None or not key else f"{self.base_url}/{KEYED_ROUTES}"
        self._timeout = (CONNECT_TIMEOUT, timeout)
        self._session = session or retrying_session()
        self._keyed = session or retrying_session(KEYED)
        for each in (self._session, self._keyed):
            each.verify = verify
            each.headers["User-Agent"] = USER_AGENT
            if team:
                each.headers[TEAM_HEADER] = team
            if token is not None:
                each.auth = BearerAuth(token)
            elif key:
                each.headers[KEY_HEADER] = key

    def close(self) -> None:
        self._session.close()
        self._keyed.close()

    def __enter__(self) -> DispatcherClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport --

    def _request(
        self, method: str, path: str, *, accept: tuple[int, ...] = (), keyed: bool = False, **kwargs: Any
    ) -> requests.Response:
        """Send one request; an error status not in ``accept`` raises :class:`ApiError` (404: :class:`NotFound`).
        ``keyed`` requests are idempotent and retried as reads are."""
        url = f"{self._routes}{path}"
        session = self._keyed if keyed else self._session
        try:
            # No redirects: the key header would follow them to whatever host they name.
            response = session.request(method, url, timeout=self._timeout, allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise ServiceUnreachable(f"TLS failure talking to {self.base_url}: {reason_of(exc)}") from None
        except requests.exceptions.Timeout:
            raise ServiceUnreachable(f"{self.base_url} did not answer within {self._timeout[1]:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise ServiceUnreachable(f"cannot connect to {self.base_url}: {reason_of(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise ServiceUnreachable(f"request to {self.base_url} failed: {reason_of(exc)}") from None
        if response.is_redirect:
            response.close()
            where = response.headers.get("Location", "elsewhere")
            raise ApiError(
                Problem(
                    title="Redirect not followed",
                    status=response.status_code,
                    detail=f"the API redirected to {where}; the key is only sent to {self.base_url}",
                )
            )
        if response.status_code >= 400 and response.status_code not in accept:
            problem = problem_from(response)
            response.close()
            raise (NotFound if response.status_code == 404 else ApiError)(problem)
        return response

    @staticmethod
    def _model(model: type[M], response: requests.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ApiError(
                Problem(
                    title="Unreadable response",
                    status=response.status_code,
                    detail=f"the API's answer is not a {model.__name__}: {exc.error_count()} problem(s)",
                )
            ) from None

    @staticmethod
    def _job_path(job_id: str) -> str:
        return f"/jobs/{quote(job_id, safe='')}"

    # -- operations --

    def submit(self, body: bytes, content_type: str, *, has_id: bool = False) -> Accepted:
        """``POST /jobs``: the job is recorded and enqueued (202). Idempotent for the same id and spec, so a body
        that carries its id (``has_id``) is retried through a brief outage as reads are."""
        headers = {"Content-Type": content_type}
        response = self._request("POST", "/jobs", keyed=has_id, data=body, headers=headers)
        return self._model(Accepted, response)

    def dry_run(self, body: bytes, content_type: str) -> DryRun:
        """``POST /jobs?dryRun=true``: the spec validated and checked against the server's policy, not recorded."""
        headers = {"Content-Type": content_type}
        response = self._request("POST", "/jobs", params={"dryRun": "true"}, data=body, headers=headers)
        return self._model(DryRun, response)

    def policy(self) -> Policy:
        """``GET /policy``: the operator's policy."""
        return self._model(Policy, self._request("GET", "/policy"))

    def job(self, job_id: str) -> JobOut:
        """``GET /jobs/{id}``; raises :class:`NotFound` for an unknown job."""
        return self._model(JobOut, self._request("GET", self._job_path(job_id)))

    def jobs(
        self,
        *,
        status: str | None = None,
        labels: Mapping[str, str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        continuation: str | None = None,
        oldest_first: bool = False,
    ) -> JobList:
        """``GET /jobs``: one page of jobs matching every filter given, newest first (or oldest first)."""
        params: dict[str, str] = {"order": "oldest"} if oldest_first else {}
        if status:
            params["status"] = status
        if labels:
            params["label"] = ",".join(f"{k}={v}" for k, v in labels.items())
        if since:
            params["since"] = since
        if until:
            params["until"] = until
        if limit is not None:
            params["limit"] = str(limit)
        if continuation:
            params["continuation"] = continuation
        return self._model(JobList, self._request("GET", "/jobs", params=params))

    def all_jobs(
        self,
        *,
        status: str | None = None,
        labels: Mapping[str, str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> Iterator[JobOut]:
        """Every job matching the filters of :meth:`jobs`, following continuation tokens page by page."""
        continuation: str | None = None
        while True:
            page = self.jobs(
                status=status,
                labels=labels,
                since=since,
                until=until,
                limit=limit,
                continuation=continuation,
                oldest_first=oldest_first,
            )
            yield from page.items
            if not page.continuation_token or page.continuation_token == continuation:
                return
            continuation = page.continuation_token

    def cancel(self, job_id: str) -> JobOut:
        """``DELETE /jobs/{id}``: cancels a queued job at once, a running one soon. Safe to repeat."""
        return self._model(JobOut, self._request("DELETE", self._job_path(job_id)))

    def rerun(self, job_id: str, overrides: Mapping[str, Any], idempotency_key: str) -> JobOut:
        """``POST /jobs/{id}/rerun``: a new job from this one's spec with ``overrides``; one job per key."""
        response = self._request(
            "POST",
            f"{self._job_path(job_id)}/rerun",
            keyed=True,
            json=dict(overrides),
            headers={"Idempotency-Key": idempotency_key},
        )
        return self._model(JobOut, response)

    @staticmethod
    def _schedule_path(name: str) -> str:
        return f"/schedules/{quote(name, safe='')}"

    def apply_schedule(self, name: str, document: Any) -> tuple[ScheduleOut, bool]:
        """``PUT /schedules/{name}``: the schedule, and whether it was created."""
        response = self._request("PUT", self._schedule_path(name), keyed=True, json=document)
        return self._model(ScheduleOut, response), response.status_code == 201

    def schedules(self) -> ScheduleList:
        return self._model(ScheduleList, self._request("GET", "/schedules"))

    def schedule(self, name: str) -> ScheduleOut:
        return self._model(ScheduleOut, self._request("GET", self._schedule_path(name)))

    def trigger_schedule(self, name: str, idempotency_key: str) -> Accepted:
        response = self._request(
            "POST", f"{self._schedule_path(name)}/trigger", keyed=True, headers={"Idempotency-Key": idempotency_key}
        )
        return self._model(Accepted, response)

    def suspend_schedule(self, name: str, suspend: bool) -> ScheduleOut:
        action = "suspend" if suspend else "resume"
        return self._model(ScheduleOut, self._request("POST", f"{self._schedule_path(name)}/{action}", keyed=True))

    def delete_schedule(self, name: str, cancel_active: bool) -> list[str]:
        params = {"cancelActive": "true"} if cancel_active else {}
        response = self._request("DELETE", self._schedule_path(name), params=params)
        return self._model(ScheduleDeleted, response).cancelled

    def logs(
        self, job_id: str, *, container: str | None = None, tail: int | None = None, attempt: int | None = None
    ) -> str:
        """``GET /jobs/{id}/logs``: the current attempt's log (or ``attempt``'s), live while it runs, harvested
        afterwards."""
        params: dict[str, str] = {}
        if container:
            params["container"] = container
        if attempt is not None:
            params["attempt"] = str(attempt)
        if tail is not None:
            params["tail"] = str(tail)
        response = self._request("GET", f"{self._job_path(job_id)}/logs", params=params)
        response.encoding = response.encoding or "utf-8"
        return response.text

    def log_page(self, job_id: str, after: str, *, container: str | None = None, tail: int | None = None) -> LogPageOut:
        """``GET /jobs/{id}/logs?after=``: the lines after the cursor ``after`` (``""`` to begin: the current
        attempt's log from its start, or its last ``tail`` lines) and the cursor to pass next."""
        params = {"after": after} | ({"container": container} if container else {})
        if tail is not None:
            params["tail"] = str(tail)
        return self._model(LogPageOut, self._request("GET", f"{self._job_path(job_id)}/logs", params=params))

    def tasks(
        self, job_id: str, *, status: str | None = None, limit: int = 100, continuation: str | None = None
    ) -> TaskList:
        """``GET /jobs/{id}/tasks``: a page of an array job's tasks in index order, filtered by status."""
        params = {"limit": str(limit)} | ({"status": status} if status else {})
        if continuation:
            params["continuation"] = continuation
        return self._model(TaskList, self._request("GET", f"{self._job_path(job_id)}/tasks", params=params))

    def all_tasks(self, job_id: str, *, status: str | None = None, limit: int = 1000) -> Iterator[TaskOut]:
        """Every task of an array job (of ``status``), following continuation tokens."""
        token: str | None = None
        while True:
            page = self.tasks(job_id, status=status, limit=limit, continuation=token)
            yield from page.items
            token = page.continuation_token
            if not token:
                return

    def task(self, job_id: str, index: int) -> TaskOut:
        """``GET /jobs/{id}/tasks/{index}``: one task of an array job."""
        return self._model(TaskOut, self._request("GET", f"{self._job_path(job_id)}/tasks/{index}"))

    def task_logs(self, job_id: str, index: int, *, run: int | None = None, tail: int | None = None) -> str:
        """``GET /jobs/{id}/tasks/{index}/logs``: the log of a task's latest run (or run ``run``)."""
        params = {key: str(value) for key, value in (("run", run), ("tail", tail)) if value is not None}
        response = self._request("GET", f"{self._job_path(job_id)}/tasks/{index}/logs", params=params)
        response.encoding = response.encoding or "utf-8"
        return response.text

    def outputs(self, job_id: str, *, path: str = "", continuation: str | None = None) -> OutputList:
        """``GET /jobs/{id}/outputs``: one page of one folder of the job's workspace (``path``, the root if empty)."""
        params = {"path": path} if path else {}
        if continuation:
            params["continuation"] = continuation
        return self._model(OutputList, self._request("GET", f"{self._job_path(job_id)}/outputs", params=params))

    def output_files(self, job_id: str) -> list[str]:
        """Every file path in the job's workspace, walking its folders page by page."""
        files: list[str] = []
        folders = [""]
        while folders:
            folder = folders.pop(0)
            continuation: str | None = None
            while True:
                page = self.outputs(job_id, path=folder, continuation=continuation)
                for entry in page.entries:
                    (folders if entry.kind == "directory" else files).append(entry.path)
                if not page.continuation_token:
                    break
                continuation = page.continuation_token
        return files

    def download_output(self, job_id: str, name: str, destination: Path) -> int:
        """Stream one output file to ``destination`` (written whole or not at all); returns its size."""
        path = f"{self._job_path(job_id)}/outputs/{quote(name, safe='/')}"
        partial = destination.with_name(f".{destination.name}.partial")
        destination.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with self._request("GET", path, stream=True) as response, partial.open("wb") as handle:
            try:
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    handle.write(chunk)
                    size += len(chunk)
            except requests.exceptions.RequestException as exc:
                partial.unlink(missing_ok=True)
                raise ServiceUnreachable(f"download of {name!r} failed: {reason_of(exc)}") from None
        partial.replace(destination)
        return size

    def download_outputs(self, job_id: str, folder: Path, files: list[str] | None = None) -> list[Path]:
        """Fetch every output of a job (or the ``files`` given) into ``folder``, keeping their relative paths.

        Every path is checked before anything is written: one that would leave ``folder`` raises
        :class:`UnsafeOutputPath` and nothing is downloaded.
        """
        names = self.output_files(job_id) if files is None else files
        targets = [(name, safe_destination(folder, name)) for name in names]
        written = []
        for name, target in targets:
            self.download_output(job_id, name, target)
            written.append(target)
        return written

    def health(self) -> Health:
        """``GET /health``: a degraded service (503) still returns its checks."""
        return self._model(Health, self._request("GET", "/health", accept=(503,)))

    def usage(self, *, since: str | None = None, until: str | None = None, by: str = "team") -> UsageReport:
        """``GET /usage``: usage per team or label value over whole UTC days."""
        params = {k: v for k, v in (("since", since), ("until", until), ("by", by)) if v}
        return self._model(UsageReport, self._request("GET", "/usage", params=params))

    def me(self) -> Me:
        """``GET /me``: who the API takes this client for."""
        return self._model(Me, self._request("GET", "/me"))

    def wait(
        self,
        job_id: str,
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        on_poll: Callable[[JobOut], None] | None = None,
        on_error: Callable[[ClientError], None] | None = None,
    ) -> JobOut:
        """Poll a job until its status is terminal and return it; ``on_poll`` sees every poll's answer.

        With ``on_error``, a poll that fails transiently (:func:`transient`) after its own retries is reported to it
        and the wait goes on: an outage does not end the wait, since the job runs whether or not anyone watches.
        Raises :class:`TimeoutError` if ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                job = self.job(job_id)
            except ClientError as exc:
                if on_error is None or not transient(exc):
                    raise
                on_error(exc)
                time.sleep(max(interval, 1.0))
                continue
            if on_poll is not None:
                on_poll(job)
            if job.status.terminal:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout:g} s")
            time.sleep(interval)


def transient(exc: ClientError) -> bool:
    """Whether a failed call may succeed if made again: the API unreachable, throttling, or a server error."""
    return isinstance(exc, ServiceUnreachable) or (
        isinstance(exc, ApiError) and (exc.status >= 500 or exc.status == 429)
    )

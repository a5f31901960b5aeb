"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a stack started here.

Each page is saved as a screenshot under ``.artifacts/dashboard/`` (the test artifacts ``make test`` leaves).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from dispatcher.entrypoints.client import DispatcherClient
from tests.fixtures.stack import StackClient, simulated_stack
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Without the network flags Chromium reaches for Google's hosts at every start; this machine's network is closed."""
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "dashboard"
CANARY = "canary-5ecret-7c1d9e"
"""An inline secret value a job carries: no page may ever show it."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    yield from simulated_stack(tmp_path_factory, DISPATCHER_ALLOW_INLINE_SECRETS="true")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def ui(stack: StackClient, name: str = "") -> str:
    assert stack.stack.runner is not None
    return f"{stack.stack.runner.url}/ui/{name}"


def submit(stack: StackClient, job_id: str, seconds: float = 1.0, log: str = "", **extra: Any) -> None:
    env = {"DEVSTACK_SIM_DURATION": f"{seconds:g}", "DEVSTACK_SIM_LOG": log}
    spec = {"id": job_id, "containers": [{"name": "main", "image": "busybox", "env": env, **extra}]}
    with stack.api() as client:
        client.submit(json.dumps(spec).encode(), "application/json")


def sign_in(page: Page, stack: StackClient, name: str = "") -> None:
    assert stack.stack.runner is not None
    page.goto(ui(stack, name))
    page.get_by_label("Function key or Entra ID access token").fill(stack.stack.runner.function_key)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#who")).to_contain_text("Signed in as")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert CANARY not in page.content()


def run_until(stack: StackClient, job_id: str, status: str) -> None:
    def ended() -> bool:
        stack.reconcile()
        record = stack.record(job_id)
        return record is not None and record.status.value == status

    wait_for(ended, timeout=60, interval=0.5, what=f"{job_id} to be {status}")


def test_without_credentials_the_page_asks_to_sign_in_and_the_api_answers_401(stack: StackClient, page: Page) -> None:
    page.goto(ui(stack))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#content")).to_be_hidden()
    assert stack.stack.runner is not None
    assert requests.get(f"{stack.stack.runner.url}/jobs", timeout=10).status_code == 401
    page.get_by_label("Function key or Entra ID access token").fill("not-the-key")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#error")).to_contain_text("refused")
    shot(page, "sign-in")


def test_the_jobs_table_lists_a_submitted_job_and_updates_when_it_finishes(stack: StackClient, page: Page) -> None:
    submit(stack, "dash-table", secretEnv={"TOKEN": {"value": CANARY}})
    sign_in(page, stack)
    row = page.locator("#jobs tbody tr", has_text="dash-table")
    expect(row).to_be_visible()
    run_until(stack, "dash-table", "Succeeded")
    expect(row).to_contain_text("Succeeded", timeout=15_000)  # no reload: the table polls
    shot(page, "jobs")


def test_a_job_page_shows_an_attempts_log_complete_through_the_log_cursor(stack: StackClient, page: Page) -> None:
    lines = [f"line {n} of the report" for n in range(1, 41)]
    submit(stack, "dash-log", seconds=1.0, log="\n".join(lines))
    run_until(stack, "dash-log", "Succeeded")
    sign_in(page, stack, "job.html?id=dash-log")
    log = page.locator("#log")
    expect(log).to_have_attribute("data-complete", "true", timeout=20_000)
    assert log.inner_text().splitlines() == lines
    expect(page.locator("#summary")).to_contain_text("Succeeded")
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    shot(page, "job")


def test_an_array_jobs_page_shows_its_progress_and_every_tasks_state(stack: StackClient, page: Page) -> None:
    env = {"DEVSTACK_SIM_DURATION": "1", "DEVSTACK_SIM_LOG": "shard done"}
    spec = {
        "id": "dash-array",
        "containers": [{"name": "main", "image": "busybox", "cpu": 0.25, "memoryGB": 0.5, "env": env}],
    }
    with stack.api() as client:
        client.submit(json.dumps({**spec, "tasks": {"count": 24}}).encode(), "application/json")
    run_until(stack, "dash-array", "Succeeded")
    sign_in(page, stack, "job.html?id=dash-array")
    expect(page.locator("#task-counts")).to_contain_text("24 succeeded, 0 failed of 24", timeout=15_000)
    expect(page.locator("#task-grid .cell.Succeeded")).to_have_count(24)
    assert page.locator("#progress").get_attribute("value") == "1"
    histogram = page.locator("#durations tbody tr")
    expect(histogram.first).to_be_visible()
    assert sum(int(r.locator("td").last.inner_text()) for r in histogram.all()) == 24  # every ended task, once
    page.get_by_role("button", name="task 7: Succeeded").click()
    expect(page.locator("#log")).to_have_text("shard done\n")
    shot(page, "array-job")


def test_a_cancel_from_the_page_cancels_the_job(stack: StackClient, page: Page) -> None:
    submit(stack, "dash-cancel", seconds=3600)
    sign_in(page, stack, "job.html?id=dash-cancel")
    page.get_by_role("button", name="Cancel this job").click()
    expect(page.locator("#cancel-result")).to_contain_text("Cancel")
    record = stack.record("dash-cancel")
    assert record is not None
    assert record.cancel_requested
    run_until(stack, "dash-cancel", "Cancelled")
    expect(page.locator("#summary")).to_contain_text("Cancelled", timeout=15_000)
    shot(page, "job-cancelled")


def test_the_pools_and_schedules_pages_show_the_quota_and_the_schedules(stack: StackClient, page: Page) -> None:
    with stack.api() as client:
        document = {"schedule": {"cron": "30 2 * * *"}, "job": {"image": "busybox"}}
        client.apply_schedule("dash-nightly", document)
    sign_in(page, stack, "pools.html")
    expect(page.get_by_role("heading", name="local (westeurope)")).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(1)
    expect(page.get_by_role("meter", name="groups")).to_be_visible()
    shot(page, "pools")
    page.get_by_role("link", name="Schedules").click()
    expect(page.locator("#schedules tbody")).to_contain_text("dash-nightly")
    shot(page, "schedules")


def test_signing_in_with_entra_id_through_the_bundled_msal_uses_the_users_own_token(
    stack: StackClient, browser: Browser
) -> None:
    """The authorization code flow with PKCE against devstack's issuer, as against Entra: the sign-in page, the
    redirect bridge, the code redeemed across origins, and the API called with the user's token (alice sees her
    team's job and not the other team's)."""
    assert stack.stack.runner is not None
    for user in ("alice", "bob"):
        token = stack.stack.token(user)
        with DispatcherClient(stack.stack.runner.url, token=lambda token=token: token) as client:
            client.submit(json.dumps({"id": f"dash-{user}", "image": "busybox"}).encode(), "application/json")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
    page = context.new_page()
    try:
        page.goto(ui(stack))
        page.get_by_role("button", name="Sign in with Microsoft").click()
        expect(page.get_by_role("heading", name="Sign in to the devstack tenant")).to_be_visible()
        page.get_by_role("button", name=re.compile(r"^Alice")).click()
        expect(page.locator("#who")).to_contain_text("Signed in as Alice (ml)")
        assert page.url == ui(stack)  # the bridge brought us back, with the answer gone from the URL
        expect(page.locator("#jobs tbody tr", has_text="dash-alice")).to_be_visible()
        expect(page.locator("#jobs tbody tr", has_text="dash-bob")).to_have_count(0)
        assert page.evaluate("localStorage.length") == 0  # MSAL's cache is the tab's session storage
        shot(page, "entra-sign-in")
        page.goto(ui(stack, "pools.html"))  # another page signs in silently from the cache
        expect(page.locator("#who")).to_contain_text("Signed in as Alice (ml)")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in with Microsoft")).to_be_visible()
        left = page.evaluate("Object.entries(sessionStorage)")
        assert not [key for key, value in left if "token" in key.lower() or "eyJ" in value], left  # no token kept
    finally:
        context.close()

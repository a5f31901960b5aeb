"""The dashboard's static files (``GET /api/ui/...``) and the pools' view it charts (``GET /api/pools``).

The static routes are anonymous and serve only the files of ``dispatcher/entrypoints/ui``: HTML, CSS and JavaScript
that hold no data and no secret, and ``config.json``, what the page needs to sign in with Entra ID (client id,
authority, scope: public values). Every figure the pages show comes from the public API, called by the page with
the credentials its user gave (a function key, or an Entra ID token got by the bundled MSAL.js, kept in the tab's
session storage).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from importlib import resources
from typing import Any

from dispatcher.domain.errors import UnsafeConfiguration
from dispatcher.endpoints import CLOUDS, authority_of, parsed
from dispatcher.entrypoints.api_models import PoolOut, PoolsOut, WindowPoint
from dispatcher.entrypoints.http import Request, Response, handler, json_response, problem
from dispatcher.service.services import Services
from dispatcher.settings import DispatcherSettings

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'{issuer}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""No inline script or style, nothing from elsewhere, no framing: the page talks to its own origin, and to the
Entra ID authority it signs in with (MSAL.js reads its OpenID configuration and redeems codes there)."""
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


PAGES = {"index": "Jobs", "job": "Job", "pools": "Pools", "schedules": "Schedules"}
"""Each page: its body (``{name}.body.html``) in the one layout (``layout.html``), and its title."""
NAV = (("index", "Jobs"), ("pools", "Pools"), ("schedules", "Schedules"))


@functools.cache
def _files() -> dict[str, bytes]:
    """What the dashboard serves: the pages put together from the layout, the script and the style sheet; read on
    the first request, not when the host indexes the app."""
    folder = resources.files("dispatcher.entrypoints") / "ui"
    layout = (folder / "layout.html").read_text(encoding="utf-8")
    files = {name: (folder / name).read_bytes() for name in ("app.js", "style.css", "redirect.js", "redirect.html")}
    files.update({f"vendor/{name}": (folder / "vendor" / name).read_bytes() for name in VENDORED})
    for page, title in PAGES.items():
        nav = "".join(
            f'<a href="{target}.html"' + (' aria-current="page"' if target == page else "") + f">{label}</a>"
            for target, label in NAV
        )
        body = (folder / f"{page}.body.html").read_text(encoding="utf-8")
        html = layout.replace("{{title}}", title).replace("{{page}}", page).replace("{{nav}}", nav)
        files[f"{page}.html"] = html.replace("{{body}}", body).encode()
    return files


VENDORED = ("msal-browser.min.js", "msal-redirect-bridge.min.js")
"""MSAL.js, copied from the pinned npm package (``package-lock.json``; a test checks the copies match it): the
app is deployed without ``node_modules``, and the page loads nothing from a CDN."""


def sign_in_config(settings: DispatcherSettings) -> dict[str, Any] | None:
    """What MSAL.js in the page needs to sign in with Entra ID, or ``None`` when the API takes no tokens: the client
    id (the API's own registration, whose redirect URIs include the dashboard's as a single-page application), the
    authority (the issuer without ``/v2.0``), the scopes, and the authority's host as a known authority when
    it is not the cloud's sign-in host (devstack's issuer), so MSAL skips Microsoft's instance discovery for it."""
    return _sign_in(settings)[0]


def _sign_in(settings: DispatcherSettings) -> tuple[dict[str, Any] | None, str]:
    """:func:`sign_in_config`, and the origin the pages may connect to besides their own (``""`` for none)."""
    if not settings.auth_audience:
        return None, ""
    authority = authority_of(settings).removesuffix("/v2.0")
    url = parsed("DISPATCHER_AUTH_AUTHORITY", authority, schemes=("https", "http"), path=True)
    config = {
        "clientId": settings.auth_audience,
        "authority": authority,
        "knownAuthorities": [] if url.host == CLOUDS[settings.cloud].login else [url.netloc],
        "scopes": [settings.auth_scope or f"api://{settings.auth_audience}/access_as_user"],
    }
    return config, f"{url.scheme}://{url.netloc}"


def asset(path: str, settings: DispatcherSettings) -> Response:
    """``GET /api/ui/{path}``: one of the dashboard's files (``index.html`` for the root) or ``config.json``, else
    404. A sign-in setting that fails its checks is a 503 naming it, and the pages then talk to their origin only."""
    name = path.strip("/") or "index.html"
    try:
        entra, origin = _sign_in(settings)
    except UnsafeConfiguration as exc:
        if name == "config.json":
            return problem(503, "Sign-in is misconfigured", str(exc))
        entra, origin = None, ""
    if name == "config.json":
        config = json.dumps({"entra": entra, "keys": settings.function_keys}).encode()
        return Response(200, config, "application/json", dict(HEADERS))
    body = _files().get(name)
    if body is None:
        return problem(404, "Not found", "the dashboard has no such file")
    headers = {**HEADERS, "Content-Security-Policy": POLICY.format(issuer=f" {origin}" if origin else "")}
    suffix = name[name.rindex(".") :]
    return Response(200, body, TYPES[suffix], headers)


MINUTES = 60


@handler
def pools(services: Services, request: Request) -> Response:
    """``GET /api/pools``: each pool's groups and cores held against its limits, and its creates and deletes per
    minute over the last hour, from the ledger's window counts (one read per pool)."""
    now = services.clock.now()
    items = []
    for pool in services.settings.pools:
        state = services.ledger.state(pool)
        creates, deletes = state.creates.per_minute(now, MINUTES), state.deletes.per_minute(now, MINUTES)
        items.append(
            PoolOut(
                name=pool.name,
                location=pool.location,
                max_groups=pool.max_groups,
                max_cores=pool.max_cores,
                creates_per_5min=pool.creates_per_5min,
                creates_per_hour=pool.creates_per_hour,
                groups=state.groups,
                cores=state.cores,
                creates_5min=state.creates.last_5min(now),
                creates_hour=state.creates.last_hour(now),
                deletes_5min=state.deletes.last_5min(now),
                deletes_hour=state.deletes.last_hour(now),
                saturated_until=state.saturated_until,
                minutes=[
                    WindowPoint(minute=dt.datetime.fromtimestamp(m, dt.UTC), creates=c, deletes=d)
                    for (m, c), (_, d) in zip(creates, deletes, strict=True)
                ],
            )
        )
    return json_response(PoolsOut(at=now, items=items))

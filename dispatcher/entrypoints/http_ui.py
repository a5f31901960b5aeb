"""The dashboard's static files (``GET /api/ui/...``) and the pools' view it charts (``GET /api/pools``).

The static routes are anonymous and serve only the files of ``dispatcher/entrypoints/ui``: HTML, CSS and JavaScript
that hold no data and no secret. Every figure the pages show comes from the public API, called by the page with
the credentials its user gave (a function key or a bearer token, kept in the tab's session storage).
"""

from __future__ import annotations

import datetime as dt
import functools
from importlib import resources

from dispatcher.entrypoints.api_models import PoolOut, PoolsOut, WindowPoint
from dispatcher.entrypoints.http import Request, Response, handler, json_response, problem
from dispatcher.service.services import Services

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
"""No inline script or style, nothing from elsewhere, no framing: the page talks to its own origin only."""


PAGES = {"index": "Jobs", "job": "Job", "pools": "Pools", "schedules": "Schedules"}
"""Each page: its body (``{name}.body.html``) in the one layout (``layout.html``), and its title."""
NAV = (("index", "Jobs"), ("pools", "Pools"), ("schedules", "Schedules"))


@functools.cache
def _files() -> dict[str, bytes]:
    """What the dashboard serves: the pages put together from the layout, the script and the style sheet; read on
    the first request, not when the host indexes the app."""
    folder = resources.files("dispatcher.entrypoints") / "ui"
    layout = (folder / "layout.html").read_text(encoding="utf-8")
    files = {name: (folder / name).read_bytes() for name in ("app.js", "style.css")}
    for page, title in PAGES.items():
        nav = "".join(
            f'<a href="{target}.html"' + (' aria-current="page"' if target == page else "") + f">{label}</a>"
            for target, label in NAV
        )
        body = (folder / f"{page}.body.html").read_text(encoding="utf-8")
        html = layout.replace("{{title}}", title).replace("{{page}}", page).replace("{{nav}}", nav)
        files[f"{page}.html"] = html.replace("{{body}}", body).encode()
    return files


def asset(path: str) -> Response:
    """``GET /api/ui/{path}``: one of the dashboard's files (``index.html`` for the root), else 404."""
    name = path.strip("/") or "index.html"
    body = _files().get(name)
    if body is None:
        return problem(404, "Not found", "the dashboard has no such file")
    suffix = name[name.rindex(".") :]
    return Response(200, body, TYPES[suffix], dict(HEADERS))


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

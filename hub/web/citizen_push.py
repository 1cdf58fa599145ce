"""The citizen pages' service worker: Web Push notifications and the offline copy of the pages.

Route (added by :func:`setup`):

- ``GET /sw.js``: ``static/citizen/sw.js`` at the site root, so its scope is the whole site (``Service-Worker-Allowed:
  /``). ``Cache-Control: no-cache``: browsers check it on every visit, so a new version reaches them at once (they
  also bypass the HTTP cache for it after 24 h whatever it says).

The scripts beside it: ``/static/citizen/offline.js`` (every citizen page: registers the worker, shows "Offline –
Stand: …" and marks expired warnings) and ``/static/citizen/push.js`` (``/abonnieren``: subscribes this browser
without an account through ``/api/v1/push/key`` and ``/api/v1/subscriptions``; id and token stay in the browser's
localStorage). Each file's header comment says what it owns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from hub.services import Services as Hub

SW_PATH = Path(__file__).parent / "static" / "citizen" / "sw.js"
SW_HEADERS = {
    "Content-Type": "text/javascript; charset=utf-8",
    "Service-Worker-Allowed": "/",
    "Cache-Control": "no-cache",
}


def setup(app: web.Application, hub: Hub | None = None) -> None:
    """Add ``/sw.js``. ``hub`` is unused for now; it is taken so every citizen module is set up alike."""
    del hub
    app.router.add_get("/sw.js", service_worker)


async def service_worker(request: web.Request) -> web.StreamResponse:
    # Read on each request (it is small): an operator's edit is served without a restart, and ETag/Last-Modified
    # come from FileResponse, so a browser checking for a new version mostly gets 304.
    if not SW_PATH.is_file():
        raise web.HTTPNotFound(text="Service Worker fehlt / service worker missing")
    return web.FileResponse(SW_PATH, headers=SW_HEADERS)

"""The citizen site's error pages in the reader's language: a page that does not exist (404), a failure (500) and
a limit (429, or 503 with ``Retry-After``) answer a person's browser with a page of the site, not aiohttp's English
one-liner; machine routes (``/api``, feeds, static files, the console …) keep their own answers.

The ``503`` that :mod:`hub.web.site` sends while descriptors run short is written before any request is read (no
``Accept-Language`` to go by), so it stays a short German/English text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger("warnhub.web.citizen")

MACHINE_PREFIXES = ("/api", "/console", "/feeds/", "/static/", "/boards/", "/i18n/", "/metrics", "/healthz",
                    "/sw.js")
MACHINE_SUFFIXES = (".json", ".js", ".xml", ".atom", ".geojson")
ErrorPage = Callable[[web.Request, int, dict[str, str]], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def for_people(request: web.Request, prefix: str = "") -> bool:
    """A page request of the citizen site (not an API, feed, file or console route); ``prefix``: where a district's
    site is mounted (``/uelzen``)."""
    path = request.path.removeprefix(prefix)
    return (request.method in ("GET", "HEAD") and not path.startswith(MACHINE_PREFIXES)
            and not path.endswith(MACHINE_SUFFIXES))


def middleware(page: ErrorPage, prefix: str = "") -> Middleware:
    """Turns 404, 429, 503 (with ``Retry-After``) and unexpected failures of page requests into ``page``."""

    @web.middleware
    async def citizen_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not for_people(request, prefix):
            return await handler(request)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status == 404 or exc.status == 429 or (exc.status == 503 and "Retry-After" in exc.headers):
                kept = {k: v for k, v in exc.headers.items() if k in ("Retry-After",)}
                return page(request, exc.status, kept)
            raise
        except Exception:  # a bug behind a page: logged with its trace, the reader gets the site's own page
            log.exception("citizen page %s failed", request.path)
            return page(request, 500, {})

    return citizen_errors


def setup(app: web.Application, page: ErrorPage, prefix: str = "") -> None:
    app.middlewares.append(middleware(page, prefix))

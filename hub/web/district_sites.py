"""Each district's citizen site on a hub of several districts (issue 19).

A district's site is an aiohttp sub-application with the routes of :mod:`hub.web.citizen` (pages, widget, place
search), :mod:`hub.web.warnings` (``/api/v1/warnings*``, ``/api/v1/stream``, CAP Atom feeds, kiosk boards) and
:mod:`hub.web.nina_api` (``/api31``), showing that district's publications alone:

- under ``/{slug}`` (``/uelzen/``, ``/uelzen/feeds/cap.atom``, ``/uelzen/api31/dashboard/033600000000.json``), and
- at ``/`` of its own host name (``[[districts]] host``): there the site answers first, and what it does not have
  (``/static/``, ``/sw.js``, the subscription API, the console, ``/healthz``) is the hub's, as on any other name.

``/`` of the hub itself (another host name) lists the districts with links to their sites; ``/warnungen/{thread}``
there (a link in a push sent before the hub had several districts, or built on the hub's own URL) leads to the
warning on its district's site, and ``/boards/{id}`` (a kiosk screen set up before) to the board on its district's
site (an exercise board only with its token, as there). Shared by all, at the root: ``/static/``, ``/sw.js`` and its
texts, ``/api/v1/subscriptions*`` (a person's subscription may hold places of several districts),
``/api/v1/push/key``, ``/healthz``, ``/metrics``; the public limits (streams, the NINA rate) are the hub's, one for
all sites. A hub of one district has none of this: its site is the root, as always.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import jinja2
from aiohttp import web
from aiohttp.web_urldispatcher import Domain, MatchedSubAppResource

from hub.config.districts import District, Districts
from hub.config.sections import BoardConfig
from hub.publish import publications
from hub.web import citizen, nina_api, warnings
from hub.web.citizen_texts import sw_texts
from hub.web.keys import HUB_KEY
from hub.web.limits import AddressRate

if TYPE_CHECKING:
    from hub.services import Services

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


class HostSite(MatchedSubAppResource):
    """A district's host name: its site answers the paths it has; any other falls through to the hub's routes."""

    async def resolve(self, request: web.Request) -> tuple[web.UrlMappingMatchInfo | None, set[str]]:
        found, methods = await super().resolve(request)
        if found is not None and isinstance(found.http_exception, web.HTTPNotFound):
            return None, methods
        return found, methods


def mount(app: web.Application, services: Services, keys: Callable[[web.Application], None]) -> None:
    """Add every district's site to ``app`` (a hub of several districts); ``keys`` sets the hub's service keys on
    a site's application (its handlers read them from ``request.app``)."""
    districts = services.loaded.districts
    rate = nina_api.rate(services.loaded.cfg.web.nina_per_address_per_minute)
    for d in districts:
        app.router.add_get(f"/{d.slug}", partial(_to_site, d.slug))  # /uelzen: /uelzen/ (before the site)
        app.add_subapp(f"/{d.slug}", site(services, d, f"/{d.slug}", rate, keys))
        if d.host:
            try:
                rule = Domain(d.host)
            except ValueError as err:
                raise ValueError(f"[[districts]] {d.slug}: host {d.host!r}: {err}") from None
            sub = site(services, d, "", rate, keys)
            app._add_subapp(partial(HostSite, rule, sub), sub)  # app.add_domain, falling through
    app.router.add_get("/", index_page)
    app.router.add_get("/warnungen/{thread}", to_district)
    app.router.add_get("/boards/{id}", board_to_district)
    app.router.add_get("/i18n/sw/{lang}.json", sw_texts)  # /sw.js is the hub's: its texts too
    if not any(res.canonical == "/static" for res in app.router.resources()):
        app.router.add_static("/static/", citizen.STATIC, name="static")


def board_district(districts: Districts, board: BoardConfig) -> District:
    """The district whose site shows a kiosk board: its ``district``, else the one its ``ars`` lies in."""
    named = districts.by_slug(board.district) if board.district else None
    return named or districts.of_region(board.ars) or districts.first


def site(services: Services, d: District, prefix: str, rate: AddressRate,
         keys: Callable[[web.Application], None]) -> web.Application:
    """One district's site, to be mounted at ``prefix`` (``""``: at its own host name)."""
    sub = web.Application(client_max_size=1024 * 1024)
    keys(sub)
    cfg = services.loaded.cfg
    if services.broadcaster is None:
        return sub
    boards = [b for b in cfg.boards if board_district(services.loaded.districts, b).ars == d.ars]
    warnings.setup(sub, broadcaster=services.broadcaster, boards=boards, district=d.ars, geo=services.geo,
                   site=d.ars, prefix=prefix)
    nina_api.setup(sub, district=d.ars, geo=services.geo, site=d.ars, prefix=prefix, shared_rate=rate)
    if services.geo is not None:
        citizen.setup(sub, services, services.geo, site=d, prefix=prefix)
    return sub


async def _to_site(slug: str, request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(f"/{slug}/")


async def index_page(request: web.Request) -> web.Response:
    """``/`` of a hub of several districts: the districts, each a link to its site."""
    loaded = request.app[HUB_KEY].loaded
    html = _ENV.get_template("citizen/districts.html").render(name=loaded.cfg.hub.name, districts=list(
        loaded.districts))
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-cache"})


async def to_district(request: web.Request) -> web.Response:
    """``/warnungen/{thread}`` at the hub's root: to the public warning on its district's site (else 404)."""
    hub = request.app[HUB_KEY]
    thread = request.match_info["thread"]
    shown = await hub.store.read(publications.shown_versions, hub.store.store, thread, publications.WEB)
    site = hub.loaded.districts.by_ars(shown[-1].district) if shown else None
    if site is None:
        raise web.HTTPNotFound(text="Unbekannte Warnung / unknown warning")
    query = f"?{request.query_string}" if request.query_string else ""
    raise web.HTTPFound(f"/{site.slug}/warnungen/{quote(thread, safe='')}{query}")


async def board_to_district(request: web.Request) -> web.Response:
    """``/boards/{id}`` at the hub's root: to the kiosk board on its district's site (else 404, as there: an
    exercise board without its token is not told apart from an unknown one)."""
    loaded = request.app[HUB_KEY].loaded
    board_id = request.match_info["id"]
    board = next((b for b in loaded.cfg.boards if b.kind == "kiosk" and b.id == board_id), None)
    given = request.query.get("token", "").encode()
    if board is None or (board.exercise and not (board.token and hmac.compare_digest(given, board.token.encode()))):
        raise web.HTTPNotFound(text="Unbekannte Anzeigetafel / unknown board")
    query = f"?{request.query_string}" if request.query_string else ""
    slug = board_district(loaded.districts, board).slug
    raise web.HTTPFound(f"/{slug}/boards/{quote(board_id, safe='')}{query}")

"""The citizen web app (issue 7): the district's public pages in the nine languages of hub.i18n (issue 18).

A page's language (:func:`lang_of`): ``?lang=`` (any of the nine codes: ``de``, ``de-x-ls``, ``en``, ``ar``, ``es``,
``fr``, ``pl``, ``ru``, ``tr``; a push opens its warning with its subscription's ``lang``), then the browser's
``Accept-Language``, else German. Links within the site keep it; a switcher lists all nine by their own names;
Arabic pages are right-to-left. Fixed texts come from the ``pages`` catalogue (German message ids); a warning's own
text is shown in the page's language when the warning carries it, else in English or German with a note saying so.

Routes (added by :func:`setup`):

- ``GET /``: current warnings for the district, most severe first, as a list and on a map (vendored Leaflet; the
  district boundary as base layer, the ``[console] tile_url`` tile server under it if one is configured); "Keine
  Warnungen" with the time; a plain notice when sources are down (the list may be incomplete). Kept current by
  ``/static/citizen/start.js`` (SSE ``/api/v1/stream`` plus ``/start.json``), which says "Verbindung unterbrochen"
  when it cannot reach the hub.
- ``GET /start.json?lang=``: the start page's list (server-rendered HTML) and map features, for that script.
- ``GET /warnungen/{thread}?lang=&text=``: one warning (push messages link here): instruction, description, area
  with a small map, validity, issuer, every version, the all-clear or cancellation; ``text`` picks one of the
  languages the warning carries (``de-DE-x-ls``: Leichte Sprache).
- ``GET /abonnieren``: the subscription form (``/static/citizen/subscribe.js`` picks places; ``push.js``, owned
  by the push part, subscribes); ``GET /datenschutz``: what is stored and logged.
- ``GET /widget/{ars}``: a small page for municipal websites to frame (the only page that may be framed; works
  without script, ``/static/citizen/widget.js`` reloads it while nobody reads it);
  ``GET /widget/{ars}.js``: inserts that iframe where the script tag stands.
- ``GET /api/v1/regions?q=``: the district, its Samtgemeinden and Gemeinden by name, ``[{ars, name, level}]``.

What is shown: what :data:`hub.publish.publications.WEB` admits (published to the web channel, status Actual, scope
Public), as ``/api/v1/warnings``; never raw stored incidents. No cookies, no analytics, nothing loaded from
another host (except a configured tile server).
Every page but the widget carries ``#offline-status`` and ``/static/citizen/offline.js`` for the offline part.

Many districts (issue 19, :mod:`hub.web.district_sites`): each district's site is these routes under its prefix
(``/uelzen/``; ``prefix`` in :func:`setup`) or at ``/`` of its own host name, with its name, logo (``/logo``) and
colour (``/brand.css``), that district's publications alone, and every link under its prefix; ``/static/``,
``/sw.js`` and the subscription API stay the hub's, at its root. Its place search finds its own places and, asked
for a name, the other districts' too (a subscription may hold places in several).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from aiohttp import web

from hub import __version__
from hub.cap.model import Alert
from hub.config.districts import District
from hub.geo.boundaries import BOUNDARY_ATTRIBUTION
from hub.geo.geography import Geography
from hub.i18n.catalogs import N_
from hub.i18n.languages import LANGUAGES, language, negotiate
from hub.i18n.templates import install, localized
from hub.publish import publications
from hub.publish.places import Place, select
from hub.publish.publications import WEB, Audience, Publication
from hub.publish.subscriptions import MAX_PLACES
from hub.store.db import Store
from hub.web import branding, citizen_errors, subscribe_view
from hub.web import citizen_view as view
from hub.web import citizen_widget as widget
from hub.web.citizen_texts import script_texts, sw_texts
from hub.web.keys import HUB_KEY, SECURITY_HEADERS

if TYPE_CHECKING:
    from hub.services import Services as Hub

log = logging.getLogger("warnhub.web.citizen")

STATIC = Path(__file__).parent / "static"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                          undefined=jinja2.StrictUndefined)
install(_ENV)
WIDGET_CSP = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; "
              "base-uri 'none'; form-action 'none'; frame-ancestors *")
"""The widget may be framed by any site (the only page that may); it loads nothing but its optional script."""
NO_CACHE = {"Cache-Control": "no-cache"}
RADII_M = (500, 1000, 2000, 5000)


@dataclass(slots=True)
class CitizenWeb:
    hub: Hub
    geo: Geography
    district: str
    shapes: view.Shapes
    areas: dict[tuple[int, str], Any] = field(default_factory=dict)
    """Projected publication areas for :func:`hub.publish.places.select`."""
    regions: list[dict[str, str]] = field(default_factory=list)
    base_map: dict[str, Any] | None = None
    site: District | None = None
    """On a hub of several districts: the district whose site this is (its name, logo, colour, publications)."""
    prefix: str = ""
    """Where the site is mounted (``/uelzen``; ``""`` at the root or at its own host name)."""
    neighbours: list[dict[str, str]] = field(default_factory=list)
    """The other districts' places, found by name on this district's subscribe page."""

    @property
    def name(self) -> str:
        if self.site is not None:
            return self.site.name
        cfg = self.hub.loaded.cfg.hub
        return cfg.name or self.geo.registry.name(self.district) or self.district

    @property
    def web(self) -> Audience:
        return WEB.of(self.site.ars) if self.site is not None else WEB

    @property
    def tiles(self) -> dict[str, str] | None:
        c = self.hub.loaded.cfg.console
        return {"url": c.tile_url, "attribution": c.tile_attribution} if c.tile_url else None


CITIZEN_KEY = web.AppKey("citizen", CitizenWeb)


def setup(app: web.Application, hub: Hub, geo: Geography, *, site: District | None = None,
          prefix: str = "") -> CitizenWeb:
    """Add the citizen pages (see the module docstring); needs the geography and the web channel's ``/static/``.
    ``site``: the district whose site ``app`` is (on a hub of several), mounted at ``prefix``."""
    district = site.ars if site is not None else hub.loaded.cfg.hub.district_ars
    state = CitizenWeb(hub, geo, district, view.Shapes.of(geo), site=site, prefix=prefix)
    state.regions = view.regions(geo, state.district)
    if site is not None:
        state.neighbours = [r for d in hub.loaded.districts if d.ars != site.ars for r in view.regions(geo, d.ars)]
        branding.setup(app, site)
    app[CITIZEN_KEY] = state
    r = app.router
    r.add_get("/", start_page)
    r.add_get("/start.json", start_json)
    r.add_get("/warnungen/{thread}", warning_page)
    r.add_get("/abonnieren", subscribe_page)
    r.add_get("/datenschutz", privacy_page)
    r.add_get(r"/widget/{ars:\d{2,12}}.js", widget_script)
    r.add_get(r"/widget/{ars:\d{2,12}}", widget_page)
    r.add_get("/api/v1/regions", api_regions)
    r.add_get("/i18n/sw/{lang}.json", sw_texts)
    citizen_errors.setup(app, _error_page, prefix)
    if site is None and not any(res.canonical == "/static" for res in r.resources()):
        r.add_static("/static/", STATIC, name="static")
    return state


# -- helpers --------------------------------------------------------------------------------------------------------


def lang_of(request: web.Request) -> str:
    """The page's language: ``?lang=``, then ``Accept-Language``, else German (one of the nine codes)."""
    return negotiate(request.query.get("lang"), (), request.headers.get("Accept-Language"))


def env(lang: str) -> jinja2.Environment:
    """The templates rendering in ``lang`` (the ``pages`` catalogue)."""
    return localized(_ENV, lang, view.DOMAIN)


def _csp(state: CitizenWeb) -> str:
    """The app's policy; map tiles from the configured tile server (and nothing else from elsewhere)."""
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    tiles = state.tiles
    if tiles:
        parts = urlsplit(tiles["url"].replace("{s}", "a"))
        if parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}".replace("://a.", "://*.")
            csp += f"; img-src 'self' data: {origin}"
    return csp


def _ctx(request: web.Request, lang: str) -> dict[str, Any]:
    """What every citizen template may use (``_()`` translates; ``t(de, en)`` is left for templates not yet on the
    catalogues)."""
    state = request.app[CITIZEN_KEY]
    base = state.prefix
    here = request.path.removeprefix(base) or "/"
    others = {k: v for k, v in request.query.items() if k != "lang"}
    return {"lang": lang, "dir": language(lang).dir, "own_name": language(lang).own_name,
            "t": lambda de, en: view.t(lang, de, en), "url": lambda p, **q: view.url(base + p, lang, **q),
            "district": state.name, "district_ars": state.district, "version": __version__, "path": here,
            "base": base, "origin": str(request.url.origin()) + base,
            "switch_languages": switcher(request.path, others, lang), "feeds": _feeds(state, lang),
            "boundary_attribution": BOUNDARY_ATTRIBUTION, "brand": branding.of(state.site, base),
            "script_texts": script_texts(lang, push=here == "/abonnieren")}


def switcher(path: str, query: dict[str, str], lang: str) -> list[dict[str, Any]]:
    """The nine languages by their own names, each a link to this page in it (German too says ``lang=de``: the
    choice beats the browser's ``Accept-Language``)."""
    return [{"code": lang_.code, "name": lang_.own_name, "dir": lang_.dir, "current": lang_.code == lang,
             "href": path + "?" + urlencode({**query, "lang": lang_.code})} for lang_ in LANGUAGES]


def render(request: web.Request, name: str, *, status: int = 200, lang: str | None = None,
           **ctx: Any) -> web.Response:
    state = request.app[CITIZEN_KEY]
    lang = lang or lang_of(request)
    html = env(lang).get_template(name).render(**_ctx(request, lang), **ctx)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status,
                        headers={**NO_CACHE, "Content-Security-Policy": _csp(state), "Content-Language": lang,
                                 "Vary": "Accept-Language"})


def _error_page(request: web.Request, status: int, headers: dict[str, str]) -> web.Response:
    """The citizen site's error page (404, 500, a limit) in the request's language."""
    response = render(request, "citizen/error.html", status=status, code=status,
                      retry_after=headers.get("Retry-After"))
    response.headers.update(headers)
    return response


def _feeds(state: CitizenWeb, lang: str) -> list[dict[str, str]]:
    t = view.tr(lang)
    base = state.prefix
    return [{"href": f"{base}/feeds/{state.district}.atom",
             "title": t.format(N_("CAP-Warnungen %(name)s (Atom)"), name=state.name)},
            {"href": f"{base}/feeds/cap.atom", "title": t.gettext("CAP-Warnungen des Hubs, alle Gebiete (Atom)")}]


def _current(store: Store, audience: Audience) -> list[tuple[Publication, Alert | None]]:
    pubs = publications.current(store, audience)  # most severe first, then newest
    return [(p, publications.alert_of(store, p.id)) for p in pubs]


def card(state: CitizenWeb, pub: Publication, alert: Alert | None, lang: str, now: datetime) -> dict[str, Any]:
    """:func:`hub.web.citizen_view.card`, its link under the site's prefix."""
    c = view.card(pub, alert, lang, now, state.name)
    c["url"] = state.prefix + c["url"]
    return c


async def current_for(request: web.Request, ars: str) -> list[tuple[Publication, Alert | None]]:
    """The web channel's current warnings concerning ``ars`` (as ``/api/v1/warnings?ars=``)."""
    hub = request.app[HUB_KEY]
    state = request.app[CITIZEN_KEY]
    found = await hub.store.read(_current, hub.store.store, state.web)
    alerts = {p.id: a for p, a in found}
    kept = await asyncio.to_thread(select, [p for p, _ in found], Place(ars), state.geo, state.areas)
    return [(p, alerts[p.id]) for p in kept]


def sources_notice(hub: Hub, lang: str) -> dict[str, Any] | None:
    """When sources are down or degraded: how many, and the last time they all worked (None if all are fine)."""
    failing = [h for h in hub.health.sources.values() if h.state in ("down", "degraded")]
    if not failing:
        return None
    oks = [h.last_ok for h in failing]
    last_ok = min(oks) if oks and all(oks) else None  # type: ignore[type-var]
    return {"count": len(failing), "total": len(hub.health.sources),
            "last_ok": view.local(last_ok, lang) if last_ok else None, "last_ok_iso": view.iso(last_ok)}


# -- start page -----------------------------------------------------------------------------------------------------


async def _start(request: web.Request, lang: str) -> dict[str, Any]:
    state = request.app[CITIZEN_KEY]
    now = datetime.now(UTC)
    found = await current_for(request, state.district)
    cards = [card(state, p, a, lang, now) for p, a in found]
    features = await asyncio.to_thread(_features, state, [p for p, _ in found], cards)
    sources = sources_notice(state.hub, lang)
    key = ",".join(f"{p.thread}:{p.version}" for p, _ in found) + f"|{sources['count'] if sources else 0}"
    return {"cards": cards, "features": features, "now": now, "updated": view.local(now, lang),
            "updated_iso": view.iso(now), "sources": sources, "key": key}


def _features(state: CitizenWeb, pubs: list[Publication], cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [view.feature(geom, c) for p, c in zip(pubs, cards, strict=True)
            if (geom := state.shapes.publication(p)) is not None]


def _base_map(state: CitizenWeb) -> dict[str, Any]:
    if state.base_map is None:
        inner = state.geo.inner(state.district)
        state.base_map = {"district": state.shapes.region(state.district),
                          "regions": [g for a in inner if (g := state.shapes.region(a)) is not None],
                          "tiles": state.tiles}
    return state.base_map


async def start_page(request: web.Request) -> web.Response:
    lang = lang_of(request)
    state = request.app[CITIZEN_KEY]
    data = await _start(request, lang)
    base = await asyncio.to_thread(_base_map, state)
    page_data = {"ars": state.district, "lang": lang, "updated": data["updated_iso"], "base": base,
                 "warnings": data["features"]}
    return render(request, "citizen/start.html", page_data=page_data, **data)


async def start_json(request: web.Request) -> web.Response:
    """The start page's list as HTML and its map features (what ``start.js`` swaps in)."""
    lang = lang_of(request)
    data = await _start(request, lang)
    html = env(lang).get_template("citizen/_list.html").render(**_ctx(request, lang), **data)
    body = {"html": html, "warnings": data["features"], "count": len(data["cards"]), "updated": data["updated_iso"],
            "key": data["key"], "sources": data["sources"]}
    return web.json_response(body, headers=NO_CACHE, dumps=lambda d: json.dumps(d, ensure_ascii=False))


# -- one warning ----------------------------------------------------------------------------------------------------


def _thread(store: Store, thread: str, audience: Audience) -> tuple[list[Publication], Alert | None]:
    found = publications.shown_versions(store, thread, audience)
    if not found:
        return [], None
    return found, publications.alert_of(store, view.content_version(found).id)


async def warning_page(request: web.Request) -> web.Response:
    lang = lang_of(request)
    hub = request.app[HUB_KEY]
    state = request.app[CITIZEN_KEY]
    versions, alert = await hub.store.read(_thread, hub.store.store, request.match_info["thread"], state.web)
    if not versions:
        return render(request, "citizen/missing.html", status=404, lang=lang)
    now = datetime.now(UTC)
    latest = versions[-1]
    shown = view.content_version(versions)
    texts = view.languages_of(shown)
    wanted = request.query.get("text")
    notice = view.notice_of(shown, lang, wanted)
    info = view.info_of(alert, notice.language)
    status = view.state_of(latest, now)
    begins = (info.onset or info.effective) if info is not None else None
    geometry = await asyncio.to_thread(state.shapes.publication, shown)
    base = await asyncio.to_thread(_base_map, state)
    top = card(state, shown, alert, lang, now)
    top["badge"] = view.badge(latest, status, lang)
    web_link = info.web if info is not None and info.web and info.web.startswith(("https://", "http://")) else None
    ended_at = latest.sent if status == "cancelled" else latest.expires
    warning = {
        "thread": latest.thread, "state": status, "ended": status in ("cancelled", "expired"), "badge": top["badge"],
        "headline": notice.headline or notice.event, "event": notice.event, "lang": notice.language,
        "lang_name": view.language_name(notice.language), "dir": view.text_dir(notice.language),
        "translated": view.translated(notice.language, lang), "event_local": view.event_local(notice, lang),
        "description": view.paragraphs(notice.description), "instruction": view.paragraphs(notice.instruction),
        "area": notice.area_desc, "sender": top["sender"], "web": web_link,
        "contact": info.contact if info is not None else None,
        "begins": view.local(begins or shown.sent, lang, now=now), "begins_iso": view.iso(begins or shown.sent),
        "expires": view.local(shown.expires, lang, now=now), "expires_iso": view.iso(shown.expires),
        "ended_at": view.local(ended_at, lang, now=now), "ended_iso": view.iso(ended_at),
        "sent": view.local(latest.sent, lang, now=now), "sent_iso": view.iso(latest.sent),
        "cap": f"{state.prefix}/api/v1/warnings/{quote(latest.thread, safe='')}/cap.xml",
    }
    page_data = {"ars": state.district, "lang": lang, "thread": latest.thread, "version": latest.version,
                 "state": status, "expires": view.iso(latest.expires), "base": base,
                 "warnings": [view.feature(geometry, top)] if geometry is not None else []}
    return render(request, "citizen/warning.html", lang=lang, warning=warning, languages=texts,
                  history=view.history(versions, lang, now), page_data=page_data,
                  text_links={t["tag"]: state.prefix + view.warning_url(latest.thread, lang, text=t["tag"])
                              for t in texts})


# -- subscribe, privacy ---------------------------------------------------------------------------------------------


async def subscribe_page(request: web.Request) -> web.Response:
    state = request.app[CITIZEN_KEY]
    lang = lang_of(request)
    page_data = {"ars": state.district, "lang": lang, "base": await asyncio.to_thread(_base_map, state),
                 "warnings": []}
    others = ", ".join(d.name for d in state.hub.loaded.districts if state.site and d.ars != state.site.ars)
    return render(request, "citizen/subscribe.html", **subscribe_view.context(lang), radii=RADII_M,
                  page_data=page_data, others=others)


async def privacy_page(request: web.Request) -> web.Response:
    return render(request, "citizen/privacy.html", max_places=MAX_PLACES,
                  tiles=request.app[CITIZEN_KEY].tiles)


# -- widget ---------------------------------------------------------------------------------------------------------


def _region(request: web.Request) -> tuple[str, str]:
    state = request.app[CITIZEN_KEY]
    reg = state.geo.registry
    ars = reg.from_ars(request.match_info["ars"])
    if ars is None:
        raise web.HTTPNotFound(text="Unbekannter Regionalschlüssel / unknown region key")
    return ars, view.place_name(reg.name(ars) or state.name)


def _widget_lang(request: web.Request) -> str:
    return widget.widget_language(request.query.get("lang"), request.headers.get("Accept-Language"))


async def widget_page(request: web.Request) -> web.Response:
    ars, name = _region(request)
    lang = _widget_lang(request)
    now = datetime.now(UTC)
    state = request.app[CITIZEN_KEY]
    cards = [card(state, p, a, lang, now) for p, a in await current_for(request, ars)]
    html = widget.render(
        lang, cards=cards, region=name, ars=ars, district=state.name,
        updated=view.local(now, lang), updated_iso=view.iso(now),
        sources=sources_notice(state.hub, lang), home=view.url(state.prefix + "/", lang))
    return web.Response(text=html, content_type="text/html", charset="utf-8",
                        headers={**NO_CACHE, "Content-Security-Policy": WIDGET_CSP, "Vary": "Accept-Language"})


_WIDGET_JS = """/* warnhub widget: inserts the current warnings for {name} as an iframe where this script stands.
   Use: <script src="{path}" data-height="360" async></script>  (no cookies, no tracking) */
(function () {{
  "use strict";
  var script = document.currentScript;
  if (!script) {{ return; }}
  var frame = document.createElement("iframe");
  frame.src = script.src.replace(/\\.js(\\?|$)/, "$1");
  frame.title = {title};
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.style.border = "1px solid #767676";
  frame.style.width = "100%";
  frame.style.maxWidth = "40rem";
  frame.style.height = (parseInt(script.getAttribute("data-height"), 10) || 360) + "px";
  script.parentNode.insertBefore(frame, script.nextSibling);
}})();
"""


async def widget_script(request: web.Request) -> web.Response:
    ars, name = _region(request)
    title = widget.title(_widget_lang(request), name)
    body = _WIDGET_JS.format(name=name.replace("*/", ""), path=f"{request.app[CITIZEN_KEY].prefix}/widget/{ars}.js",
                             title=json.dumps(title, ensure_ascii=False).replace("</", "<\\/"))
    return web.Response(text=body, content_type="text/javascript", charset="utf-8",
                        headers={"Cache-Control": "public, max-age=3600", "Vary": "Accept-Language"})


# -- place search ---------------------------------------------------------------------------------------------------


async def api_regions(request: web.Request) -> web.Response:
    """``[{"ars", "name", "level"}]``: the district (``kreis``), its Samtgemeinden (``verband``) and Gemeinden
    (``gemeinde``) whose name contains ``q`` (all of them without ``q``; at most 20 with one)."""
    state = request.app[CITIZEN_KEY]
    q = request.query.get("q", "")[:80]
    found = view.search(state.regions, q, limit=20 if q.strip() else len(state.regions))
    if q.strip() and state.neighbours and len(found) < 20:  # then the other districts' places of that name
        found += view.search(state.neighbours, q, limit=20 - len(found))
    return web.json_response(found, headers={"Cache-Control": "public, max-age=300"},
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))

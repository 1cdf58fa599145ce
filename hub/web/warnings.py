"""The web channel: the hub's own warnings as JSON, as a live SSE stream, as a CAP Atom feed and on kiosk boards.

Routes (added by :func:`setup`):

- ``GET /api/v1/warnings?ars=&lat=&lon=&limit=&cursor=``: current publications of the web channel, most severe
  first (at most ``limit``, 500 by default and at most; ``next``: the ``cursor`` of the next page, or null).
  ``ars`` keeps those whose area overlaps the region's boundary or one of whose regions lies in it, and, without an
  area or a boundary, those whose regions contain the region (by key; :meth:`hub.geo.geography.Geography.concerns`);
  ``lat``/``lon`` (WGS 84 degrees, both) keeps those whose area contains the point, or, without an area,
  one of whose regions has a boundary that contains it.
- ``GET /api/v1/warnings/{thread}``: every version of one incident; ``/api/v1/warnings/{thread}/cap.xml`` the latest
  version's CAP; ``/api/v1/publications/{identifier}.xml`` any version's CAP.
- ``GET /api/v1/stream?ars=`` (``&board=<id>`` for a kiosk): Server-Sent Events — ``snapshot`` (the current
  warnings as in the JSON API), then ``publication`` per new version, ``heartbeat`` when idle (see
  :mod:`hub.web.live`), and ``dropped`` / ``shutdown`` as the last word before the hub hangs up.
- ``GET /feeds/cap.atom``, ``/feeds/{ars}.atom``: CAP Atom feed, one entry per version, newest first, the CAP XML
  embedded; ETag / If-None-Match.
- ``GET /boards/{id}``: full-screen page for a ``kiosk`` board, served rendered (refreshes itself without
  JavaScript) and kept live by ``/static/board.js``.

Handlers use only ``request.app[HUB_KEY].store`` (the :class:`~hub.store.AsyncStore`). What each route may show
is decided by one rule, :class:`hub.publish.publications.Audience` (published to the public, CAP status Actual, scope
Public), applied in the store's queries and to live events. Kiosks show publications of the ``web`` and ``boards``
channels; a kiosk board marked ``exercise`` also shows exercises, and answers only with its ``token``
(``?token=``; without it 404). Many districts (issue 19): each district's site has these routes under its prefix
(``/uelzen``, or ``/`` of its host name) and shows that district's publications alone (:func:`setup`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import math
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from lxml import etree
from shapely.geometry.base import BaseGeometry

from hub.cap import labels
from hub.cap.parse import read_xml
from hub.config.sections import BoardConfig
from hub.geo.geography import Geography, geography
from hub.publish import publications
from hub.publish.places import Place, select
from hub.publish.publications import KIOSK, KIOSK_EXERCISE, WEB, Audience, Publication
from hub.store.db import Store
from hub.web import kiosk
from hub.web.keys import HUB_KEY
from hub.web.live import (
    Broadcaster,
    StalledClient,
    Subscriber,
    links,
    public_dict,
    relay,
    retry_hint,
    sse,
    unacknowledged,
)
from hub.web.paging import MAX_LIMIT, BadPage, cut, page_of

log = logging.getLogger("warnhub.web.warnings")

BROADCASTER_KEY = web.AppKey("broadcaster", Broadcaster)
STATIC = Path(__file__).parent / "static"
BERLIN = ZoneInfo("Europe/Berlin")
ATOM = "http://www.w3.org/2005/Atom"
CAP_TYPE = "application/cap+xml"
FEED_ENTRIES = 100
FEED_MAX_BYTES = 4 * 1024 * 1024
"""Embedded CAP per feed at most (a reader's default limit is 10 MiB); older entries are left out beyond it."""
URGENT = ("Extreme", "Severe")
ROTATE_S = 10
REFRESH_S = 30
"""Page refresh without JavaScript."""
FLUSH_S = 5.0
"""A dropped client's last write may take this long; then the connection is cut."""
SEND_BUFFER = 64 * 1024
"""Kernel send buffer per stream: a client that stops reading fills its queue soon, not after megabytes."""
_JSON = {"ensure_ascii": False, "separators": (",", ":")}


@dataclass(slots=True)
class _State:
    broadcaster: Broadcaster
    kiosks: dict[str, BoardConfig]
    district: str
    geo: Geography
    web: Audience = WEB  # on a district's site: that district's publications only
    prefix: str = ""
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    areas: dict[tuple[int, str], BaseGeometry] = field(default_factory=dict)
    """Projected publication areas by (id, identifier)."""
    feeds: collections.OrderedDict[tuple[Any, ...], tuple[bytes, str]] = field(
        default_factory=collections.OrderedDict)


_STATE = web.AppKey("warnings", _State)


def setup(app: web.Application, *, broadcaster: Broadcaster, boards: Sequence[BoardConfig], district: str,
          geo: Geography | None = None, site: str = "", prefix: str = "") -> None:
    """Add the web channel's routes (see the module docstring), ``/static/``, cache headers, and closing the
    broadcaster's streams on shutdown. ``geo``: the geography with the operators' boundaries (default: bundled).
    ``site``: the district whose publications alone are shown (``""``: all); ``prefix``: where ``app`` is mounted."""
    app[BROADCASTER_KEY] = broadcaster
    app[_STATE] = _State(broadcaster, {b.id: b for b in boards if b.kind == "kiosk"}, district, geo or geography(),
                         WEB.of(site), prefix)
    r = app.router
    r.add_get("/api/v1/warnings", api_warnings)
    r.add_get("/api/v1/warnings/{thread}", api_thread)
    r.add_get("/api/v1/warnings/{thread}/cap.xml", api_thread_cap)
    r.add_get("/api/v1/publications/{identifier}.xml", api_publication_xml)
    r.add_get("/api/v1/stream", stream)
    r.add_get("/feeds/cap.atom", feed)
    r.add_get(r"/feeds/{ars:\d{2,12}}.atom", feed)
    r.add_get("/boards/{id}", board_page)
    if not any(res.canonical == "/static" for res in r.resources()):
        r.add_static("/static/", STATIC, name="static")
    app.on_response_prepare.append(_cache_headers(prefix))
    app.on_shutdown.append(_close_streams)


_NO_CACHE = ("/api/v1/warnings", "/api/v1/publications/", "/api/v1/stream", "/feeds/", "/boards/")


def _cache_headers(prefix: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def cache_headers(request: web.Request, response: web.StreamResponse) -> None:
        path = request.path.removeprefix(prefix)
        if path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "public, max-age=300")
        elif path.startswith(_NO_CACHE):
            response.headers.setdefault("Cache-Control", "no-cache")

    return cache_headers


async def _close_streams(app: web.Application) -> None:
    app[BROADCASTER_KEY].close()


# -- parameters ---------------------------------------------------------------------------------


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def _not_found(message: str = "Nicht gefunden / not found") -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def place_of(request: web.Request) -> Place:
    """``ars``, ``lat`` and ``lon`` from the query, checked; HTTP 400 with a German and English reason."""
    state = request.app[_STATE]
    q = request.query
    ars = None
    if q.get("ars"):
        ars = state.geo.registry.from_ars(q["ars"])
        if ars is None:
            raise _bad(f"ars: {q['ars'][:20]!r} ist kein bekannter Amtlicher Regionalschlüssel (2, 3, 5, 9 oder 12 "
                       "Ziffern) / is not a known ARS (2, 3, 5, 9 or 12 digits)")
    if ("lat" in q) != ("lon" in q):
        raise _bad("lat und lon nur zusammen angeben / give lat and lon together")
    if "lat" not in q:
        return Place(ars)
    try:
        lat, lon = float(q["lat"]), float(q["lon"])
    except ValueError:
        raise _bad("lat, lon: Zahlen in Grad (WGS 84) angeben, z. B. lat=53.1&lon=11.1 / give numbers in degrees") \
            from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise _bad("lat: -90 bis 90, lon: -180 bis 180 Grad / lat -90 to 90, lon -180 to 180 degrees")
    return Place(ars, lon, lat)


async def _current(request: web.Request, place: Place) -> list[Publication]:
    hub = request.app[HUB_KEY]
    state = request.app[_STATE]
    pubs = await hub.store.read(publications.current, hub.store.store, state.web)
    if place.ars is None and place.lon is None:
        return pubs
    return await asyncio.to_thread(select, pubs, place, state.geo, state.areas)


def _listing(state: _State, pubs: Sequence[Publication], place: Place) -> dict[str, Any]:
    region = {"ars": place.ars, "name": state.geo.registry.name(place.ars)} if place.ars else None
    point = {"lat": place.lat, "lon": place.lon} if place.lat is not None else None
    return {"generated": datetime.now(UTC).isoformat(timespec="seconds"), "district": state.district,
            "region": region, "point": point, "warnings": [public_dict(p, state.prefix) for p in pubs]}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, **_JSON))  # type: ignore[arg-type]


# -- JSON and CAP ---------------------------------------------------------------------------------------------------


async def api_warnings(request: web.Request) -> web.Response:
    place = place_of(request)
    try:
        page = page_of(request.query, default=MAX_LIMIT, key=(int, int, int))
    except BadPage as err:
        raise _bad(str(err)) from None
    shown, following = cut(await _current(request, place), page, publications.rank)
    return _json({**_listing(request.app[_STATE], shown, place), "next": following})


async def _versions(request: web.Request) -> list[Publication]:
    hub = request.app[HUB_KEY]
    found = await hub.store.read(publications.shown_versions, hub.store.store, request.match_info["thread"],
                                 request.app[_STATE].web)
    if not found:
        raise _not_found("Unbekannte Warnung / unknown warning")
    return found


async def api_thread(request: web.Request) -> web.Response:
    found = await _versions(request)
    latest = found[-1]
    base = request.app[_STATE].prefix
    return _json({"thread": latest.thread, "live": latest.live(),
                  "links": links(latest.thread, latest.identifier, base),
                  "versions": [public_dict(p, base) for p in found]})


def _xml(body: bytes, request: web.Request) -> web.Response:
    return _conditional(request, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', "application/xml")


async def api_thread_cap(request: web.Request) -> web.Response:
    latest = (await _versions(request))[-1]
    hub = request.app[HUB_KEY]
    body = await hub.store.read(publications.shown_cap_xml, hub.store.store, latest.id, request.app[_STATE].web)
    if body is None:
        raise _not_found()
    return _xml(body, request)


async def api_publication_xml(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    body = await hub.store.read(publications.shown_cap_xml, hub.store.store, request.match_info["identifier"],
                                request.app[_STATE].web)
    if body is None:
        raise _not_found("Unbekannte Veröffentlichung / unknown publication")
    return _xml(body, request)


def _conditional(request: web.Request, body: bytes, etag: str, content_type: str) -> web.Response:
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    wanted = request.headers.get("If-None-Match", "")
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",") if t.strip()}
    if "*" in tags or etag in tags:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)


# -- the live stream ------------------------------------------------------------------------------------------------


async def stream(request: web.Request) -> web.StreamResponse:
    state = request.app[_STATE]
    place = place_of(request)
    if place.lon is not None:
        raise _bad("stream: nach Region filtern (ars), nicht nach Punkt / filter the stream by ars, not by lat/lon")
    board, audience = None, state.web
    if request.query.get("board"):
        board, audience = kiosk_of(request, request.query["board"])
        place = Place(board.ars)
    sub = state.broadcaster.subscribe(place.ars, channels=audience.channels,  # before the snapshot: no gap
                                      statuses=audience.statuses, district=audience.district, base=state.prefix)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        await resp.prepare(request)
        pubs = await (_kiosk_current(request, place, audience) if board else _current(request, place))
        async with asyncio.timeout(2 * state.broadcaster.heartbeat_s):  # a client that never reads: see relay()
            await resp.write(retry_hint() + sse("snapshot", _listing(state, pubs, place)))
        await _follow(request, resp, sub)
    except ConnectionError as err:  # the client went away
        log.debug("stream for %s ended: %r", place.ars or "all", err)
    except TimeoutError:  # the snapshot could not be handed over: the client does not read
        state.broadcaster.evicted += 1
        if request.transport is not None:
            request.transport.abort()
    finally:
        sub.close("gone")
    return resp


async def _pump(request: web.Request, resp: web.StreamResponse, sub: Subscriber) -> None:
    try:
        await relay(sub, resp.write, lambda: unacknowledged(request.transport))
    except StalledClient as err:  # it does not read: no goodbye (it would not be read either), hang up
        if request.transport is not None:
            request.transport.abort()
        log.info("stream client for %s evicted: %s", sub.ars or "all", err)


async def _follow(request: web.Request, resp: web.StreamResponse, sub: Subscriber) -> None:
    """Write the subscriber's events until it ends; a client that stopped reading is hung up on after FLUSH_S, or
    at a heartbeat (:func:`hub.web.live.relay`)."""
    pump = asyncio.ensure_future(_pump(request, resp, sub))
    ended = asyncio.ensure_future(sub.ended.wait())
    try:
        await asyncio.wait({pump, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not pump.done():  # dropped or shutdown: its last message is queued
            try:
                async with asyncio.timeout(FLUSH_S):
                    await asyncio.shield(pump)
            except TimeoutError:
                pump.cancel()
                if request.transport is not None:
                    request.transport.abort()
                log.info("stream client for %s stopped reading: connection closed", sub.ars or "all")
                return
        await pump
    finally:
        ended.cancel()
        if not pump.done():
            pump.cancel()


# -- the CAP Atom feed ----------------------------------------------------------------------------------------------


def entry_id(pub: Publication) -> str:
    """The Atom id of a version: a URN of the CAP sender and identifier (both percent-encoded where needed)."""
    return f"urn:x-cap:{quote(pub.sender, safe='@-._~')}:{quote(pub.identifier, safe='-._~')}"


def _atom(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def build_feed(pubs: Sequence[Publication], documents: dict[int, bytes], *, base: str, feed_id: str, title: str,
               self_url: str, updated: datetime) -> bytes:
    """A CAP Atom feed: an entry per publication (newest first as given) with the CAP alert embedded as XML."""
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    root.set("{http://www.w3.org/XML/1998/namespace}lang", "de")
    _atom(root, "id", feed_id)
    _atom(root, "title", title)
    newest = max((p.sent for p in pubs), default=updated)
    _atom(root, "updated", newest.astimezone(UTC).isoformat(timespec="seconds"))
    _atom(_atom(root, "author"), "name", pubs[0].sender if pubs else "warnhub")
    _atom(root, "link", rel="self", type="application/atom+xml", href=self_url)
    _atom(root, "link", rel="alternate", type="text/html", href=f"{base}/")
    _atom(root, "generator", "warnhub")
    size = 0
    for p in pubs:
        raw = documents.get(p.id)
        if raw is None or (size and size + len(raw) > FEED_MAX_BYTES):
            continue
        size += len(raw)
        n = _notice(p)
        entry = _atom(root, "entry")
        _atom(entry, "id", entry_id(p))
        title = n.headline or n.event or p.identifier
        _atom(entry, "title", f"Aufgehoben / cancelled: {n.headline}".rstrip(": ") if p.msg_type == "Cancel" else title)
        stamp = p.sent.astimezone(UTC).isoformat(timespec="seconds")
        _atom(entry, "updated", stamp)
        _atom(entry, "published", stamp)
        _atom(_atom(entry, "author"), "name", n.sender_name or p.sender)
        _atom(entry, "summary", _summary(p))
        _atom(entry, "category", term=p.severity, scheme="urn:oasis:names:tc:emergency:cap:1.2#severity")
        _atom(entry, "link", rel="alternate", type=CAP_TYPE, href=base + links(p.thread, p.identifier)["cap"])
        _atom(entry, "content", type=CAP_TYPE).append(read_xml(raw))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _notice(p: Publication, lang: str = "de") -> publications.Notice:
    """The best text for ``lang``; an empty one for a publication without infos (a bare Cancel)."""
    if p.notices:
        return p.notice((lang,))
    return publications.Notice(lang, "", "", "", "", "", p.sender, None)


def _summary(p: Publication) -> str:
    n = _notice(p)
    word = "Aufgehoben / Cancelled" if p.msg_type == "Cancel" else \
        f"{labels.severity_word(p.severity, 'de')} / {labels.severity_word(p.severity, 'en')}"
    parts = [word, n.event, n.area_desc, until(p.expires) if p.msg_type != "Cancel" else ""]
    return " – ".join(x for x in parts if x)


def _documents(store: Store, ids: list[int], audience: Audience = WEB) -> dict[int, bytes]:
    return {i: raw for i in ids if (raw := publications.shown_cap_xml(store, i, audience)) is not None}


async def feed(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    hub = request.app[HUB_KEY]
    ars = None
    if "ars" in request.match_info:
        ars = state.geo.registry.from_ars(request.match_info["ars"])
        if ars is None:
            raise _not_found("Unbekannter Regionalschlüssel / unknown ARS")
    pubs = await hub.store.read(publications.recent, hub.store.store, state.web,
                                limit=FEED_ENTRIES * (4 if ars else 1))
    if ars:
        pubs = await asyncio.to_thread(select, pubs, Place(ars), state.geo, state.areas)
    pubs = pubs[:FEED_ENTRIES]
    base = str(request.url.origin()) + state.prefix
    key = (ars, base, tuple((p.id, p.identifier) for p in pubs))
    cached = state.feeds.get(key)
    if cached is None:
        docs = await hub.store.read(_documents, hub.store.store, [p.id for p in pubs], state.web)
        scope = state.geo.registry.name(ars or state.district) or (ars or state.district)
        body = await asyncio.to_thread(
            build_feed, pubs, docs, base=base, feed_id=f"urn:x-warnhub:{state.district}:feed:{ars or 'all'}",
            title=f"Warnungen {scope} / warnings", self_url=str(request.url), updated=state.started)
        cached = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        state.feeds[key] = cached
        while len(state.feeds) > 32:
            state.feeds.popitem(last=False)
    return _conditional(request, cached[0], cached[1], "application/atom+xml")


# -- kiosk boards ---------------------------------------------------------------------------------------------------


until = kiosk.until
"""``gültig bis 18:30 Uhr / valid until 18:30`` (Europe/Berlin); ``bis auf Weiteres / until further notice``."""


def kiosk_of(request: web.Request, board_id: str) -> tuple[BoardConfig, Audience]:
    """A kiosk board and what it may show; a board marked ``exercise`` only with its ``token`` (compared in
    constant time), else 404 as for an unknown board: whoever does not hold the token learns nothing of it."""
    state = request.app[_STATE]
    board = state.kiosks.get(board_id)
    if board is not None and not board.exercise:
        return board, KIOSK.of(state.web.district)
    given = request.query.get("token", "").encode()
    if board is not None and board.token and hmac.compare_digest(given, board.token.encode()):
        return board, KIOSK_EXERCISE.of(state.web.district)
    raise _not_found("Unbekannte Anzeigetafel (eine Übungstafel nur mit ihrem token) / unknown board (an exercise "
                     "board only with its token)")


async def _kiosk_current(request: web.Request, place: Place, audience: Audience) -> list[Publication]:
    hub = request.app[HUB_KEY]
    state = request.app[_STATE]
    pubs = await hub.store.read(publications.current, hub.store.store, audience)
    return await asyncio.to_thread(select, pubs, place, state.geo, state.areas)


async def board_page(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    board, audience = kiosk_of(request, request.match_info["id"])
    pubs = await _kiosk_current(request, Place(board.ars), audience)
    now = datetime.now(UTC)
    pool = [p for p in pubs if p.severity in URGENT] or pubs
    try:
        index = int(request.query.get("i", "0")) % max(len(pool), 1)
    except ValueError:
        index = 0
    shown = pool[index] if pool else None
    token = f"&token={quote(board.token or '', safe='')}" if audience.statuses == KIOSK_EXERCISE.statuses else ""
    refresh = str(REFRESH_S)
    here = f"{state.prefix}/boards/{quote(board.id)}"
    if len(pool) > 1:
        refresh = f"{ROTATE_S}; url={here}?i={(index + 1) % len(pool)}{token}"
    if shown is not None and shown.expires is not None:  # never show it past its end
        left = math.ceil((shown.expires - now).total_seconds()) + 1
        if left < int(refresh.split(";")[0]):
            refresh = f"{max(left, 1)}; url={here}{token.replace('&', '?', 1)}"
    query = f"ars={board.ars}&board={quote(board.id)}{token}"
    lang = board.language
    html = kiosk.render(
        lang, board=board, region=state.geo.registry.name(board.ars) or board.ars,
        shown=kiosk.shown(shown, now, lang) if shown else None, position=index + 1, total=len(pool),
        others=[kiosk.shown(p, now, lang) for p in pubs if p is not shown][:4],
        refresh=refresh, stream=f"{state.prefix}/api/v1/stream?{query}",
        stamp=now.astimezone(BERLIN).strftime("%H:%M"), data=_listing(state, pubs, Place(board.ars)),
        severities=labels.severity_words())
    return web.Response(text=html, content_type="text/html", charset="utf-8")

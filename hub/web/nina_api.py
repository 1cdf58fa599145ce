"""A NINA-compatible read API, so that NINA clients (FOSS Warn, Home Assistant's NINA integration, MMM-NINA …) read
the district's warnings by pointing their base URL at ``https://<hub>/api31``.

Routes (added by :func:`setup`), in the shapes of ``warnung.bund.de/api31`` (see :mod:`hub.publish.nina_shape`):

- ``GET /api31/mapData.json``: every current warning of the hub; ``/api31/{mowas,katwarn,biwapp,dwd,lhp,police}/
  mapData.json``: those of that provider (the lists NINA clients read per source).
- ``GET /api31/dashboard/{ARS}.json``: the current warnings that concern a region. A Kreis ARS (12 digits, the last
  7 zero) as in NINA; also a Gemeinde's or Gemeindeverband's 12-digit ARS (NINA answers nothing for those): then the
  Kreis's list filtered to the warnings that concern that Gemeinde, by the rule of ``/api/v1/warnings?ars=`` (a
  warning for another Gemeinde of the Kreis is not listed). An ARS the hub does not know: 404.
- ``GET /api31/warnings/{id}.json`` and ``.geojson``: a warning's latest public version (also one that was cancelled
  or has expired, so a client sees that it ended) as NINA's CAP-like JSON and its areas as GeoJSON; ``{id}`` is the
  hub's NINA id (``warnhub.<district>.<thread>``) or the CAP identifier of one version. Unknown: 404 JSON.

Only public Actual publications: the lists are :func:`hub.publish.publications.current` and the details
:func:`~hub.publish.publications.shown_versions` for :data:`~hub.publish.publications.WEB`, the one rule of every
public route (never an Exercise, Test, Draft, Restricted or Private message, nor one published only to push). Current
means as in the JSON API: neither cancelled nor expired.

Every answer has an ``ETag`` (If-None-Match -> 304), ``Cache-Control: public, max-age=30``, and
``Access-Control-Allow-Origin: *`` (public data only; browsers' preflights for ``If-None-Match`` are answered).
Many districts (issue 19): each district's site has these routes under its prefix (``/uelzen/api31``, or ``/api31``
of its own host name) with that district's publications alone and its ARS in the ids; one per-address rate for all.
Per address at most ``rate_per_minute`` requests a minute (``[web] nina_per_address_per_minute``, 120; 0: no limit;
:class:`hub.web.limits.AddressRate`), else 429 with ``Retry-After`` (counted in ``/metrics`` as every refusal).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from shapely.geometry.base import BaseGeometry

from hub.cap.model import Alert
from hub.geo.geography import Geography, geography
from hub.publish import nina_shape, publications
from hub.publish.places import Place, select
from hub.publish.publications import WEB, Publication
from hub.web.client import client_address
from hub.web.keys import HUB_KEY
from hub.web.limits import AddressRate, refusal

BASE = "/api31"
RATE_PER_MINUTE = 120
"""Requests per address and minute by default: a client reading a dashboard and every detail in it stays far below."""
MAX_ADDRESSES = 10_000
"""Addresses the rate keeps track of (bounded memory)."""
CACHE_CONTROL = "public, max-age=30"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "ETag"}
_ARS = re.compile(r"^\d{12}$")
_ID = r"[A-Za-z0-9][A-Za-z0-9._:+=@-]{0,299}"


@dataclass(slots=True)
class _State:
    district: str
    geo: Geography
    rate: AddressRate
    web: publications.Audience = WEB
    prefix: str = ""
    areas: dict[tuple[int, str], BaseGeometry] = field(default_factory=dict)


_STATE = web.AppKey("nina_api", _State)


def rate(per_minute: int = RATE_PER_MINUTE) -> AddressRate:
    """The per-address rate of the NINA routes (one for the whole hub, whichever district's site is asked)."""
    return AddressRate(per_minute, 60.0, max_addresses=MAX_ADDRESSES)


def setup(app: web.Application, *, district: str, geo: Geography | None = None,
          rate_per_minute: int = RATE_PER_MINUTE, site: str = "", prefix: str = "",
          shared_rate: AddressRate | None = None) -> None:
    """Add the NINA routes (see the module docstring). ``geo``: the geography with the operators' boundaries;
    ``site``: the district whose publications alone are shown (``""``: all), ``prefix``: where ``app`` is mounted."""
    app[_STATE] = _State(district, geo or geography(), shared_rate or rate(rate_per_minute), WEB.of(site), prefix)
    for path, handler in ((f"{BASE}/mapData.json", map_data),
                          (f"{BASE}/{{provider:{'|'.join(nina_shape.PROVIDERS)}}}/mapData.json", map_data),
                          (f"{BASE}/dashboard/{{ars}}.json", dashboard),
                          (f"{BASE}/warnings/{{id:{_ID}}}.json", detail),
                          (f"{BASE}/warnings/{{id:{_ID}}}.geojson", detail_geojson)):
        resource = app.router.add_resource(path)
        resource.add_route("HEAD", handler)
        resource.add_route("GET", handler)
        resource.add_route("OPTIONS", preflight)
    app.on_response_prepare.append(_headers)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    state = request.app.get(_STATE)
    if request.path.removeprefix(state.prefix if state is not None else "").startswith(f"{BASE}/"):
        for key, value in CORS.items():
            response.headers.setdefault(key, value)
        response.headers.setdefault("Cache-Control", CACHE_CONTROL if response.status in (200, 304) else "no-store")


async def preflight(request: web.Request) -> web.Response:
    """A browser asks whether a cross-origin GET (with ``If-None-Match``) may be sent: yes."""
    return web.Response(status=204, headers={"Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                                             "Access-Control-Allow-Headers": "If-None-Match",
                                             "Access-Control-Max-Age": "86400"})


def _not_found(message: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def _limit(request: web.Request) -> _State:
    state = request.app[_STATE]
    wait_s = state.rate.hit(client_address(request))
    if wait_s:
        raise refusal(web.HTTPTooManyRequests, "Zu viele Anfragen von dieser Adresse, bitte später erneut versuchen "
                      "/ too many requests from this address, please try again later", wait_s)
    return state


def _answer(request: web.Request, data: Any, content_type: str = "application/json") -> web.Response:
    """JSON with an ETag of its bytes; 304 when the client holds them (``If-None-Match``)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    wanted = request.headers.get("If-None-Match", "")
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",") if t.strip()}
    if "*" in tags or etag in tags:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers={"ETag": etag})


async def _current(request: web.Request, place: Place | None = None) -> list[tuple[Publication, Alert]]:
    hub = request.app[HUB_KEY]
    state = request.app[_STATE]
    pubs = await hub.store.read(publications.current, hub.store.store, state.web)
    if place is not None:
        pubs = await asyncio.to_thread(select, pubs, place, state.geo, state.areas)
    return await hub.store.read(nina_shape.alerts_of, hub.store.store, pubs)


async def map_data(request: web.Request) -> web.Response:
    state = _limit(request)
    wanted = nina_shape.PROVIDERS.get(request.match_info.get("provider", ""))
    found = await _current(request)
    return _answer(request, [nina_shape.map_item(state.district, p, a) for p, a in found
                             if wanted is None or nina_shape.provider(a) == wanted])


async def dashboard(request: web.Request) -> web.Response:
    state = _limit(request)
    given = request.match_info["ars"]
    ars = state.geo.registry.from_ars(given) if _ARS.match(given) else None
    if ars is None:
        raise _not_found("Unbekannter Regionalschlüssel (12 Ziffern, z. B. 033540000000) / unknown ARS (12 digits)")
    found = await _current(request, Place(ars))
    return _answer(request, [nina_shape.dashboard_item(state.district, p, a) for p, a in found])


async def _one(request: web.Request) -> tuple[Publication, Alert]:
    state = _limit(request)
    hub = request.app[HUB_KEY]
    found = await hub.store.read(nina_shape.shown, hub.store.store, state.district, request.match_info["id"],
                                 state.web)
    if found is None:
        raise _not_found("Unbekannte Warnung / unknown warning")
    return found


async def detail(request: web.Request) -> web.Response:
    return _answer(request, nina_shape.detail(*await _one(request)))


async def detail_geojson(request: web.Request) -> web.Response:
    return _answer(request, nina_shape.geojson(*await _one(request)), "application/geo+json")

"""The aiohttp application and its server lifecycle (AppRunner + TCPSite, never run_app()).

Routes:
- ``/`` and the other citizen pages (``/warnungen/{thread}``, ``/abonnieren``, ``/datenschutz``, ``/widget/{ars}``):
  hub.web.citizen, what the hub publishes to the web.
- ``/console/incidents``: every stored incident (current and ended, also unrouted and suppressed ones) and source
  health; ``/console/incidents/{id}``: one incident with its versions. Operator information: console sign-in.
- The same as JSON, also behind the console sign-in (permission ``read``): ``/console/api/alerts`` (``?all=1``
  includes ended; paged with ``limit`` and ``cursor``, see :mod:`hub.web.paging`), ``/console/api/alerts/{id}``,
  ``/console/api/alerts/{id}/cap.xml``; ``/console/api/publications/{thread}/status``: delivery figures of a
  publication. Stored incidents hold exercises, unrouted and suppressed alerts and CAP Restricted/Private messages:
  none of it is ever served without a session (the public routes show what :mod:`hub.publish.publications` admits).
  Many districts: external alerts are the whole hub's, but another district's console warnings and publications are
  neither listed nor shown to a user of this one (403, hub.web.console_districts).
- ``/api/v1/sensors``: configured sensors with state (ok / stale / never), newest reading, malformed count;
  ``/api/v1/sensors/{id}/readings?since=<ISO 8601>&limit=<1..10000>``: readings oldest first (without ``since``
  the newest ``limit``).
- ``/healthz``: JSON; 200 while the store answers (``status`` says ``degraded`` when a source is down, a task
  of the hub crashed and waits for its restart: ``tasks``, or an alert or delivery failed: ``pipeline``), else 503.
- ``/metrics``: Prometheus text format.
- ``/console/``: the control-room console (hub.web.console; sign-in required).
- ``/api31/``: the same public warnings in the shapes of the BBK's NINA API, for NINA clients (hub.web.nina_api).
- Many districts (``[[districts]]``, issue 19): each district's citizen pages, warnings API, stream, feeds and
  ``/api31`` under ``/{slug}/`` and at ``/`` of its own host name; ``/`` lists the districts
  (hub.web.district_sites).

Handlers take the service they need through the typed keys of :mod:`hub.web.keys`, set here from the hub's
:class:`~hub.services.Services`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import datetime
from functools import partial
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub import __version__
from hub.cap.serialize import to_xml
from hub.decide import canary as canary_rule
from hub.decide import decisions
from hub.deliver import outbox
from hub.health import STATE_VALUE, pipeline_faults
from hub.intake import readings
from hub.publish import publications
from hub.services import Services
from hub.store.alerts import ThreadView
from hub.store.db import Store
from hub.web import (
    canary,
    citizen,
    citizen_push,
    console,
    console_api,
    district_sites,
    fdlimit,
    live,
    nina_api,
    provider,
    subscriptions,
    warnings,
)
from hub.web.auth import json_error, require
from hub.web.client import TRUSTED_PROXIES_KEY, parse_networks
from hub.web.console_districts import district, forbidden, owners
from hub.web.keys import (
    CONFIG_KEY,
    EVENTS_KEY,
    HEALTH_KEY,
    HUB_KEY,
    METRICS_KEY,
    ROUTER_KEY,
    SECURITY_HEADERS,
    SITES_KEY,
    STORE_KEY,
    TASKS_KEY,
    VAPID_KEY,
)
from hub.web.paging import BadPage, cursor_of, page_of
from hub.web.site import GuardedSite

log = logging.getLogger("warnhub.web")
STATE_DE = {"active": "aktiv", "updated": "aktualisiert", "cancelled": "aufgehoben", "expired": "abgelaufen",
            "ended": "beendet (nicht mehr gemeldet)"}


FOREIGN = ("SELECT store_thread FROM console_warnings WHERE store_thread IS NOT NULL"
           " AND district NOT IN (SELECT value FROM json_each(?))")
"""The stored threads of other districts' console warnings (parameter: the Kreis keys of the asking district)."""


def _foreign(store: Store, mine: tuple[str, ...]) -> set[int]:
    """The stored threads no user of the district with Kreis keys ``mine`` may see: other districts' console
    warnings (external alerts are the whole hub's)."""
    return {r[0] for r in store.conn.execute(FOREIGN, (json.dumps(list(mine)),))}


async def incidents_page(request: web.Request) -> web.Response:
    """Every stored incident and source health, for operators (under the console's sign-in); of the console's own
    warnings only the user's district's."""
    require(request, "read")
    store = request.app[STORE_KEY]
    threads = await store.read(store.store.threads, include_ended=True)
    foreign = await store.read(_foreign, store.store, owners(district(request)))
    threads = [t for t in threads if t.id not in foreign]
    current = [t for t in threads if t.state in ("active", "updated")]
    ended = [t for t in threads if t.state not in ("active", "updated")]
    return console.render(request, "index.html", current=current, ended=ended[:200], ended_total=len(ended),
                          health=request.app[HEALTH_KEY].as_dict(), state_de=STATE_DE)


async def _incident(request: web.Request) -> tuple[Any, list[dict[str, Any]], Any]:
    store = request.app[STORE_KEY]
    thread_id = await _own_thread(request)
    found = await store.read(store.store.incident, thread_id)
    if found is None:
        raise web.HTTPNotFound(text="Unbekannte Meldung / unknown incident")
    return found


async def _own_thread(request: web.Request) -> int:
    """The stored thread the path names, refused (403) when it is another district's console warning."""
    store = request.app[STORE_KEY]
    thread_id = _int(request.match_info["id"])
    if thread_id in await store.read(_foreign, store.store, owners(district(request))):
        raise forbidden()
    return thread_id


async def incident_page(request: web.Request) -> web.Response:
    """One stored incident with every version, for operators (under the console's sign-in)."""
    require(request, "read")
    thread, versions, alert = await _incident(request)
    return console.render(request, "thread.html", thread=thread, versions=versions, alert=alert, state_de=STATE_DE)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise web.HTTPNotFound() from None


def _threads_page(store: Store, include_ended: bool, after: tuple[Any, ...] | None,
                  limit: int, mine: tuple[str, ...]) -> list[ThreadView]:
    """Stored threads, newest first (by last version sent, then id), ``limit + 1`` of them after the cursor; never
    the hub's canaries, nor other districts' console warnings (``mine``: the asking district's Kreis keys)."""
    where = ["t.state IN ('active','updated')"] if not include_ended else []
    where.append("coalesce(a.origin, '') <> ?")  # the hub's own canary rounds (hub.decide.canary) are no incident
    where.append(f"t.id NOT IN ({FOREIGN})")
    params: list[Any] = [canary_rule.ORIGIN, json.dumps(list(mine))]
    if after is not None:
        where.append("(t.last_sent < ? OR (t.last_sent = ? AND t.id < ?))")
        params += [after[0], after[0], after[1]]
    sql = Store._THREAD_SELECT + (f"WHERE {' AND '.join(where)}" if where else "")
    rows = store.conn.execute(sql + " ORDER BY t.last_sent DESC, t.id DESC LIMIT ?", (*params, limit + 1))
    return [ThreadView(*r) for r in rows]


async def api_alerts(request: web.Request) -> web.Response:
    """Stored incidents as JSON, newest first, a page at a time (operators only)."""
    require(request, "read")
    store = request.app[STORE_KEY]
    try:
        page = page_of(request.query, default=100, key=(str, int))
    except BadPage as err:
        raise json_error(web.HTTPBadRequest, "invalid", str(err)) from None
    include_ended = request.query.get("all") in ("1", "true", "yes")
    d = district(request)
    threads = await store.read(_threads_page, store.store, include_ended, page.after, page.limit, owners(d))
    shown = threads[:page.limit]
    following = cursor_of((shown[-1].last_sent, shown[-1].id)) if len(threads) > page.limit else None
    return web.json_response({"district": d.ars,
                              "threads": [t.as_dict() for t in shown], "next": following})


async def api_thread(request: web.Request) -> web.Response:
    require(request, "read")
    thread, versions, alert = await _incident(request)
    current = msgspec.to_builtins(alert) if alert is not None else None  # CAP element names, RFC 3339 times
    return web.json_response({"thread": thread.as_dict(), "versions": versions, "current": current})


async def api_thread_cap(request: web.Request) -> web.Response:
    require(request, "read")
    store = request.app[STORE_KEY]
    thread_id = await _own_thread(request)
    alert = await store.read(store.store.current_alert, thread_id)
    if alert is None:
        raise web.HTTPNotFound()
    return web.Response(body=to_xml(alert), content_type="application/xml", charset="utf-8")


async def api_sensors(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    return web.json_response({"sensors": await store.read(readings.sensors, store.store)})


_OFFSET_SPACE = re.compile(r"(\d\d:\d\d(?:\.\d+)?) (\d\d(?::?\d\d)?)$")


def _since_ms(text: str | None) -> int | None:
    """``since`` as epoch ms; a ``+`` of the offset that arrived as a space (unencoded URL) is put back."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(_OFFSET_SPACE.sub(r"\1+\2", text.strip()))
    except ValueError:
        raise web.HTTPBadRequest(text=f"since: {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise web.HTTPBadRequest(text="since: give a time zone (Z or +01:00)")
    return readings.ms_of(value)


async def api_sensor_readings(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    try:
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 10000:
        raise web.HTTPBadRequest(text="limit: a number from 1 to 10000")
    since = _since_ms(request.query.get("since"))
    found = await store.read(readings.sensor_readings, store.store, request.match_info["id"], since=since,
                             limit=limit)
    if found is None:
        raise web.HTTPNotFound(text="Unbekannter Sensor / unknown sensor")
    return web.json_response(found)


async def healthz(request: web.Request) -> web.Response:
    store, health, tasks = request.app[STORE_KEY], request.app[HEALTH_KEY], request.app[TASKS_KEY]
    try:  # the store is healthy when it can write (a read works on a full disk too)
        cannot_write = await asyncio.wait_for(store.probe(), timeout=5)
        counts = await asyncio.wait_for(store.read(store.store.counts), timeout=5)
    except Exception as err:  # noqa: BLE001 - any store failure makes the hub unhealthy
        return web.json_response({"status": "down", "store": f"failing: {err!r}"}, status=503)
    if cannot_write:  # intake refuses (files stay in the inbox), nothing accepted is lost; say so first
        return web.json_response({"status": "down", "store": f"failing: {cannot_write}", "counts": counts,
                                  "sources": health.as_dict(), "tasks": tasks.as_dict()}, status=503)
    if not tasks.started:  # web answers first; sources and rules are still starting
        return web.json_response({"status": "starting", "version": __version__}, status=503)
    status = "ok" if health.ok and tasks.ok else "degraded"  # degraded: a source is down or a task restarting
    body: dict[str, Any] = {"status": status, "version": __version__, "store": "ok", "counts": counts,
                            "sources": health.as_dict(), "tasks": tasks.as_dict()}
    router = request.app.get(ROUTER_KEY)
    if router is not None:
        rules = router.health()
        rules["decisions"] = await store.read(decisions.decision_counts, store.store)
        body["rules"] = rules
        if rules["refused"]:
            body["status"] = "degraded"  # the running rules work, but not the ones the operators last wrote
    faults = body["pipeline"] = await store.read(pipeline_faults, store.store)
    if any(faults["failed"].values()):
        body["status"] = "degraded"  # an alert or delivery failed (and is retried); every other one goes on
    services = request.app.get(HUB_KEY)
    if services is not None and services.outbox is not None:
        channels = body["channels"] = {n: h.as_dict() for n, h in sorted(services.outbox.health.items())}
        if any(c["state"] != "ok" for c in channels.values()):
            body["status"] = "degraded"  # a channel's destination fails or its queue stalls: named under channels
    if services is not None and services.canary is not None:
        body["canaries"] = services.canary.as_dict()
        if not services.canary.ok:
            body["status"] = "degraded"  # a canary endpoint is late or silent: named under canaries
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    store, health = request.app[STORE_KEY], request.app[HEALTH_KEY]
    counts = await store.read(store.store.counts)
    m = request.app[METRICS_KEY]
    for state in ("active", "updated", "cancelled", "expired", "ended"):
        m.threads.labels(state).set(counts.get(f"threads_{state}", 0))
    m.alerts.set(counts.get("alerts", 0))
    m.rejections.set(counts.get("rejections", 0))
    for name, h in health.sources.items():
        m.source_up.labels(name).set(STATE_VALUE.get(h.state, 0.0))
    for stage, n in (await store.read(pipeline_faults, store.store))["failed"].items():
        m.failed.labels(stage).set(n)
    m.connections_refused.set(sum(site.refused for site in request.app[SITES_KEY]))
    services = request.app.get(HUB_KEY)
    if services is not None and services.broadcaster is not None:
        m.stream_clients.set(services.broadcaster.clients)
        m.stream_hung_up.labels("dropped").set(services.broadcaster.dropped)
        m.stream_hung_up.labels("stalled").set(services.broadcaster.evicted)
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def count_refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    """Counts every answer that refuses for a limit (429, or 503 with Retry-After) in ``/metrics``, by route."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        _count_refusal(request, exc)
        raise
    _count_refusal(request, response)
    return response


def _count_refusal(request: web.Request, response: web.StreamResponse) -> None:
    if response.status == 429 or (response.status == 503 and "Retry-After" in response.headers):
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "-"
        request.app[METRICS_KEY].refused.labels(name, str(response.status)).inc()


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def make_app(services: Services) -> web.Application:
    """The web application over ``services``: what a part needs that ``services`` lacks is not mounted (the
    warnings API without a live stream, the subscription API without an index, the console and citizen pages
    without a geography)."""
    app = web.Application(middlewares=[count_refusals, security_headers, live.stream_limits],
                          client_max_size=1024 * 1024)
    _set_keys(app, services)
    cfg = services.loaded.cfg
    app[live.STREAM_GATE_KEY] = live.StreamGate(cfg.web.max_streams, cfg.web.max_streams_per_address, fdlimit.budget())
    app[TRUSTED_PROXIES_KEY] = parse_networks(cfg.web.trusted_proxies)
    app.router.add_get("/api/v1/sensors", api_sensors)
    app.router.add_get("/api/v1/sensors/{id}/readings", api_sensor_readings)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/push/key", push_key)
    multi = services.loaded.districts.multi
    if multi:  # each district's site under /{slug}/ and at its host name
        district_sites.mount(app, services, partial(_set_keys, services=services))
    if services.broadcaster is not None and not multi:
        warnings.setup(app, broadcaster=services.broadcaster, boards=cfg.boards, district=cfg.hub.district_ars,
                       geo=services.geo)
        nina_api.setup(app, district=cfg.hub.district_ars, geo=services.geo,  # /api31: for NINA clients
                       rate_per_minute=cfg.web.nina_per_address_per_minute)
    if services.index is not None:
        subscriptions.setup(app, allow_http=cfg.push.allow_http_endpoints, index=services.index,
                            per_address_per_hour=cfg.web.subscribe_per_address_per_hour,
                            max_subscriptions=cfg.push.max_subscriptions)
    if services.canary is not None:
        canary.setup(app, services.canary)  # the canaries' receipts
    citizen_push.setup(app, services)  # /sw.js: the citizen pages' push and offline service worker
    if services.geo is not None:  # the control-room console (login, pages, API) under /console
        state = console.setup(app, services, services.geo)
        console_api.routes(app, state.prefix)
        provider.setup(app, services)  # /provider/: the districts' health for the provider role, no content
        app.router.add_get(f"{state.prefix}/incidents", incidents_page)
        app.router.add_get(f"{state.prefix}/incidents/{{id}}", incident_page)
        app.router.add_get(f"{state.prefix}/api/alerts", api_alerts)
        app.router.add_get(f"{state.prefix}/api/alerts/{{id}}", api_thread)
        app.router.add_get(f"{state.prefix}/api/alerts/{{id}}/cap.xml", api_thread_cap)
        app.router.add_get(f"{state.prefix}/api/publications/{{thread}}/status", delivery_status)
        if services.broadcaster is not None and not multi:  # the citizen pages show the web channel's publications
            citizen.setup(app, services, services.geo)
    return app


def make_health_app(services: Services) -> web.Application:
    """A node without the web role (``warnhub run --role``, :mod:`hub.cluster`): ``/healthz`` alone, as the web
    role answers it, so a load balancer or systemd watchdog checks every node the same way."""
    app = web.Application(middlewares=[security_headers], client_max_size=1024)
    _set_keys(app, services)
    app.router.add_get("/healthz", healthz)
    return app


def _set_keys(app: web.Application, services: Services) -> None:
    app[HUB_KEY] = services
    app[CONFIG_KEY] = services.config
    app[STORE_KEY] = services.store
    app[EVENTS_KEY] = services.events
    app[METRICS_KEY] = services.metrics
    app[HEALTH_KEY] = services.health
    app[TASKS_KEY] = services.tasks
    app[SITES_KEY] = []
    if services.router is not None:
        app[ROUTER_KEY] = services.router
    if services.vapid_public_key is not None:
        app[VAPID_KEY] = services.vapid_public_key


async def delivery_status(request: web.Request) -> web.Response:
    """Deliveries of each version of one warning, per channel and state (queued, inflight, done, gone, failed,
    expired, superseded, withdrawn): counts only, no recipients. Operators only."""
    require(request, "read")
    store = request.app[STORE_KEY]
    thread = request.match_info["thread"]
    pubs = await store.read(publications.versions, store.store, thread)
    if not pubs:
        raise web.HTTPNotFound(text="Unbekannte Warnung / unknown warning")
    pubs = await store.read(_own_publications, store.store, pubs, owners(district(request)))
    if not pubs:  # another district's publication
        raise forbidden()
    counts = await store.read(outbox.status, store.store, [p.id for p in pubs])
    return web.json_response({"thread": thread, "versions": [
        {"version": p.version, "identifier": p.identifier, "msgType": p.msg_type,
         "channels": counts.get(p.id, {})} for p in pubs]}, headers={"Cache-Control": "no-cache"})


def _own_publications(store: Store, pubs: list[Any], mine: tuple[str, ...]) -> list[Any]:
    """Those of ``pubs`` that the district with Kreis keys ``mine`` issued."""
    ids = [p.id for p in pubs]
    owned = {r[0] for r in store.conn.execute(
        "SELECT id FROM publications WHERE id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))"
        " AND district IN (SELECT value FROM json_each(?))", (json.dumps(ids), json.dumps(list(mine))))}
    return [p for p in pubs if p.id in owned]


async def push_key(request: web.Request) -> web.Response:
    """The hub's VAPID public key: the ``applicationServerKey`` a browser subscribes with."""
    key = request.app.get(VAPID_KEY)
    if key is None:
        raise web.HTTPServiceUnavailable(text="Push noch nicht bereit / push not ready yet")
    return web.json_response({"publicKey": key}, headers={"Cache-Control": "no-cache"})


class WebServer:
    """Serves the app while the daemon runs; the bound port is known after entry (port 0 picks a free one)."""

    def __init__(self, services: Services, host: str, port: int, *, health_only: bool = False) -> None:
        app = make_health_app(services) if health_only else make_app(services)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
        self.host, self.port = host, port

    async def __aenter__(self) -> WebServer:
        await self.runner.setup()
        site = GuardedSite(self.runner, self.host, self.port)  # keeps file descriptors in reserve (hub.web.fdlimit)
        await site.start()
        self.runner.app[SITES_KEY].append(site)
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        log.info("web listening on http://%s:%s/", self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

"""The provider's page (issue 19): ``GET /provider/`` (HTML) and ``GET /provider/api/health`` (JSON).

A provider runs one hub for several Kreise and manages their users (``warnhub user``); it sees **health only**,
never content: per district its rules state, outbox queue and failed counts (by ``publications.district``), its
users (name, roles, scopes, last sign-in), and hub-wide the sources and canaries. No drafts, warnings, headlines,
audit details or delivery contents. Sign-in is the console's (same session cookie); the role ``provider`` is
required (others: 403), and a provider holds no console permission, so every console content route refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from hub.access import auth
from hub.config.districts import District, Districts
from hub.services import Services
from hub.store.db import Store
from hub.web.auth import AUTH_KEY, CONSOLE_HEADERS, current

PREFIX = "/provider"
ROLE = "provider"
SERVICES_KEY = web.AppKey("provider_services", Services)
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                          undefined=jinja2.StrictUndefined)
FORBIDDEN = {"error": "Kein Zugriff / forbidden"}


def setup(app: web.Application, services: Services) -> None:
    """Mount the provider's page (after the console's sign-in, :func:`hub.web.console.setup`)."""
    app[SERVICES_KEY] = services
    app.router.add_get(PREFIX, _to_page)
    app.router.add_get(f"{PREFIX}/", page)
    app.router.add_get(f"{PREFIX}/api/health", health_api)


async def _to_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


async def _provider(request: web.Request, *, as_json: bool) -> auth.User:
    """The signed-in provider; not signed in: to the console's sign-in (401 for JSON); any other role: 403."""
    settings = request.app[AUTH_KEY]
    found = await current(request, settings)
    if found is None:
        if as_json:
            raise web.HTTPUnauthorized(text=json.dumps({"error": "unauthenticated"}), content_type="application/json")
        raise web.HTTPSeeOther(f"{settings.prefix}/login")
    user = found[0]
    if ROLE not in user.roles or user.disabled:
        raise web.HTTPForbidden(text=json.dumps(FORBIDDEN, ensure_ascii=False), content_type="application/json",
                                headers=CONSOLE_HEADERS)
    return user


def district_users(users: list[dict[str, Any]], districts: Districts) -> dict[str, list[dict[str, Any]]]:
    """The users by the Kreis key of their district (``''``: in none, e.g. providers): name, roles, scopes, state,
    last sign-in; nothing else."""
    out: dict[str, list[dict[str, Any]]] = {}
    for u in users:
        d = districts.of_scopes(u["scopes"]) if u["scopes"] else None
        out.setdefault(d.ars if d else "", []).append(
            {k: u[k] for k in ("name", "roles", "scopes", "disabled", "last_login")})
    return out


def _outbox(store: Store) -> dict[str, dict[str, int]]:
    """Outbox rows waiting (queued, inflight) and failed, by their publication's district."""
    out: dict[str, dict[str, int]] = {}
    for district, state, n in store.conn.execute(
            "SELECT p.district, o.state, count(*) FROM outbox o JOIN publications p ON p.id = o.publication_id"
            " WHERE o.state IN ('queued', 'inflight', 'failed') GROUP BY p.district, o.state"):
        row = out.setdefault(str(district), {"queued": 0, "failed": 0})
        row["failed" if state == "failed" else "queued"] += int(n)
    return out


def _read(store: Store) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    return auth.list_users(store), _outbox(store)


def _rules(rules: Mapping[str, Any] | None, d: District) -> dict[str, Any] | None:
    if rules is None:
        return None
    mine = (rules.get("districts") or {}).get(d.slug) or (rules.get("districts") or {}).get(d.ars) or rules
    return {k: mine.get(k) for k in ("status", "refused", "loaded_at", "files", "rules", "error") if k in mine}


async def health(services: Services) -> dict[str, Any]:
    """Everything the provider page shows (no content of any district)."""
    users, queues = await services.store.read(_read, services.store.store)
    by_district = district_users(users, services.loaded.districts)
    router = services.router
    rules = router.health() if router is not None else None
    out = []
    for d in services.loaded.districts:
        q = queues.get(d.ars, {"queued": 0, "failed": 0})
        out.append({"ars": d.ars, "slug": d.slug, "name": d.name, "rules": _rules(rules, d),
                    "outbox": q, "users": by_district.get(d.ars, [])})
    return {"districts": out, "sources": services.health.as_dict(),
            "canaries": services.canary.as_dict() if services.canary is not None else None,
            "without_district": by_district.get("", [])}


async def health_api(request: web.Request) -> web.Response:
    await _provider(request, as_json=True)
    body = await health(request.app[SERVICES_KEY])
    return web.json_response(body, dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str),
                             headers=CONSOLE_HEADERS)


async def page(request: web.Request) -> web.Response:
    user = await _provider(request, as_json=False)
    data = await health(request.app[SERVICES_KEY])
    hub = request.app[SERVICES_KEY].loaded.cfg.hub
    html = _ENV.get_template("provider/index.html").render(user=user, d=data, hub=hub)
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=CONSOLE_HEADERS)

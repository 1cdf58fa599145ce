"""The console's JSON API under ``/console/api/`` (every state change: POST with the session's ``X-CSRF-Token``).

Reading (permission ``read``):

- ``GET inbox``: the dashboard's data (``data``) and its sections rendered (``html``), for polling.
- ``GET regions?q=Hitz``: regions of the user's scope whose name (or ARS prefix) matches, at most 20;
  ``GET regions/{ars}/shape``: a region's boundary as GeoJSON (lon/lat), 404 where none is known;
  ``GET map``: the district boundary, the configured finer boundaries inside it, and the tile server if any.
- ``GET templates``: the console templates with review state; ``GET templates/{name}?ort=..&ort=..&until=ISO``:
  a template's content filled in each language for these places and this end.
- ``GET warnings?state=draft,submitted``, ``GET warnings/{id}`` (version, thread, history, buttons, preview,
  deliveries), ``GET warnings/{id}/preview``, ``GET warnings/{id}/status`` (deliveries, also as HTML).

Acting (hub.console checks permission, scope, four eyes and state; refusals are audited there):

- ``POST warnings``: create a draft (``template``, ``status``, ``audience``, ``topic``, ``channels``, ``area``,
  ``content``; ``from_draft``: the key of the rule's or sensor's draft it was made from; ``stale_reviewed``: true
  to confirm the texts of a template whose review is overdue, required for an actual warning) → 201.
- ``POST warnings/{id}/edit``, ``/submit``, ``/withdraw``, ``/reject`` (``reason``), ``/follow-up`` (``action``:
  update, cancel or all-clear) → the new or changed version and the page to go on with (``next``).
- ``POST warnings/{id}/approve`` and ``/send`` (``token`` of the preview, ``confirm``: the ``status``,
  ``audience``, ``topic`` and ``channels`` the sender ticked, which must be the version's; ``/send`` also
  ``reason`` when sending alone; ``widen``: true to confirm that picked regions without a boundary of their own
  widen the warning to their whole Kreis, refused with 400 without it) → the sent version; the pipeline is woken
  at once.

- ``POST exercise-token`` (permission ``compose``): a token to register a staff test device for exercises (24 h,
  single use, audited) → 201 ``{"token", "expires", "link"}``; ``link`` is the subscribe page with the token.

Errors are JSON ``{"error", "message"}`` (message German / English): 400 invalid, 401 not signed in, 403 refused
(permission, scope, four eyes, CSRF), 404 unknown, 409 the preview or the confirmation does not match the version.
A warning, draft or template of another district (issue 19) is 403 with only ``{"error": "Kein Zugriff /
forbidden"}`` (hub.web.console_districts), whatever the route; the lists hold only the user's district's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from aiohttp import web
from shapely.geometry import mapping

from hub.access import auth, exercise_tokens, scopes
from hub.console import drafts, overview, release, tables
from hub.console.model import LANGUAGES, ConsoleConfig, ConsoleError, ConsoleForbidden, StalePreview
from hub.decide import decisions
from hub.errors import AuthError
from hub.events import Decided
from hub.geo.boundaries import BOUNDARY_ATTRIBUTION
from hub.geo.geography import Geography
from hub.geo.projection import GERMANY
from hub.geo.registry import Level
from hub.store.clock import now_utc
from hub.store.db import Store
from hub.web import console_offers
from hub.web import console_view as view
from hub.web.auth import require
from hub.web.console import ConsoleWeb, dashboard_data, inbox_html, render_string, state_of, warning_data
from hub.web.console_districts import district, forbidden, owners

LEVEL = {Level.LAND: ("Land", "state"), Level.BEZIRK: ("Regierungsbezirk", "region"),
         Level.KREIS: ("Kreis", "district"), Level.VERBAND: ("Gemeindeverband", "municipal association"),
         Level.GEMEINDE: ("Gemeinde", "municipality"), Level.ORTSTEIL: ("Ortsteil", "locality")}
REGIONS_MAX = 20
SIMPLIFY_M = 15.0
"""Boundaries sent to the map are simplified to this many metres (the check uses the full ones)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def routes(app: web.Application, prefix: str) -> None:
    a = f"{prefix}/api"
    r = app.router
    r.add_get(f"{a}/inbox", inbox)
    r.add_get(f"{a}/regions", regions)
    r.add_get(f"{a}/regions/{{ars}}/shape", region_shape)
    r.add_get(f"{a}/map", map_layers)
    r.add_get(f"{a}/templates", templates)
    r.add_get(f"{a}/templates/{{name}}", template_filled)
    r.add_get(f"{a}/warnings", warnings_list)
    r.add_post(f"{a}/warnings", create)
    r.add_get(f"{a}/warnings/{{id}}", warning)
    r.add_get(f"{a}/warnings/{{id}}/preview", preview)
    r.add_get(f"{a}/warnings/{{id}}/status", status)
    for action in ("edit", "submit", "withdraw", "reject", "follow-up", "approve", "send"):
        r.add_post(f"{a}/warnings/{{id}}/{action}", act)
    r.add_post(f"{a}/exercise-token", exercise_token)
    console_offers.routes(app, prefix)  # offers from other districts (issue 19)


# -- errors and bodies ------------------------------------------------------------------------------------------------


def error(exc: type[web.HTTPException], code: str, message: str, **extra: Any) -> web.HTTPException:
    return exc(text=json.dumps({"error": code, "message": message, **extra}, ensure_ascii=False),
               content_type="application/json")


class _Missing(LookupError):
    pass


class _Mismatch(Exception):
    pass


class _NotYours(LookupError):
    """A version of another district's warning (or a draft of another district's rules)."""


NOT_FOUND = "Diese Meldung gibt es nicht. / This warning does not exist."


async def _run(s: ConsoleWeb, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A hub.console operation on the writer thread, its refusals as JSON errors."""
    try:
        result = await s.run(fn, *args, **kwargs)
        s.inbox_cache.clear()  # the dashboards show it at their next poll
        return result
    except _Missing:
        raise error(web.HTTPNotFound, "not_found", NOT_FOUND) from None
    except _NotYours:
        raise forbidden() from None
    except _Mismatch as err:
        raise error(web.HTTPConflict, "confirmation_mismatch", str(err)) from None
    except StalePreview as err:
        raise error(web.HTTPConflict, "stale_preview", str(err)) from None
    except ConsoleForbidden as err:
        raise error(web.HTTPForbidden, "forbidden", str(err)) from None
    except ConsoleError as err:
        raise error(web.HTTPBadRequest, "invalid", str(err)) from None
    except AuthError as err:
        raise error(web.HTTPForbidden, "forbidden", str(err)) from None


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise error(web.HTTPBadRequest, "invalid",
                    "Der Inhalt ist kein gültiges JSON. / The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise error(web.HTTPBadRequest, "invalid", "Erwartet wird ein JSON-Objekt. / A JSON object is expected.")
    return body


def _id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise error(web.HTTPNotFound, "not_found", NOT_FOUND) from None


def _ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str))


# -- reading ----------------------------------------------------------------------------------------------------------


async def inbox(request: web.Request) -> web.Response:
    require(request, "read")
    data = await dashboard_data(request)
    return _ok({"data": data, "html": inbox_html(request, data)})


def search_regions(geo: Geography, user: auth.User, q: str, limit: int = REGIONS_MAX) -> list[dict[str, Any]]:
    """Regions of the user's scope (the scope regions and everything below them) by name or ARS prefix."""
    reg = geo.registry
    needle = q.strip().casefold()
    if len(needle) < 2:
        return []
    found, seen = [], set()
    for scope in user.scopes:
        if scope not in reg:
            continue
        for r in itertools.chain([reg[scope]], reg.descendants(scope)):
            if r.ars in seen:
                continue
            seen.add(r.ars)
            name = r.name or _verband_name(geo, r.ars)
            hay = name.casefold()
            if (needle.isdigit() and r.ars.startswith(needle)) or needle in hay:
                found.append((not hay.startswith(needle), list(Level).index(r.level), hay, r, name))
    found.sort(key=lambda f: f[:3])
    out = []
    for _, _, _, r, name in found[:limit]:
        parent = reg.parent(r.ars)
        de, en = LEVEL[r.level]
        out.append({"ars": r.ars, "name": name, "place": view.place_name(name), "level": r.level.value,
                    "level_de": de, "level_en": en,
                    "parent": (parent.name or _verband_name(geo, parent.ars)) if parent else None,
                    "boundary": scopes.region_geometry(geo, r.ars) is not None})
    return out


def _verband_name(geo: Geography, ars: str) -> str:
    """Gemeindeverbände have no name in the lists the hub has: named by their Gemeinden."""
    names = sorted(n for g in geo.registry.gemeinden(ars) if (n := geo.registry.name(g)))
    if not names:
        return f"Gemeindeverband {ars}"
    return "Gemeindeverband " + ", ".join(names[:4]) + (" …" if len(names) > 4 else "")


async def regions(request: web.Request) -> web.Response:
    user = require(request, "read")
    q = request.query.get("q", "")[:80]
    return _ok({"q": q, "regions": search_regions(state_of(request).geo, user, q)})


def _feature(geo: Geography, ars: str) -> dict[str, Any] | None:
    geom = scopes.region_geometry(geo, ars)
    if geom is None:
        return None
    lonlat = GERMANY.unproject(geom.simplify(SIMPLIFY_M, preserve_topology=True))
    return {"type": "Feature", "geometry": mapping(lonlat),
            "properties": {"ars": ars, "name": geo.registry.name(ars) or _verband_name(geo, ars)}}


async def region_shape(request: web.Request) -> web.Response:
    """Any region's boundary, also outside the user's district: boundaries are public geodata (BKG), nothing of
    another district's authority."""
    require(request, "read")
    s = state_of(request)
    ars = request.match_info["ars"]
    if ars not in s.geo.registry:
        raise error(web.HTTPNotFound, "not_found",
                    "Diesen Regionalschlüssel gibt es nicht. / This region key does not exist.")
    feature = _feature(s.geo, ars)
    if feature is None:
        raise error(web.HTTPNotFound, "no_boundary", "Für diese Region ist keine Grenze hinterlegt. / "
                                                     "No boundary is known for this region.")
    return _ok(feature)


def _layers(s: ConsoleWeb, district: str) -> dict[str, Any]:
    geo = s.geo
    c = s.services.loaded.cfg.console
    return {"district": _feature(geo, district), "regions": [f for a in geo.inner(district) if (f := _feature(geo, a))],
            "attribution": BOUNDARY_ATTRIBUTION,
            "tiles": {"url": c.tile_url, "attribution": c.tile_attribution} if c.tile_url else None}


async def map_layers(request: web.Request) -> web.Response:
    require(request, "read")
    s = state_of(request)
    d = district(request)
    if d.ars not in s.map_layers:
        s.map_layers[d.ars] = await asyncio.to_thread(_layers, s, d.ars)
    return _ok(s.map_layers[d.ars])


async def templates(request: web.Request) -> web.Response:
    require(request, "read")
    s = state_of(request)
    d = district(request)
    now = now_utc()
    return _ok({"templates": [t.as_dict(now) for t in await s.compose_templates(d)], "error": s.template_error(d)})


async def template_filled(request: web.Request) -> web.Response:
    """A console template filled for the places picked and the end chosen, each language in its own words."""
    require(request, "read")
    s = state_of(request)
    d = district(request)
    name = request.match_info["name"]
    tpl = next((t for t in await s.compose_templates(d) if t.name == name), None)
    if tpl is None:
        await _refuse_template(s, name)
    now = now_utc()
    until = None
    if request.query.get("until"):
        try:
            until = datetime.fromisoformat(request.query["until"])
        except ValueError:
            until = None
        if until is None or until.tzinfo is None or until <= now:
            raise error(web.HTTPBadRequest, "invalid", "Das Feld until braucht eine künftige Zeit mit Zeitzone. / "
                        "The field until needs a future time with offset.")
    places = [p[:120] for p in request.query.getall("ort", [])][:20]
    draft = tpl.compose(ort=places, district=s.district_name(d), time=now, until=until)
    return _ok({"template": tpl.as_dict(now), "content": {
        "event": draft.event, "categories": [c.value for c in draft.categories], "severity": draft.severity.value,
        "urgency": draft.urgency.value, "certainty": draft.certainty.value,
        "response_types": [r.value for r in draft.response_types], "event_code": draft.event_code,
        "instruction_codes": list(draft.instruction_codes), "web": draft.web, "contact": draft.contact,
        "expires": draft.expires.isoformat() if draft.expires else None,
        "texts": {lang: {"headline": t.headline, "description": t.description, "instruction": t.instruction}
                  for lang, t in draft.texts.items() if lang in LANGUAGES}},
        "channels": list(tpl.default_channels), "audience": tpl.audience})


async def _refuse_template(s: ConsoleWeb, name: str) -> NoReturn:
    """A compose template the user's district does not have: 403 when another district's, else 404."""
    try:
        await s.refuse_template(name)
    except web.HTTPNotFound:
        raise error(web.HTTPNotFound, "not_found", "Diese Vorlage gibt es nicht. / This template does not exist.") \
            from None


async def _refuse_elsewhere(s: ConsoleWeb, name: str) -> None:
    """403 when ``name`` is another district's compose template (one that exists nowhere is the operation's to
    refuse, as before)."""
    try:
        await s.refuse_template(name)
    except web.HTTPNotFound:
        return


async def warnings_list(request: web.Request) -> web.Response:
    require(request, "read")
    states = [x for x in request.query.get("state", "").split(",") if x] or None
    rows = await state_of(request).run(tables.warnings, states=states, district=owners(district(request)))
    return _ok({"warnings": [view.summary(r) for r in rows]})


async def _data(request: web.Request) -> dict[str, Any]:
    user = require(request, "read")
    s = state_of(request)
    d = district(request)
    data = await s.run(warning_data, await s.config(d), s.services.index, user, _id(request), district=owners(d))
    if data is None:
        raise error(web.HTTPNotFound, "not_found", NOT_FOUND)
    return data


async def warning(request: web.Request) -> web.Response:
    data = await _data(request)
    data.pop("row")
    return _ok(data)


async def preview(request: web.Request) -> web.Response:
    data = await _data(request)
    if data["preview"] is None:
        raise error(web.HTTPConflict, "no_preview", data["preview_error"] or
                    "Nur offene Meldungen haben eine Vorschau / only open warnings have a preview")
    return _ok(data["preview"])


def _status(store: Store, warning_id: int, district: tuple[str, ...]) -> dict[str, Any] | None:
    row = tables.get(store, warning_id)
    if row is None:
        return None
    if (row["district"] or "") not in district:
        raise forbidden()
    rows = tables.versions(store, row["thread"])
    return {"row": row, "versions": [view.summary(v) for v in rows],
            "deliveries": view.deliveries(overview.status(store, row["thread"]))}


async def status(request: web.Request) -> web.Response:
    require(request, "read")
    s = state_of(request)
    found = await s.run(_status, _id(request), owners(district(request)))
    if found is None:
        raise error(web.HTTPNotFound, "not_found", NOT_FOUND)
    row = found.pop("row")
    html = render_string(request, "console/status.html", d=found, row=row)
    return _ok({"state": row["state"], "revision": row["revision"], **found, "html": html,
                "health": s.services.health.as_dict()})


# -- acting -------------------------------------------------------------------------------------------------------


def _create(store: Store, user: Any, form: dict[str, Any], *, cfg: ConsoleConfig, district: tuple[str, ...],
            stale: Mapping[str, Any] | None, from_draft: str | None) -> dict[str, Any]:
    if from_draft and (found := decisions.draft(store, from_draft)) is not None and found["district"] not in district:
        raise _NotYours()
    row = drafts.create_draft(store, user, form, cfg=cfg)
    if from_draft:  # the rule's or sensor's draft leaves the inbox (a crash before this only leaves it listed)
        decisions.take_draft(store, from_draft)
    if stale is not None:
        store.audit(user.name, "console.stale_template_confirmed", row["thread"],
                    {"warning": row["id"], "template": stale["name"], "reviewed": stale["reviewed"],
                     "status": row["status"]}, district=cfg.district)
    if from_draft:
        store.audit(user.name, "console.from_draft", row["thread"], {"warning": row["id"], "draft": from_draft},
                    district=cfg.district)
    return row


async def create(request: web.Request) -> web.Response:
    user = require(request, "read")
    s = state_of(request)
    d = district(request)
    form = await _body(request)
    from_draft = form.pop("from_draft", None)
    reviewed = form.pop("stale_reviewed", False) is True
    stale = None
    name = form.get("template")
    tpl = next((t for t in await s.compose_templates(d) if t.name == name), None) if isinstance(name, str) else None
    if isinstance(name, str) and tpl is None and name not in (await s.config(d)).templates:
        await _refuse_elsewhere(s, name)
    if tpl is not None and tpl.stale(now_utc()) and form.get("status", "Actual") == "Actual":
        stale = tpl.as_dict(now_utc())
        if not reviewed:
            raise error(web.HTTPBadRequest, "stale_template",
                        f"Die Vorlage „{tpl.title or tpl.name}“ ist nicht aktuell geprüft (zuletzt: "
                        f"{stale['reviewed'] or 'nie'}). Bitte Texte prüfen und das bestätigen. / The template's "
                        "review is overdue: check the texts and confirm.", template=tpl.name)
    row = await _run(s, _create, user, form, cfg=await s.config(d), district=owners(d), stale=stale,
                     from_draft=from_draft if isinstance(from_draft, str) else None)
    return _ok({"warning": view.summary(row), "next": f"{s.prefix}/warnings/{row['id']}"}, status=201)


def _mine(store: Store, warning_id: int, district: tuple[str, ...]) -> dict[str, Any]:
    """The version, if it is one of the district's (else 404 where it exists nowhere, 403 where another's)."""
    row = tables.get(store, warning_id)
    if row is None:
        raise _Missing()
    if (row["district"] or "") not in district:
        raise _NotYours()
    return row


def _existing(store: Store, fn: Callable[..., Any], user: Any, warning_id: int, *args: Any,
              district: tuple[str, ...], **kwargs: Any) -> Any:
    _mine(store, warning_id, district)
    return fn(store, user, warning_id, *args, **kwargs)


def _confirmed(store: Store, fn: Callable[..., Any], user: Any, warning_id: int, confirm: Any, *,
               district: tuple[str, ...], **kwargs: Any) -> Any:
    """Send only what the sender confirmed: status, audience (and topic) and channels as ticked on the page."""
    row = _mine(store, warning_id, district)
    if not isinstance(confirm, Mapping):
        raise ConsoleError("Bitte bestätigen Sie Zielgruppe und Kanäle. / "
                                   "Please confirm the audience and channels.")
    want = {"status": row["status"], "audience": row["audience"], "topic": row["topic"],
            "channels": sorted(row["channels"])}
    got = {"status": confirm.get("status"), "audience": confirm.get("audience"), "topic": confirm.get("topic"),
           "channels": sorted(c for c in confirm.get("channels") or [] if isinstance(c, str))}
    if got != want:
        store.audit(user.name, "console.confirmation_mismatch", row["thread"],
                    {"warning": row["id"], "confirmed": got, "actual": want, "action": fn.__name__},
                    district=row["district"])
        raise _Mismatch("Bestätigt wurde etwas anderes als diese Meldung ist (Status, Zielgruppe oder Kanäle): bitte "
                        "neu prüfen. / What was confirmed is not this warning's status, audience or channels: please "
                        "check again.")
    return fn(store, user, warning_id, **kwargs)


async def act(request: web.Request) -> web.Response:
    user = require(request, "read")
    s = state_of(request)
    action = request.path.rsplit("/", 1)[1]
    wid = _id(request)
    body = await _body(request)
    d = district(request)
    cfg, mine = await s.config(d), owners(d)
    page = f"{s.prefix}/warnings/{wid}"
    if action in ("approve", "send"):
        extra: dict[str, Any] = {"reason": body.get("reason")} if action == "send" else {}
        extra["widen"] = body.get("widen") is True
        sending = release.approve if action == "approve" else release.send
        sent = await _run(s, _confirmed, sending, user, wid, body.get("confirm"), token=str(body.get("token") or ""),
                          cfg=cfg, district=mine, **extra)
        s.services.events.publish(Decided(sent.alert_id, sent.store_thread, "publish"))  # the pipeline sends it now
        return _ok({"warning": view.summary(sent.warning), "identifier": sent.identifier, "next": page})
    if action == "edit":
        form = {k: body[k] for k in ("content", "area", "channels") if k in body}
        row = await _run(s, _existing, drafts.edit_draft, user, wid, form, cfg=cfg, district=mine)
    elif action == "reject":
        row = await _run(s, _existing, drafts.reject, user, wid, str(body.get("reason") or ""), cfg=cfg, district=mine)
    elif action == "follow-up":
        kind = body.get("action")
        given = body.get("form") if isinstance(body.get("form"), dict) else None
        row = await _run(s, _existing, drafts.follow_up, user, wid, str(kind), cfg=cfg, form=given, district=mine)
        target = f"{s.prefix}/compose?edit={row['id']}" if kind == "update" else f"{s.prefix}/warnings/{row['id']}"
        return _ok({"warning": view.summary(row), "next": target}, status=201)
    else:
        fn = {"submit": drafts.submit, "withdraw": drafts.withdraw}[action]
        row = await _run(s, _existing, fn, user, wid, cfg=cfg, district=mine)
    return _ok({"warning": view.summary(row), "next": f"{s.prefix}/warnings/{row['id']}"})


async def exercise_token(request: web.Request) -> web.Response:
    """Issue a token that lets one staff test device subscribe to exercises (see hub.access.exercise_tokens)."""
    user = require(request, "compose")
    s = state_of(request)
    token, expires_ms = await s.run(exercise_tokens.issue, user.name, district=district(request).ars)
    expires = datetime.fromtimestamp(expires_ms / 1000, UTC).isoformat(timespec="seconds")
    return _ok({"token": token, "expires": expires, "link": f"/abonnieren?exercise_token={token}"}, status=201)

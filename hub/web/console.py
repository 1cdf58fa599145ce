"""The control-room console on the web (issue 6): pages for the Leitstelle over hub.console, German first.

:func:`setup` installs console access (hub.web.auth: login, sessions, CSRF) under ``/console`` with the settings of
``[console]``, and:

- ``GET /console/``: the dashboard. Inbox (external alerts a rule published or drafted, sensor drafts with a chart of
  their readings, unrouted alerts with the rules' explanation), my open drafts, versions awaiting approval, recently
  sent warnings with live delivery counts per channel, source health; kept current by ``/static/console/
  dashboard.js`` polling ``GET /console/api/inbox`` every 2.5 s.
- ``GET /console/compose``: a new warning (``?template=NAME`` from a console template, ``?from_draft=KEY`` from a
  rule's or sensor's draft) or an open draft (``?edit=ID``): template picker with review dates and a STALE
  warning, texts in de-DE / Leichte Sprache / English, validity, area (regions by name within the user's scope, or
  a polygon or circle drawn on the map), status (an exercise turns the whole page orange and striped), audience
  (public or one topic's subscribers), channels.
- ``GET /console/warnings/{id}``: one version: state, history, the preview (audience per channel, overspill beyond
  the district, the exact push and board texts), the confirmations the sender must tick, the buttons this user
  has in this state, live delivery status.
- The JSON API under ``/console/api/`` (:mod:`hub.web.console_api`), which the pages' scripts use.

Many districts (issue 19): each signed-in user works in their district's console (hub.web.console_districts): its
name and colour on every page, its config (:meth:`ConsoleWeb.config`: sender, boards, webhooks, templates, four
eyes), only its warnings, drafts, decisions and delivery figures; anything of another district is refused with 403
and one fixed body.

Domain rules (four eyes, scope, exercise, audience, preview tokens) are hub.console's; this layer adds the checks
only it can make: the sender's confirmation of audience, status and channels must match the version, and an actual
warning from a template whose review is overdue needs the author's explicit confirmation (audited). Sync store work
runs on the store's writer thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from hub import __version__
from hub.access import auth, scopes
from hub.config.districts import District, Districts
from hub.console import overview, tables, targeting
from hub.console.model import CHANNELS, LANGUAGES, ConsoleConfig, ConsoleError, ConsoleUser, FourEyes
from hub.decide import decisions
from hub.decide.rules.templates import Template, due_for_review
from hub.geo.geography import Geography
from hub.services import Services
from hub.store.clock import now_utc
from hub.store.db import Store
from hub.web import console_view as view
from hub.web.auth import SESSION_KEY, USER_KEY, require, setup_auth
from hub.web.console_districts import (
    Offered,
    district,
    forbidden,
    middleware,
    owners,
    owns,
    read_offered,
    rule_templates_of,
    stamp_of,
)

log = logging.getLogger("warnhub.web.console")

STATIC = Path(__file__).parent / "static"
POLL_MS = 2500
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                          undefined=jinja2.StrictUndefined)
INBOX_SECTIONS = ("sent", "awaiting", "mine", "alerts", "drafts", "unrouted", "health")
T = TypeVar("T")


class ConsoleWeb:
    """What the console's handlers share: the hub's services, and per district the templates in force and the
    console's config (each district's console is its own: hub.web.console_districts)."""

    def __init__(self, services: Services, geo: Geography, prefix: str) -> None:
        self.services = services
        self.geo = geo
        self.prefix = prefix
        self._offered: dict[str, Offered] = {}
        self._rules: dict[str, tuple[tuple[Any, ...], Mapping[str, Template]]] = {}
        self._cfg: dict[str, tuple[tuple[Any, ...], ConsoleConfig]] = {}
        self.map_layers: dict[str, dict[str, Any]] = {}
        self.inbox_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self.inbox_lock = asyncio.Lock()

    @property
    def districts(self) -> Districts:
        return self.services.loaded.districts

    def policy(self, d: District) -> FourEyes:
        """``d``'s four eyes (its ``[[districts]]`` settings, else ``[console]``)."""
        return FourEyes.of(d.four_eyes)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(store, *args, **kwargs)`` on the store's writer thread."""
        store = self.services.store
        return await store.run(fn, store.store, *args, **kwargs)

    # -- templates ---------------------------------------------------------------------------------------------

    async def compose_templates(self, d: District) -> list[Template]:
        """``d``'s console templates (its own folder, then the shared rules/templates/compose/), re-read when a
        file changed."""
        offered = await asyncio.to_thread(read_offered, d, self._offered.get(d.ars, Offered()))
        self._offered[d.ars] = offered
        return list(offered.templates)

    def template_error(self, d: District) -> str | None:
        """Why ``d``'s compose templates on disk were refused (the last good ones stay offered)."""
        return self._offered.get(d.ars, Offered()).error

    async def rule_templates(self, d: District) -> Mapping[str, Template]:
        """The templates of ``d``'s rules: the router's in a single-district hub, else read from its rules folders
        (again when a file changed)."""
        if not self.districts.multi:
            router = self.services.router
            current = router.live.current if router is not None else None
            return current.templates if current is not None else {}
        stamp = await asyncio.to_thread(stamp_of, d.rules)
        cached = self._rules.get(d.ars)
        if cached is None or cached[0] != stamp:
            cached = (stamp, await asyncio.to_thread(rule_templates_of, d))
            self._rules[d.ars] = cached
        return cached[1]

    async def config(self, d: District) -> ConsoleConfig:
        """``d``'s console config with the templates in force (rebuilt when they change)."""
        compose = await self.compose_templates(d)
        rules = await self.rule_templates(d)
        key = (id(self.services.loaded), id(rules), tuple(id(t) for t in compose))
        cached = self._cfg.get(d.ars)
        if cached is None or cached[0] != key:
            geo = self.geo
            templates = {**rules, **{t.name: t for t in compose}}

            def check_area(user: ConsoleUser, area: Any) -> str | None:
                """hub.access.auth's scope check (boundary tolerance, fails closed without a boundary)."""
                return None if area is None or area.is_empty else scopes.check_area(cast(auth.User, user), geo, area)

            cfg = ConsoleConfig.from_loaded(self.services.loaded, geo=geo, district=d, templates=templates,
                                            check_area=check_area)
            # the hub's validator (XSD loaded once), used on the same writer thread
            cfg = dataclasses.replace(cfg, validator=self.services.intake.validator)
            cached = (key, cfg)
            self._cfg[d.ars] = cached
        return cached[1]

    async def refuse_template(self, name: str) -> NoReturn:
        """A compose template this district does not have: 403 when another district's, else 404."""
        for other in self.districts:
            if any(t.name == name for t in await self.compose_templates(other)):
                raise forbidden()
        raise web.HTTPNotFound(text="Diese Vorlage gibt es nicht. / This template does not exist.")

    def district_name(self, d: District) -> str:
        return d.name or self.geo.registry.name(d.ars) or d.ars


CONSOLE_KEY = web.AppKey("console", ConsoleWeb)


def setup(app: web.Application, services: Services, geo: Geography, *, prefix: str = "/console") -> ConsoleWeb:
    """Install console access (``[console]`` settings) and the console's pages on ``app`` (the caller adds the
    API: :func:`hub.web.console_api.routes`)."""
    c = services.loaded.cfg.console
    throttle = auth.throttle_of(c)
    setup_auth(app, services.store, prefix=prefix, idle_s=c.idle_timeout_min * 60.0, max_age_s=c.max_session_h * 3600.0,
               throttle=throttle, secure_cookie=True if c.secure_cookie == "always" else None)
    state = ConsoleWeb(services, geo, prefix.rstrip("/"))
    app[CONSOLE_KEY] = state
    app.middlewares.append(middleware(state.prefix, lambda: state.districts))  # inside setup_auth's (the user)
    p = state.prefix
    r = app.router
    r.add_get(p, _to_dashboard)
    r.add_get(f"{p}/", dashboard)
    r.add_get(f"{p}/compose", compose_page)
    r.add_get(f"{p}/warnings/{{id}}", warning_page)
    if not any(res.canonical == "/static" for res in r.resources()):
        r.add_static("/static/", STATIC, name="static")
    if c.tile_url:
        app.on_response_prepare.append(tile_csp(p, c.tile_url))
    return state


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(state_of(request).prefix + "/")


def tile_csp(prefix: str, tile_url: str) -> Callable[[web.Request, web.StreamResponse], Any]:
    """Console pages may load map tiles from the configured tile server (and nothing else from elsewhere)."""
    parts = urlsplit(tile_url.replace("{s}", "a"))
    origin = f"{parts.scheme}://{parts.netloc}".replace("://a.", "://*.") if parts.netloc else ""

    async def allow(request: web.Request, response: web.StreamResponse) -> None:
        csp = response.headers.get("Content-Security-Policy")
        if origin and csp and (request.path == prefix or request.path.startswith(prefix + "/")):
            response.headers["Content-Security-Policy"] = csp + f"; img-src 'self' data: {origin}"

    return allow


# -- rendering ----------------------------------------------------------------------------------------------------


def state_of(request: web.Request) -> ConsoleWeb:
    return request.app[CONSOLE_KEY]


def _ctx(request: web.Request, **extra: Any) -> dict[str, Any]:
    s = state_of(request)
    user = request[USER_KEY]
    d = district(request)
    return {"user": user, "csrf": request[SESSION_KEY].csrf, "prefix": s.prefix, "hub": s.services.loaded.cfg.hub,
            "district": s.district_name(d), "district_ars": d.ars, "colour": d.colour, "version": __version__,
            "v": view, "local": view.local,
            "poll_ms": POLL_MS, "exercise": False, "now": datetime.now(UTC).isoformat(), **extra}


def render_string(request: web.Request, name: str, **ctx: Any) -> str:
    return _ENV.get_template(name).render(**_ctx(request, **ctx))


def render(request: web.Request, name: str, *, status: int = 200, **ctx: Any) -> web.Response:
    return web.Response(text=render_string(request, name, **ctx), content_type="text/html", charset="utf-8",
                        status=status)


# -- dashboard ------------------------------------------------------------------------------------------------------

SENT_SHOWN = 8
INBOX_TTL_S = 1.0


def shared_inbox(store: Store, *, now: datetime | None = None, district: tuple[str, ...] | None = None
                 ) -> dict[str, Any]:
    """What the dashboard shows, the same for everyone of a district (``district``: its Kreis keys, :func:`owners`;
    writer thread)."""
    box = overview.inbox(store, now=now, district=district)
    sent, seen = [], set()
    for r in tables.warnings(store, states=["sent"], limit=100, district=district):
        if r["thread"] in seen:
            continue
        seen.add(r["thread"])
        status = overview.status(store, r["thread"])
        sent.append({**view.summary(r), "deliveries": view.deliveries(status)})
        if len(sent) >= SENT_SHOWN:
            break
    drafts = []
    for d in box["drafts"]:
        texts = d["draft"].get("texts") or {}
        drafts.append({"key": d["key"], "origin": d["origin"], "rule": d["rule"], "sensor": d["sensor"],
                       "kind": d["kind"], "template": d["template"], "at": d["at"], "why": d["why"],
                       "severity": d["draft"].get("severity"), "alert_id": d["alert_id"],
                       "headline": (texts.get("de-DE") or {}).get("headline") or d["draft"].get("event"),
                       "chart": view.sparkline(d.get("readings") or []), "readings": len(d.get("readings") or [])})
    keep = ("alert_id", "thread_id", "decision", "rules", "channels", "push", "severity", "why", "headline",
            "sender", "identifier", "state", "decided_at", "inside_district", "outside_share")
    return {"alerts": [{k: a.get(k) for k in keep} for a in box["alerts"][:50]], "drafts": drafts,
            "unrouted": [{k: a.get(k) for k in keep} for a in box["unrouted"][:50]], "sent": sent,
            "open": tables.warnings(store, states=list(view.OPEN), district=district), "failed": box["failed"],
            "conflicts": box["conflicts"]}


def personal_inbox(shared: Mapping[str, Any], user: Any, policy: FourEyes) -> dict[str, Any]:
    """The shared inbox with what is this user's: their open drafts, and which waiting ones they may approve."""
    rows = shared["open"]
    return {**{k: v for k, v in shared.items() if k != "open"},
            "mine": [view.summary(r) for r in rows if user.id == r["author_id"] or user.id in r["editors"]],
            "awaiting": [{**view.summary(r), "can_approve": view.actions(user, r, policy, live=False)["approve"]}
                         for r in rows if r["state"] == "submitted"]}


async def dashboard_data(request: web.Request) -> dict[str, Any]:
    """The dashboard's data; each district's shared part is read at most once per :data:`INBOX_TTL_S` however many
    consoles poll (the store's writer thread also takes every incoming alert)."""
    s = state_of(request)
    d = district(request)
    loop = asyncio.get_running_loop()
    async with s.inbox_lock:
        cached = s.inbox_cache.get(d.ars)
        if cached is None or loop.time() - cached[0] > INBOX_TTL_S:
            scope = owners(d) if s.districts.multi else None
            cached = s.inbox_cache[d.ars] = (loop.time(), await s.run(shared_inbox, district=scope))
        shared = cached[1]
    data = personal_inbox(shared, request[USER_KEY], s.policy(d))
    data["health"] = s.services.health.as_dict()
    outbox = s.services.outbox
    data["channels"] = {n: h.as_dict() for n, h in sorted(outbox.health.items())} if outbox is not None else {}
    watch = s.services.canary
    data["canaries"] = watch.as_dict() if watch is not None else {}
    return data


def inbox_html(request: web.Request, data: Mapping[str, Any]) -> dict[str, str]:
    return {name: render_string(request, f"console/inbox/{name}.html", data=data) for name in INBOX_SECTIONS}


async def dashboard(request: web.Request) -> web.Response:
    require(request, "read")
    data = await dashboard_data(request)
    return render(request, "console/dashboard.html", data=data, sections=inbox_html(request, data))


# -- compose ----------------------------------------------------------------------------------------------------------


def _enums() -> dict[str, Any]:
    def pairs(table: Mapping[str, tuple[str, str]], skip: tuple[str, ...] = ("Unknown",)) -> list[list[str]]:
        return [[k, de, en] for k, (de, en) in table.items() if k not in skip]

    return {"severity": pairs(view.SEVERITY), "urgency": pairs(view.URGENCY), "certainty": pairs(view.CERTAINTY),
            "category": pairs(view.CATEGORY), "channels": pairs(view.CHANNEL, ()),
            "languages": pairs(view.LANGUAGE, ())}


def draft_content(draft: Mapping[str, Any]) -> dict[str, Any]:
    """A rule's or sensor's draft (decisions.draft_dict) as console content."""
    return {"event": draft.get("event"), "categories": draft.get("categories") or [],
            "severity": draft.get("severity"), "urgency": draft.get("urgency"), "certainty": draft.get("certainty"),
            "response_types": draft.get("response_types") or [], "event_code": draft.get("event_code"),
            "instruction_codes": draft.get("instruction_codes") or [], "web": draft.get("web"),
            "contact": draft.get("contact"), "onset": None, "expires": None,
            "texts": {lang: t for lang, t in (draft.get("texts") or {}).items() if lang in LANGUAGES}}


def _find_draft(store: Store, key: str) -> dict[str, Any] | None:
    found = decisions.draft(store, key)
    if found is not None and found["sensor"]:
        row = store.conn.execute("SELECT ars FROM sensors WHERE id=?", (found["sensor"],)).fetchone()
        found["sensor_ars"] = row[0] if row else None
    return found


async def compose_page(request: web.Request) -> web.Response:
    user = require(request, "compose")
    s = state_of(request)
    d = district(request)
    cfg = await s.config(d)
    templates = await s.compose_templates(d)
    now = now_utc()
    q = request.query
    initial: dict[str, Any] = {"mode": "new", "status": "Actual", "audience": "public", "topic": None,
                               "channels": ["push", "web", "boards"], "area": {"ars": [], "features": [], "desc": None},
                               "content": None, "template": None, "from_draft": None, "warning": None}
    title = ("Neue Meldung", "new warning")
    if q.get("edit"):
        row = await s.run(tables.get, _int(q["edit"]))
        if row is None:
            raise web.HTTPNotFound(text="Diese Meldung gibt es nicht. / This warning does not exist.")
        if not owns(d, row["district"]):
            raise forbidden()
        if row["state"] not in view.OPEN:
            raise web.HTTPSeeOther(f"{s.prefix}/warnings/{row['id']}")
        initial.update(mode="edit", status=row["status"], audience=row["audience"], topic=row["topic"],
                       channels=row["channels"], area=row["area"], content=row["content"], template=row["template"],
                       warning=view.summary(row))
        title = ("Entwurf bearbeiten", "edit draft") if row["msg_type"] != "Update" else \
            ("Aktualisierung bearbeiten", "edit update")
    elif q.get("from_draft"):
        draft = await s.run(_find_draft, q["from_draft"])
        if draft is None:
            raise web.HTTPNotFound(text="Diesen Entwurf gibt es nicht. / This draft does not exist.")
        if not owns(d, draft["district"]):
            raise forbidden()
        ars = draft.get("sensor_ars")
        initial.update(content=draft_content(draft["draft"]), from_draft=draft["key"],
                       area={"ars": [ars] if ars and ars in s.geo.registry else [], "features": [], "desc": None})
        if draft["channels"]:
            initial["channels"] = [c for c in draft["channels"] if c in CHANNELS] or initial["channels"]
        title = ("Meldung aus Entwurf", "warning from a draft")
    elif q.get("template"):
        if q["template"] not in {t.name for t in templates}:
            await s.refuse_template(q["template"])
        initial["template"] = q["template"]
    reg = s.geo.registry
    initial["area_names"] = {a: reg.name(a) or a for a in initial["area"]["ars"]}
    initial["area_places"] = {a: view.place_name(reg.name(a) or a) for a in initial["area"]["ars"]}
    page = {"initial": initial, "templates": [t.as_dict(now) for t in templates], "enums": _enums(),
            "district": {"ars": cfg.district, "name": s.district_name(d)},
            "policy": {"four_eyes": sorted(cfg.four_eyes.required_for),
                       "languages_require_review": cfg.languages_require_review},
            "api": f"{s.prefix}/api", "prefix": s.prefix,
            "scopes": [{"ars": a, "name": s.geo.registry.name(a) or a} for a in user.scopes]}
    return render(request, "console/compose.html", page=page, title=title, due=due_for_review(templates, now),
                  templates=templates, template_error=s.template_error(d), initial=initial,
                  exercise=initial["status"] == "Exercise", today=now)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise web.HTTPNotFound(text="Diese Meldung gibt es nicht. / This warning does not exist.") from None


# -- one warning ------------------------------------------------------------------------------------------------------


def warning_data(store: Store, cfg: ConsoleConfig, index: Any, user: Any, warning_id: int,
                 *, now: datetime | None = None, district: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """The version, its thread, history, actions, delivery status and (while open) its preview (writer thread).
    ``district``: the Kreis keys of the asking user's district; a version of another raises 403."""
    row = tables.get(store, warning_id)
    if row is None:
        return None
    if district is not None and (row["district"] or "") not in district:
        raise forbidden()
    versions = tables.versions(store, row["thread"])
    latest = versions[-1]["id"] == row["id"]
    sent = [v for v in versions if v["state"] == "sent"]
    live = bool(sent) and sent[-1]["msg_type"] != "Cancel"
    preview, preview_error = None, None
    if row["state"] in ("draft", "submitted", "approved"):
        try:
            preview = targeting.preview_for(store, cfg, index, row["id"], now=now)
        except ConsoleError as err:
            preview_error = str(err)
    status = overview.status(store, row["thread"])
    reg = cfg.geo.registry
    acts = view.actions(user, row, cfg.four_eyes, live=live)
    return {"row": row, "area_names": {a: reg.name(a) or a for a in row["area"]["ars"]},
            "map_regions": map_regions(cfg.geo, cfg.district, row["area"]["ars"]),
            "summary": view.summary(row), "versions": [view.summary(v) for v in versions],
            "latest": latest, "history": tables.history(store, row["thread"]),
            "actions": acts, "why_not": view.why_not(user, row, cfg.four_eyes, acts), "preview": preview,
            "preview_error": preview_error, "deliveries": view.deliveries(status),
            "identity": view.identity(row, status, sent), "live_version": sent[-1]["version"] if sent else None,
            "languages": targeting.language_states(cfg, row["content"], _sent_languages(store, row))}


def _sent_languages(store: Store, row: Mapping[str, Any]) -> list[str] | None:
    """The languages a sent version went out in, from its stored CAP (None: not sent)."""
    alert = store.alert(row["alert_id"]) if row["state"] == "sent" and row.get("alert_id") else None
    return None if alert is None else [i.language or "" for i in alert.infos]


def map_regions(geo: Any, district: str, picked: list[str]) -> list[str]:
    """The regions whose boundaries the warning page's map draws: each picked region with a boundary of its own,
    and for one without, its Kreis (what it is widened to) - in every state, so the map never asks for a shape
    that does not exist."""
    out = []
    for ars in picked:
        out.append(ars if geo.geometry(ars) is not None else (geo.registry.kreis_of(ars) or district))
    return list(dict.fromkeys(out))


async def warning_page(request: web.Request) -> web.Response:
    user = require(request, "read")
    s = state_of(request)
    d = district(request)
    cfg = await s.config(d)
    data = await s.run(warning_data, cfg, s.services.index, user, _int(request.match_info["id"]), district=owners(d))
    if data is None:
        raise web.HTTPNotFound(text="Diese Meldung gibt es nicht. / This warning does not exist.")
    row = data["row"]
    tpl = cfg.templates.get(row["template"]) if row["template"] else None
    stale = tpl is not None and getattr(tpl, "title", None) is not None and tpl.stale(now_utc())
    page = {"id": row["id"], "thread": row["thread"], "state": row["state"], "revision": row["revision"],
            "api": f"{s.prefix}/api",
            "prefix": s.prefix, "token": (data["preview"] or {}).get("token"), "min_reason": cfg.four_eyes.min_reason}
    return render(request, "console/warning.html", d=data, row=row, page=page,
                  exercise=row["status"] == "Exercise", template=tpl, stale=stale,
                  status_html=render_string(request, "console/status.html", d=data, row=row),
                  preview_lines=_preview_lines(data["preview"], cfg.boards))


def _preview_lines(preview: Mapping[str, Any] | None, boards: Any) -> list[dict[str, Any]]:
    """Each board's text with its budget (lines x characters)."""
    if not preview:
        return []
    by_id = {b.id: b for b in boards}
    out = []
    for board_id, lines in preview["texts"]["boards"].items():
        b = by_id.get(board_id)
        out.append({"id": board_id, "name": b.name if b else board_id, "lines": lines,
                    "budget": (b.lines, b.chars) if b else None, "charset": b.charset if b else None})
    return out
